import Ferry
import FerryGateway
import FerryPush
import FerryTestSupport
import Foundation
import NIOCore
import Synchronization
import Testing

@Suite("The browser client and demo page served by the gateway")
struct BrowserRoutesTests {
    @Test("GET /ferry.js is the client module as JavaScript, GET /ferry/demo the page as HTML naming the WebSocket listener")
    func servedWithTheirContentTypes() async throws {
        try await withGateway(allListeners()) { _, addresses, _ in
            let script = try await http(.GET, addresses.http, "/ferry.js")
            #expect(script.status == 200)
            #expect(script.headers["content-type"] == "text/javascript; charset=utf-8")
            #expect(script.body.contains("export class FerryClient"))

            let page = try await http(.GET, addresses.http, "/ferry/demo?token=alice")
            #expect(page.status == 200)
            #expect(page.headers["content-type"] == "text/html; charset=utf-8")
            #expect(page.body.contains("from '/ferry.js'"))
            guard case .webSocket(_, let port, let path) = try #require(addresses.webSocket) else {
                Issue.record("the WebSocket listener has no WebSocket address")
                return
            }
            #expect(page.body.contains(#"{"path":"\#(path)","port":\#(port)}"#), "the page dials the WebSocket listener's port and path")

            let proxied = try await http(.GET, addresses.http, "/math/add?a=1&b=2")
            #expect(proxied.body == "3", "other paths still reach the services")
        }
    }
}

/// What the demo page shows, read from its DOM.
struct DemoPageView: Decodable, Equatable {
    var state: String?
    var user: String?
    var addResult: String?
    var error: String?
    /// `#delivery`: whether at-least-once pushes are on.
    var delivery: String?
    var pushes: [String]
    /// The `data-offset` of each push (nil for a best-effort push).
    var offsets: [String?]

    static let expression = """
        (() => {
          const text = (id) => document.getElementById(id)?.textContent ?? null;
          const items = [...document.querySelectorAll('#pushes li')];
          return JSON.stringify({
            state: text('state'), user: text('user'), addResult: text('add-result'), error: text('error'),
            delivery: text('delivery'),
            pushes: items.map((item) => item.textContent), offsets: items.map((item) => item.dataset.offset ?? null),
          });
        })()
        """
}

extension BrowserPage {
    /// The demo page's DOM as it is now.
    func demoView() async throws -> DemoPageView {
        try JSONDecoder().decode(DemoPageView.self, from: Data(try await evaluate(DemoPageView.expression).utf8))
    }

    /// The demo page's DOM once `condition` holds, or the last one read after the time allowed.
    func demoView(when condition: @escaping @Sendable (DemoPageView) -> Bool) async throws -> DemoPageView {
        let last = Mutex<DemoPageView?>(nil)
        _ = try await eventually(timeout: .seconds(30)) {
            let view = try await demoView()
            last.withLock { $0 = view }
            return condition(view)
        }
        return try #require(last.withLock { $0 })
    }

    /// The at-least-once position the demo page keeps for `user` in `localStorage` (nil: none).
    func savedPosition(of user: String) async throws -> FerryStreamPosition? {
        let saved = try await evaluate("localStorage.getItem('ferry.position.\(user)') ?? ''")
        return saved.isEmpty ? nil : try JSONDecoder().decode(FerryStreamPosition.self, from: Data(saved.utf8))
    }
}

@Suite("The demo page in headless Chromium", .serialized)
struct BrowserTests {
    /// Calls an inner route with `users` as targets.
    func inner(_ session: FerrySession, _ route: String, body: ByteBuffer = ByteBuffer(), users: [String], pushRoute: String? = nil) async throws -> Int {
        var meta = FerryMeta()
        for user in users { meta.add(FerryGateway.MetaKey.user, user) }
        if let pushRoute { meta.add(FerryGateway.MetaKey.pushRoute, pushRoute) }
        return try await session.call(route, body, options: FerryCallOptions(meta: meta, codec: .json))
    }

    @Test("the page authenticates, shows /math/add's reply and a push sent through the inner API, reconnects after its session drops, and stays closed after a kick")
    func demoPage() async throws {
        try await withGateway(allListeners()) { gateway, addresses, _ in
            try await withChromium { browser in
                let page = try await browser.open("http://\(try #require(addresses.http))/ferry/demo?token=alice")
                let called = try await page.demoView { $0.addResult != "" && $0.addResult != nil || $0.error != "" && $0.error != nil }
                #expect(called.addResult == "3", "page: \(called)")
                #expect(called.state == "open")
                #expect(called.user == "alice")
                #expect(await eventually { !gateway.sessions(of: "alice").isEmpty })

                let service = FerryPeer(logger: quietLogger())
                let session = try await service.dial(try #require(addresses.inner))
                let written = try await inner(
                    session, FerryGateway.InnerRoute.push, body: ByteBuffer(string: #""hello alice""#), users: ["alice"], pushRoute: "/chat/msg")
                #expect(written == 1)
                let pushed = try await page.demoView { !$0.pushes.isEmpty }
                #expect(pushed.pushes == ["hello alice"], "page: \(pushed)")
                #expect(pushed.offsets == [nil], "a best-effort push has no offset")
                // This gateway keeps no mailbox: the page says at-least-once pushes are off.
                let refusedStream = try await page.demoView { $0.delivery?.isEmpty == false }
                #expect(refusedStream.delivery?.hasPrefix("off: 405") == true, "page: \(refusedStream)")

                // A call in flight when the connection drops fails with 102; the client dials
                // again, authenticates again and calls again.
                _ = try await page.evaluate(
                    "window.slowCall = ferryClient.call('/slow/never', undefined, {timeoutMs: 60000}).then(() => 'replied', (error) => String(error.code)); 'sent'")
                let oldSession = try #require(gateway.sessions(of: "alice").first)
                await oldSession.close()
                #expect(try await page.evaluate("window.slowCall", awaitPromise: true) == "102")
                #expect(await eventually(timeout: .seconds(30)) { gateway.sessions(of: "alice").contains { $0 !== oldSession } })
                let reconnected = try await page.demoView { $0.state == "open" }
                #expect(reconnected.state == "open", "page: \(reconnected)")
                let sum = try await page.evaluate("ferryClient.call('/math/add', {a: 20, b: 22}).then(String)", awaitPromise: true)
                #expect(sum == "42")

                // A kick is told to the client, which closes for good instead of dialling again.
                let kicked = try await inner(session, FerryGateway.InnerRoute.kick, users: ["alice"])
                #expect(kicked == 1)
                let closed = try await page.demoView { $0.state == "closed" }
                #expect(closed.state == "closed", "page: \(closed)")
                #expect(closed.error?.contains("kicked") == true, "page: \(closed)")
                #expect(gateway.sessions(of: "alice").isEmpty, "no new session")
                await service.close()
            }
        }
    }

    @Test("a refused token closes the client and the page shows 401")
    func refusedToken() async throws {
        try await withGateway(allListeners()) { _, addresses, _ in
            try await withChromium { browser in
                let page = try await browser.open("http://\(try #require(addresses.http))/ferry/demo?token=not%20a%20name")
                let refused = try await page.demoView { $0.state == "closed" }
                #expect(refused.state == "closed", "page: \(refused)")
                #expect(refused.error?.contains("401") == true, "page: \(refused)")
                #expect(refused.addResult == "")
            }
        }
    }

    /// Stores `text` for `user` through the inner `/gateway/send`, to the page's `/chat/msg`.
    func send(_ text: String, to user: String, via session: FerrySession) async throws -> FerryGateway.Stored {
        var meta = FerryMeta()
        meta.add(FerryGateway.MetaKey.user, user)
        meta.add(FerryGateway.MetaKey.pushRoute, "/chat/msg")
        let stored: [FerryGateway.Stored] = try await session.call(
            FerryGateway.InnerRoute.send, ByteBuffer(string: "\"\(text)\""), options: FerryCallOptions(meta: meta, codec: .json))
        return try #require(stored.first)
    }

    @Test("at-least-once pushes: the page shows what was stored before it opened, then live messages, in order and each once; opened again in the same browser, or reloaded, it resumes from the position it kept in localStorage; a stale epoch starts over")
    func durablePushes() async throws {
        var configuration = allListeners()
        configuration.durablePush = FerryGateway.DurablePush(mailbox: FerryMemoryMailbox())
        try await withGateway(configuration) { gateway, addresses, _ in
            let service = FerryPeer(logger: quietLogger())
            let inner = try await service.dial(try #require(addresses.inner))
            let epoch = try await send("one", to: "dora", via: inner).epoch
            _ = try await send("two", to: "dora", via: inner)
            try await withChromium { browser in
                let url = "http://\(try #require(addresses.http))/ferry/demo?token=dora"
                let page = try await browser.open(url)
                let stored = try await page.demoView { $0.pushes.count >= 2 || $0.error != "" && $0.error != nil }
                #expect(stored.pushes == ["one", "two"], "page: \(stored)")
                #expect(stored.offsets == ["1", "2"])
                #expect(stored.delivery?.hasPrefix("on") == true, "page: \(stored)")

                _ = try await send("three", to: "dora", via: inner)
                let live = try await page.demoView { $0.pushes.count >= 3 }
                #expect(live.pushes == ["one", "two", "three"], "page: \(live)")
                #expect(live.offsets == ["1", "2", "3"])

                // Resumed from the start on the same connection, the gateway sends everything
                // again: the client drops the copies by offset and shows only what is new.
                let rewound = try await page.evaluate(
                    "ferryClient.call('/ferry/push/resume', {epoch: ferryClient.position.epoch, offset: 0}).then(() => 'rewound')",
                    awaitPromise: true)
                #expect(rewound == "rewound")
                _ = try await send("four", to: "dora", via: inner)
                let replayed = try await page.demoView { $0.pushes.contains("four") }
                #expect(replayed.pushes == ["one", "two", "three", "four"], "page: \(replayed)")
                #expect(Int(try await page.evaluate("String(ferryClient.duplicatesDropped)")) ?? 0 >= 3)
                #expect(try await page.savedPosition(of: "dora") == FerryStreamPosition(epoch: epoch, offset: 4))

                // Closed, the page misses a message; opened again in the same browser, it shows
                // that one only.
                try await page.close()
                #expect(await eventually { gateway.sessions(of: "dora").isEmpty })
                _ = try await send("five", to: "dora", via: inner)
                let reopened = try await browser.open(url)
                let missed = try await reopened.demoView { $0.pushes.contains("five") }
                #expect(missed.pushes == ["five"], "page: \(missed)")
                #expect(missed.offsets == ["5"])
                #expect(await eventually { (try? await reopened.savedPosition(of: "dora")) == FerryStreamPosition(epoch: epoch, offset: 5) })

                // Reloaded, it shows only what comes after.
                let before = try #require(gateway.sessions(of: "dora").first)
                try await reopened.reload()
                #expect(await eventually(timeout: .seconds(30)) { gateway.sessions(of: "dora").contains { $0 !== before } })
                _ = try await send("six", to: "dora", via: inner)
                let reloaded = try await reopened.demoView { $0.pushes.contains("six") }
                #expect(reloaded.pushes == ["six"], "page: \(reloaded)")
                #expect(reloaded.offsets == ["6"])

                // A position from an epoch the stream no longer has starts over from its first message.
                _ = try await reopened.evaluate(
                    "localStorage.setItem('ferry.position.dora', JSON.stringify({epoch: 'gone', offset: 99})); 'saved'")
                try await reopened.reload()
                let restarted = try await reopened.demoView { $0.pushes.count >= 6 }
                #expect(restarted.pushes == ["one", "two", "three", "four", "five", "six"], "page: \(restarted)")
                #expect(restarted.offsets == ["1", "2", "3", "4", "5", "6"])
                #expect(restarted.delivery?.contains("new epoch") == true, "page: \(restarted)")
                #expect(await eventually { (try? await reopened.savedPosition(of: "dora")) == FerryStreamPosition(epoch: epoch, offset: 6) })
            }
            await service.close()
        }
    }

    @Test("at-least-once pushes in ferry.js: async handlers run one at a time, in order, before the position moves; a handler that throws gets its message again, and what followed it, when the gateway resends")
    func failingHandlerGetsItAgain() async throws {
        var configuration = allListeners()
        // The resend time only decides when the failed message comes again; nothing waits on it.
        configuration.durablePush = FerryGateway.DurablePush(
            mailbox: FerryMemoryMailbox(), delivery: FerryPushService.Configuration(resendAfter: .milliseconds(300)))
        try await withGateway(configuration) { _, addresses, _ in
            let service = FerryPeer(logger: quietLogger())
            let inner = try await service.dial(try #require(addresses.inner))
            try await withChromium { browser in
                let page = try await browser.open("http://\(try #require(addresses.http))/ferry/demo?token=viewer")
                _ = try await page.demoView { $0.state == "open" }
                // A client of its own for eve, whose handler yields before it records and
                // fails the first time it sees "fail once".
                let subscribed = try await page.evaluate(
                    """
                    (async () => {
                      const { FerryClient } = await import('/ferry.js');
                      const client = new FerryClient(document.getElementById('url').textContent, { token: 'eve' });
                      window.eve = { client, seen: [], failed: false };
                      client.on('/chat/msg', async (body, { offset }) => {
                        const before = client.position.offset;
                        await new Promise((resolve) => setTimeout(resolve, 10));
                        if (body === 'fail once' && !window.eve.failed) { window.eve.failed = true; throw new Error('not now'); }
                        window.eve.seen.push(`${offset}:${body} after ${before}`);
                      });
                      await client.open();
                      await client.subscribe();
                      return 'subscribed';
                    })()
                    """, awaitPromise: true)
                #expect(subscribed == "subscribed")
                for text in ["a", "fail once", "b"] { _ = try await send(text, to: "eve", via: inner) }
                let seen = "JSON.stringify(window.eve.seen)"
                _ = await eventually(timeout: .seconds(30)) { (try? await page.evaluate(seen))?.contains("3:") == true }
                #expect(try await page.evaluate(seen) == #"["1:a after 0","2:fail once after 1","3:b after 2"]"#)
                #expect(try await page.evaluate("String(window.eve.failed)") == "true")
                #expect(try await page.evaluate("String(window.eve.client.position.offset)") == "3")
            }
            await service.close()
        }
    }
}

// MARK: Chromium
