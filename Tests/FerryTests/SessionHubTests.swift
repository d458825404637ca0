import Ferry
import NIOCore
import Testing

@Suite("Session hub")
struct SessionHubTests {
    /// Routes for identity tests: `/whoami` answers the session ID the server sees, `/login`
    /// sets it.
    static func identityRoutes(_ router: FerryRouter) {
        router.call("/whoami") { (_: Void, ctx: FerryContext) in ctx.session.id }
        router.call("/login") { (name: String, ctx: FerryContext) in
            ctx.session.setID(name)
            return ctx.session.id
        }
    }

    @Test("a session's ID defaults to its remote address, on both sides")
    func defaultID() async throws {
        let pair = try await makePair(configure: Self.identityRoutes)
        guard case .tcp(let host, let serverPort) = pair.listener.address else {
            Issue.record("expected a TCP listener")
            return
        }

        // Client side: the dialled address.
        #expect(pair.session.id == "\(host):\(serverPort)")
        #expect(pair.session.id == pair.session.remoteAddress)
        #expect(pair.client.hub.session(id: pair.session.id) === pair.session)

        // Server side: the client's address and ephemeral port.
        let seen = try await pair.session.call("/whoami", (), as: String.self)
        #expect(seen.hasPrefix("127.0.0.1:"))
        #expect(seen != "127.0.0.1:\(serverPort)")
        #expect(await eventually { pair.server.hub.count == 1 })
        let accepted = try #require(pair.server.hub.session(id: seen))
        #expect(accepted.remoteAddress == seen)
        #expect(accepted.isDialled == false)
        #expect(pair.session.isDialled == true)
        await pair.close()
    }

    @Test("setID re-keys the session in the hub")
    func setIDRekeys() async throws {
        let pair = try await makePair(configure: Self.identityRoutes)
        let address = try await pair.session.call("/whoami", (), as: String.self)
        #expect(await eventually { pair.server.hub.session(id: address) != nil })

        let newID = try await pair.session.call("/login", "alice", as: String.self)
        #expect(newID == "alice")
        #expect(pair.server.hub.session(id: address) == nil, "the old key is gone")
        let renamed = try #require(pair.server.hub.session(id: "alice"))
        #expect(renamed.remoteAddress == address)
        #expect(pair.server.hub.count == 1)

        // Setting the same ID again keeps the session open.
        #expect(try await pair.session.call("/login", "alice", as: String.self) == "alice")
        #expect(try await pair.session.call("/whoami", (), as: String.self) == "alice")
        #expect(pair.server.hub.count == 1)

        // The dialling side can rename its own session too.
        pair.session.setID("server-1")
        #expect(pair.session.id == "server-1")
        #expect(pair.client.hub.session(id: "server-1") === pair.session)
        #expect(pair.client.hub.count == 1)
        await pair.close()
    }

    @Test("single login: a second session taking the same ID closes the older one")
    func singleLogin() async throws {
        let (server, listener) = try await makeServer(configure: Self.identityRoutes)
        let firstClient = FerryPeer()
        let secondClient = FerryPeer()
        let first = try await firstClient.dial(listener.address)
        let second = try await secondClient.dial(listener.address)

        #expect(try await first.call("/login", "alice", as: String.self) == "alice")
        let secondAddress = try await second.call("/whoami", (), as: String.self)
        #expect(try await second.call("/login", "alice", as: String.self) == "alice")

        #expect(await eventually { !first.isActive }, "the older session is closed")
        let status = await statusThrown { try await first.call("/whoami", (), as: String.self) }
        #expect(status?.code == .connectionClosed)

        #expect(await eventually { server.hub.count == 1 })
        #expect(server.hub.session(id: "alice")?.remoteAddress == secondAddress, "the newer session holds the ID")
        #expect(try await second.call("/whoami", (), as: String.self) == "alice")

        await firstClient.close()
        await secondClient.close()
        await server.close()
    }

    @Test("the hub count drops when clients disconnect")
    func countDropsOnDisconnect() async throws {
        let (server, listener) = try await makeServer()
        let clients = [FerryPeer(), FerryPeer()]
        var sessions: [FerrySession] = []
        for client in clients { sessions.append(try await client.dial(listener.address)) }
        #expect(await eventually { server.hub.count == 2 })

        await sessions[0].close()
        #expect(await eventually { server.hub.count == 1 }, "count is \(server.hub.count)")
        await clients[1].close()
        #expect(await eventually { server.hub.count == 0 }, "count is \(server.hub.count)")
        #expect(clients[0].hub.count == 0)
        #expect(clients[1].hub.count == 0)

        await clients[0].close()
        await server.close()
    }

    @Test("broadcast reaches every connected session")
    func broadcast() async throws {
        let (server, listener) = try await makeServer()
        var clients: [FerryPeer] = []
        var received: [Signal<String>] = []
        for _ in 0..<3 {
            let client = FerryPeer()
            let signal = Signal<String>()
            client.router.push("/news") { (text: String, _: FerryContext) in signal.fulfil(text) }
            _ = try await client.dial(listener.address)
            clients.append(client)
            received.append(signal)
        }
        #expect(await eventually { server.hub.count == 3 })

        let delivered = try await server.hub.broadcast("/news", "extra")
        #expect(delivered == 3)
        for signal in received {
            #expect(await signal.wait(timeout: .seconds(5)) == "extra")
        }

        for client in clients { await client.close() }
        await server.close()
    }
}
