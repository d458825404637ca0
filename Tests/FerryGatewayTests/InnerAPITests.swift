import Ferry
import FerryGateway
import FerryTestSupport
import NIOCore
import Testing

/// An outside client that records the pushes it receives on `/chat/msg`.
final class PushedClient: Sendable {
    let peer: FerryPeer
    let received = Recorded<String>()
    /// The reasons the gateway gave before closing the session.
    let closings = Recorded<String>()

    init(token: String) {
        peer = clientPeer(token: token)
        let received = self.received
        let closings = self.closings
        peer.router.push("/chat/msg") { (text: String, _: FerryContext) in received.append(text) }
        peer.router.push(FerryGateway.closingRoute) { (closing: FerryGateway.Closing, _: FerryContext) in closings.append(closing.reason) }
    }
}

@Suite("The gateway's inner API")
struct InnerAPITests {
    /// Calls an inner route with targets in the meta.
    func inner<Reply: Decodable & Sendable>(
        _ session: FerrySession, _ route: String, body: ByteBuffer = ByteBuffer(), codec: FerryCodecID = .none,
        users: [String] = [], sessions: [String] = [], pushRoute: String? = nil, as: Reply.Type
    ) async throws -> Reply {
        var meta = FerryMeta()
        for user in users { meta.add(FerryGateway.MetaKey.user, user) }
        for id in sessions { meta.add(FerryGateway.MetaKey.session, id) }
        if let pushRoute { meta.add(FerryGateway.MetaKey.pushRoute, pushRoute) }
        return try await session.call(route, body, options: FerryCallOptions(meta: meta, codec: codec))
    }

    @Test("push reaches every session of the users named, over raw socket and WebSocket, and not the others")
    func pushToUsers() async throws {
        try await withGateway(allListeners(logins: .multipleDevices(maximum: 3))) { gateway, addresses, _ in
            let erinPhone = PushedClient(token: "erin")
            let erinBrowser = PushedClient(token: "erin")
            let frank = PushedClient(token: "frank")
            _ = try await erinPhone.peer.dial(try #require(addresses.socket))
            _ = try await erinBrowser.peer.dial(try #require(addresses.webSocket))
            _ = try await frank.peer.dial(try #require(addresses.socket))
            #expect(await eventually { gateway.sessions(of: "erin").count == 2 && gateway.sessions(of: "frank").count == 1 })

            let service = FerryPeer(logger: quietLogger())
            let session = try await service.dial(try #require(addresses.inner))
            let written = try await inner(
                session, FerryGateway.InnerRoute.push, body: ByteBuffer(string: #""hi erin""#), codec: .json,
                users: ["erin", "nobody"], pushRoute: "/chat/msg", as: Int.self)
            #expect(written == 2)
            #expect(await eventually { erinPhone.received.all == ["hi erin"] && erinBrowser.received.all == ["hi erin"] })
            #expect(frank.received.all.isEmpty)

            let count = try await inner(session, FerryGateway.InnerRoute.count, as: FerryGateway.OnlineCount.self)
            #expect(count == FerryGateway.OnlineCount(users: 2, sessions: 3))
            let online: [String] = try await session.call(FerryGateway.InnerRoute.online, ["erin", "frank", "gina"])
            #expect(Set(online) == ["erin", "frank"])

            for client in [erinPhone, erinBrowser, frank] { await client.peer.close() }
            await service.close()
        }
    }

    @Test("push by session ID, and a push without a route is refused with 400")
    func pushToSession() async throws {
        try await withGateway(allListeners()) { _, addresses, _ in
            let gina = PushedClient(token: "gina")
            _ = try await gina.peer.dial(try #require(addresses.socket))
            let service = FerryPeer(logger: quietLogger())
            let session = try await service.dial(try #require(addresses.inner))
            #expect(await eventually {
                (try? await inner(session, FerryGateway.InnerRoute.count, as: FerryGateway.OnlineCount.self).sessions) == 1
            })
            let written = try await inner(
                session, FerryGateway.InnerRoute.push, body: ByteBuffer(string: "plain words"), codec: .plain,
                sessions: ["gina"], pushRoute: "/chat/msg", as: Int.self)
            #expect(written == 1)
            #expect(await eventually { gina.received.all == ["plain words"] })

            let status = await #expect(throws: FerryStatus.self) {
                _ = try await inner(session, FerryGateway.InnerRoute.push, users: ["gina"], as: Int.self)
            }
            #expect(status?.code == .badMessage)
            await gina.peer.close()
            await service.close()
        }
    }

    @Test("kick tells the client why, then closes the user's sessions")
    func kick() async throws {
        try await withGateway(allListeners()) { gateway, addresses, _ in
            let hank = PushedClient(token: "hank")
            let client = hank.peer
            let outside = try await client.dial(try #require(addresses.webSocket))
            #expect(await eventually { gateway.sessions(of: "hank").count == 1 })
            let service = FerryPeer(logger: quietLogger())
            let session = try await service.dial(try #require(addresses.inner))
            let kicked = try await inner(session, FerryGateway.InnerRoute.kick, users: ["hank"], as: Int.self)
            #expect(kicked == 1)
            #expect(await eventually { outside.isClosed })
            #expect(hank.closings.all == ["kicked"])
            #expect(gateway.sessions(of: "hank").isEmpty)
            await client.close()
            await service.close()
        }
    }
}

@Suite("The gateway tells clients why it closes them")
struct ClosingNoticeTests {
    @Test("single login: the older session is told it was replaced before it is closed")
    func replaced() async throws {
        try await withGateway(allListeners()) { _, addresses, _ in
            let older = PushedClient(token: "ines")
            let newer = PushedClient(token: "ines")
            let first = try await older.peer.dial(try #require(addresses.socket))
            _ = try await newer.peer.dial(try #require(addresses.socket))
            #expect(await eventually { first.isClosed })
            #expect(older.closings.all == ["replaced"])
            #expect(newer.closings.all.isEmpty)
            await older.peer.close()
            await newer.peer.close()
        }
    }
}
