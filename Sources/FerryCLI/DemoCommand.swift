import ArgumentParser
import Ferry
import Logging
import Synchronization

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a server peer and two client peers in one process and show what they can do."
    )

    @Flag(help: "Show the micro-service layer instead: three nodes behind a FerryClient, one failing.")
    var cluster = false

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        logging.bootstrap()
        let ok = cluster ? try await ClusterDemo().run() : try await Demo().run()
        if !ok { throw ExitCode.failure }
    }
}

/// A message a peer received by PUSH, with who received it.
private struct Received: Sendable {
    var receiver: String
    var text: String
}

private final class Demo: Sendable {
    private let inbox: AsyncStream<Received>
    private let inboxWriter: AsyncStream<Received>.Continuation
    private let failures = Counter()

    init() {
        (inbox, inboxWriter) = AsyncStream.makeStream(of: Received.self)
    }

    func run() async throws -> Bool {
        print("Ferry demo: one server peer and two client peers (alice, bob) on loopback.\n")

        let server = FerryPeer(logger: Logger(label: "demo.server"))
        DemoRoutes.install(on: server.router)
        server.router.call("/login") { (name: String, context) -> String in
            context.session.setID(name)
            return "welcome, \(name)"
        }
        server.router.push("/chat/say") { [inboxWriter] (text: String, context) in
            inboxWriter.yield(Received(receiver: "server", text: "\(context.session.id): \(text)"))
        }
        let listener = try await server.listen(.tcp(host: "127.0.0.1", port: 0))
        print("server    listening on \(listener.address)")

        let alice = try await connectClient("alice", to: listener.address)
        let bob = try await connectClient("bob", to: listener.address)
        print("clients   alice and bob connected and logged in; the server's hub holds \(server.hub.count) sessions\n")

        // 1. A call from a client.
        let sum: Int = try await alice.session.call("/math/add", AddArguments(a: 1, b: 2))
        report(sum == 3, "call      alice -> server /math/add {a:1, b:2} returned \(sum)")

        // 2. Meta travels and comes back.
        let echo = try await bob.session.callForReply("/echo", "hello", options: FerryCallOptions(meta: ["trace": "demo-1"], codec: .plain))
        let echoed = try echo.decode(String.self)
        report(echoed == "hello" && echo.meta["trace"] == "demo-1",
               "call      bob -> server /echo \"hello\" returned \"\(echoed)\" with meta trace=\(echo.meta["trace"] ?? "-") in \(millisecondsText(echo.cost))")

        // 3. A push from a client to the server.
        try await alice.session.push("/chat/say", "hi everyone")
        let heard = await next(within: .seconds(2))
        report(heard?.receiver == "server" && heard?.text == "alice: hi everyone",
               "push      alice -> server /chat/say; the server received \"\(heard?.text ?? "nothing")\"")

        // 4. A broadcast from the server to every session.
        let delivered = try await server.hub.broadcast("/chat/message", "server: hello all")
        var receivers: [String] = []
        for _ in 0..<delivered { if let got = await next(within: .seconds(2)) { receivers.append(got.receiver) } }
        report(delivered == 2 && Set(receivers) == ["alice", "bob"],
               "broadcast server -> \(delivered) sessions /chat/message; received by \(receivers.sorted().joined(separator: " and "))")

        // 5. A push from the server to one user, found by session ID.
        let bobOnServer = server.hub.session(id: "bob")
        try await bobOnServer?.push("/chat/message", "just for you, bob")
        let direct = await next(within: .seconds(2))
        report(direct?.receiver == "bob", "push      server -> bob (by session ID) /chat/message; \(direct?.receiver ?? "nobody") received \"\(direct?.text ?? "")\"")

        // 6. The server calls a client.
        let name: String = try await server.hub.session(id: "alice")!.call("/client/name", "who are you?")
        report(name == "I am alice", "call      server -> alice /client/name returned \"\(name)\"")

        // 7. An error reply with a status.
        do {
            try await alice.session.call("/fail", "", as: Void.self)
            report(false, "error     /fail unexpectedly succeeded")
        } catch let status as FerryStatus {
            report(status.code == DemoRoutes.failureCode, "error     alice -> server /fail answered status \(status)")
        }

        // 8. An unknown route.
        do {
            try await bob.session.call("/no/such/route", "", as: Void.self)
            report(false, "not found /no/such/route unexpectedly succeeded")
        } catch let status as FerryStatus {
            report(status.code == .notFound, "not found bob -> server /no/such/route answered status \(status.code) (\(status.message))")
        }

        // 9. A call that times out.
        let started = ContinuousClock.now
        do {
            let _: String = try await alice.session.call("/slow", 2000, options: .timeout(.milliseconds(200)))
            report(false, "timeout   /slow unexpectedly answered in time")
        } catch let status as FerryStatus {
            let waited = started.duration(to: .now)
            report(status.code == .timedOut && waited < .seconds(1),
                   "timeout   alice -> server /slow (2 s of work) with a 200 ms deadline failed with status \(status.code) after \(millisecondsText(waited))")
        }

        await alice.peer.close()
        await bob.peer.close()
        await server.close()
        inboxWriter.finish()
        let failed = failures.value
        print(failed == 0 ? "\nAll steps behaved as expected." : "\n\(failed) step(s) did not behave as expected.")
        return failed == 0
    }

    private func connectClient(_ name: String, to address: FerryAddress) async throws -> (peer: FerryPeer, session: FerrySession) {
        let peer = FerryPeer(logger: Logger(label: "demo.\(name)"))
        peer.router.push("/chat/message") { [inboxWriter] (text: String, _) in
            inboxWriter.yield(Received(receiver: name, text: text))
        }
        peer.router.call("/client/name") { (_: String, _) in "I am \(name)" }
        let session = try await peer.dial(address)
        let _: String = try await session.call("/login", name)
        return (peer, session)
    }

    private func next(within timeout: Duration) async -> Received? {
        await withTaskGroup(of: Received?.self) { group in
            group.addTask { [inbox] in
                for await item in inbox { return item }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    private func report(_ ok: Bool, _ line: String) {
        print((ok ? "  ok   " : "  FAIL ") + line)
        if !ok { failures.increment() }
    }
}

/// Prints a duration as milliseconds.
func millisecondsText(_ duration: Duration) -> String {
    "\(milliseconds(duration)) ms"
}

private final class Counter: Sendable {
    private let storage = Mutex(0)
    func increment() { storage.withLock { $0 += 1 } }
    var value: Int { storage.withLock { $0 } }
}

