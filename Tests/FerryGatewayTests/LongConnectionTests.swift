import Ferry
import FerryGateway
import FerryTestSupport
import NIOCore
import Testing

@Suite("Long connections through the gateway")
struct LongConnectionTests {
    /// The gateway's raw-socket and WebSocket listeners, for tests that run over both.
    enum Listener: String, CaseIterable, CustomTestStringConvertible {
        case socket, webSocket
        var testDescription: String { rawValue }

        func address(_ addresses: FerryGateway.ListeningAddresses) throws -> FerryAddress {
            switch self {
            case .socket: try #require(addresses.socket)
            case .webSocket: try #require(addresses.webSocket)
            }
        }
    }

    @Test("an authenticated client's calls reach the service with its user, session and IP in the meta, and spoofed values replaced", arguments: Listener.allCases)
    func proxiedCall(listener: Listener) async throws {
        try await withGateway(allListeners()) { gateway, addresses, _ in
            let client = clientPeer(token: "alice")
            let session = try await client.dial(listener.address(addresses))
            let sum: Int = try await session.call("/math/add", Add(a: 1, b: 2))
            #expect(sum == 3)

            let spoofed = FerryCallOptions(meta: ["X-Ferry-User": "mallory", "X-Real-IP": "6.6.6.6", "keep": "me"])
            let meta: [String: [String]] = try await session.call("/echo/meta", (), options: spoofed)
            #expect(meta["X-Ferry-User"] == ["alice"])
            #expect(meta["X-Ferry-Session"] == ["alice"])
            #expect(meta["X-Real-IP"] == ["127.0.0.1"])
            #expect(meta["keep"] == ["me"], "the client's own meta passes")
            #expect(gateway.sessions(of: "alice").count == 1)
            await client.close()
        }
    }

    @Test("a service's failure comes back to the client with its status intact", arguments: Listener.allCases)
    func statusIntact(listener: Listener) async throws {
        try await withGateway(allListeners()) { _, addresses, _ in
            let client = clientPeer(token: "alice")
            let session = try await client.dial(listener.address(addresses))
            let reply = try await session.callForReply("/fail/status", Int32(1001))
            #expect(reply.status.code == 1001)
            #expect(reply.status.message == "Told To Fail")
            #expect(reply.status.cause == "code 1001")
            await client.close()
        }
    }

    @Test("a client's push reaches the service with the user in its meta")
    func proxiedPush() async throws {
        try await withGateway(allListeners()) { _, addresses, backend in
            let client = clientPeer(token: "bob")
            let session = try await client.dial(try #require(addresses.socket))
            try await session.push("/chat/say", "hello")
            #expect(await eventually { !backend.pushes.all.isEmpty })
            let (text, meta) = try #require(backend.pushes.all.first)
            #expect(text == "hello")
            #expect(meta["X-Ferry-User"] == "bob")
            await client.close()
        }
    }

    @Test("a token the verifier refuses fails the dial with 401, and the gateway keeps no session")
    func refusedToken() async throws {
        try await withGateway(allListeners()) { gateway, addresses, _ in
            let client = clientPeer(token: "not a user name!")
            let error = await #expect(throws: (any Error).self) {
                _ = try await client.dial(try #require(addresses.socket))
            }
            #expect("\(String(describing: error))".contains("401"), "\(String(describing: error))")
            #expect(gateway.outerPeer.hub.count == 0)
            await client.close()
        }
    }

    @Test("a client that never authenticates is closed after the auth timeout", arguments: Listener.allCases)
    func neverAuthenticates(listener: Listener) async throws {
        try await withGateway(allListeners(authTimeout: .seconds(1))) { gateway, addresses, _ in
            let silent = FerryPeer(logger: quietLogger())
            // On a busy machine the gateway's deadline can pass before the dial is done: the
            // dial then fails because the gateway closed the connection, which is the promise too.
            do {
                let session = try await silent.dial(listener.address(addresses))
                #expect(await eventually(timeout: .seconds(20)) { session.isClosed }, "closed by the gateway")
            } catch let status as FerryStatus {
                #expect(status.code == .dialFailed && status.description.contains("closed"), "\(status)")
            }
            #expect(gateway.outerPeer.hub.count == 0)
            await silent.close()
        }
    }

    @Test("single login: a second session of a user closes the first")
    func singleLogin() async throws {
        try await withGateway(allListeners()) { gateway, addresses, _ in
            let first = clientPeer(token: "carol")
            let second = clientPeer(token: "carol")
            let one = try await first.dial(try #require(addresses.socket))
            let two = try await second.dial(try #require(addresses.webSocket))
            #expect(await eventually { one.isClosed }, "the older session is closed")
            #expect(!two.isClosed)
            #expect(gateway.sessions(of: "carol").count == 1)
            let sum: Int = try await two.call("/math/add", Add(a: 2, b: 2))
            #expect(sum == 4)
            await first.close()
            await second.close()
        }
    }

    @Test("several devices: up to the maximum sessions per user, the next refused; a closed one frees its place")
    func multipleDevices() async throws {
        try await withGateway(allListeners(logins: .multipleDevices(maximum: 2))) { gateway, addresses, _ in
            let peers = (0..<3).map { _ in clientPeer(token: "dave") }
            let phone = try await peers[0].dial(try #require(addresses.socket))
            let laptop = try await peers[1].dial(try #require(addresses.socket))
            #expect(await eventually { gateway.sessions(of: "dave").count == 2 })
            await #expect(throws: (any Error).self) {
                _ = try await peers[2].dial(try #require(addresses.socket))
            }
            let meta: [String: [String]] = try await laptop.call("/echo/meta", ())
            #expect(meta["X-Ferry-User"] == ["dave"])
            #expect(meta["X-Ferry-Session"]?.first?.hasPrefix("dave#") == true)
            await phone.close()
            #expect(await eventually { gateway.sessions(of: "dave").count == 1 })
            let tablet = try await peers[2].dial(try #require(addresses.socket))
            #expect(!tablet.isClosed)
            for peer in peers { await peer.close() }
        }
    }
}

@Suite("Floods of connections at the gateway")
struct ConnectionFloodTests {
    @Test("connections that never authenticate are bounded: past the bound they are closed at accept, authenticated users keep working, and the room comes back as they go", arguments: LongConnectionTests.Listener.allCases)
    func unauthenticatedFlood(listener: LongConnectionTests.Listener) async throws {
        // The silent connections must outlive the test's waits on a busy machine: their auth
        // deadline is not what this test is about.
        var configuration = allListeners(authTimeout: .seconds(120))
        configuration.outerPeer.limits.maximumUnauthenticatedConnections = 2
        try await withGateway(configuration) { _, addresses, _ in
            let address = try listener.address(addresses)
            let user = clientPeer(token: "lena")
            let session = try await user.dial(address)

            // Three connections that do not authenticate, against a bound of two: one of them is
            // refused at accept (which one depends on the order the server accepts them in).
            let flood = FerryPeer(logger: quietLogger())
            var dialled: [FerrySession] = []
            for _ in 0..<3 {
                if let session = try? await flood.dial(address) { dialled.append(session) }
            }
            let attempts = dialled
            #expect(await eventually { attempts.filter(\.isClosed).count + (3 - attempts.count) == 1 }, "one of three is refused")
            let held = attempts.filter { !$0.isClosed }
            #expect(held.count == 2, "two are held")

            let sum: Int = try await session.call("/math/add", Add(a: 5, b: 5))
            #expect(sum == 10, "an authenticated session is not affected")

            for session in held { await session.close() }
            let late = clientPeer(token: "mia")
            #expect(await eventually {
                guard let session = try? await late.dial(address) else { return false }
                return (try? await session.call("/math/add", Add(a: 1, b: 1), as: Int.self)) == 2
            }, "a new user gets in once the flood has gone")
            await user.close()
            await flood.close()
            await late.close()
        }
    }
}
