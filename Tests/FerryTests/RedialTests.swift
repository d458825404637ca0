import Ferry
import Logging
import NIOCore
import Testing

@Suite("Redial")
struct RedialTests {
    static func policy(attempts: Int = 20, waitForReconnect: Bool = true) -> FerryPeer.Redial {
        FerryPeer.Redial(
            maximumAttempts: attempts, baseDelay: .milliseconds(50), maximumDelay: .milliseconds(200),
            callsWaitForReconnect: waitForReconnect)
    }

    /// A `/hold` route whose handlers wait for the gate.
    final class HoldRoute: Sendable {
        let gate = Signal<Void>()
        let started = Counter()
    }

    /// A server on 127.0.0.1 at `port` (0: any), with the standard routes and, given `hold`, its
    /// `/hold` route.
    static func startServer(
        port: Int = 0, configuration: FerryPeer.Configuration = FerryPeer.Configuration(), hold: HoldRoute? = nil
    ) async throws -> (FerryPeer, Int) {
        let (server, listener) = try await makeServer(configuration, address: .tcp(host: "127.0.0.1", port: port)) { router in
            guard let hold else { return }
            router.call("/hold") { (_: Void, _: FerryContext) async -> String in
                hold.started.increment()
                await hold.gate.wait()
                return "held"
            }
        }
        guard case .tcp(_, let bound) = listener.address else {
            await server.close()
            throw SetupError(what: "expected a TCP listener")
        }
        return (server, bound)
    }

    /// A client with `policy` that counts dial hooks and disconnects.
    struct Client {
        let peer: FerryPeer
        let dials = Counter()
        let disconnects = Counter()
        let logs = LogStore()

        init(policy: FerryPeer.Redial, auth: FerryAuth? = nil) {
            var configuration = FerryPeer.Configuration(auth: auth, redial: policy)
            let dials = self.dials
            let disconnects = self.disconnects
            configuration.hooks.onDial = { _ in dials.increment() }
            configuration.hooks.onDisconnect = { _ in disconnects.increment() }
            peer = FerryPeer(configuration: configuration, logger: logs.logger(label: "client"))
        }
    }

    @Test("a broken connection fails pending calls at once with 102, then redials, keeps the session ID and re-runs the dial hook")
    func redialsAfterServerRestart() async throws {
        let hold = HoldRoute()
        defer { hold.gate.fulfil(()) }
        let first = try await Self.startServer(hold: hold)
        var server = first.0
        let port = first.1
        let client = Client(policy: Self.policy())
        let session = try await client.peer.dial(.tcp(host: "127.0.0.1", port: port))
        session.setID("alice")
        #expect(client.dials.count == 1)
        #expect(try await session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) == 3)

        for round in 1...2 {
            // A call is pending when the server goes away.
            let pending = Task { await statusThrown { try await session.call("/hold", (), as: String.self, options: .timeout(.seconds(30))) } }
            #expect(await eventually { hold.started.count == round }, "round \(round): the call reached the server")
            let brokeAt = ContinuousClock.now
            await server.close()
            let status = try await withDeadline(.seconds(20), "the pending call") { await pending.value }
            let failedAfter = brokeAt.duration(to: .now)
            #expect(status?.code == .connectionClosed, "round \(round): got \(String(describing: status))")
            #expect(failedAfter < .seconds(10), "round \(round): the pending call fails at once, not at its 30 s timeout (\(failedAfter))")
            #expect(await eventually { !session.isActive })

            // The server comes back on the same port; the session reconnects by itself.
            try await Task.sleep(for: .milliseconds(200))
            (server, _) = try await Self.startServer(port: port, hold: hold)
            #expect(await eventually(timeout: .seconds(5)) { session.isActive }, "round \(round): the session is active again")
            #expect(session.id == "alice", "the session keeps its ID")
            #expect(client.peer.hub.session(id: "alice") === session)
            #expect(client.dials.count == 1 + round, "the dial hook runs again on each redial")
            #expect(client.disconnects.count == 0, "a redialled session is not reported as disconnected")
            #expect(try await session.call("/math/add", AddArgs(a: round, b: 40), as: Int.self, options: .timeout(.seconds(5))) == 40 + round)
            let restarted = server
            #expect(await eventually { restarted.hub.count == 1 }, "the new server sees the redialled session")
        }
        #expect(client.logs.first { $0.message == "redialled" } != nil, "each redial is logged")
        await client.peer.close()
        await server.close()
    }

    @Test("with callsWaitForReconnect a call made while redialling succeeds once the server is back")
    func callWaitsForReconnect() async throws {
        let first = try await Self.startServer()
        var server = first.0
        let port = first.1
        let client = Client(policy: Self.policy(waitForReconnect: true))
        let session = try await client.peer.dial(.tcp(host: "127.0.0.1", port: port))
        #expect(try await session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) == 3)

        await server.close()
        #expect(await eventually { !session.isActive })
        let waiting = Task {
            try await timed { try await session.call("/math/add", AddArgs(a: 2, b: 3), as: Int.self, options: .timeout(.seconds(30))) }
        }
        try await Task.sleep(for: .milliseconds(400))
        (server, _) = try await Self.startServer(port: port)
        let (sum, took) = try await waiting.value
        #expect(sum == 5, "the waiting call goes through on the new connection")
        #expect(took >= .milliseconds(300), "it waited for the server (\(took))")
        #expect(session.isActive)
        await client.peer.close()
        await server.close()
    }

    @Test("a call made while redialling waits until its deadline at most, then fails with 408")
    func callWaitingPastDeadline() async throws {
        let (server, port) = try await Self.startServer()
        let client = Client(policy: Self.policy(waitForReconnect: true))
        let session = try await client.peer.dial(.tcp(host: "127.0.0.1", port: port))
        await server.close()
        #expect(await eventually { !session.isActive })
        let (status, took) = await timed {
            await statusThrown { try await session.call("/math/add", AddArgs(a: 2, b: 3), as: Int.self, options: .timeout(.seconds(1))) }
        }
        // 408 at the deadline; 102 only if redialling has already given up.
        #expect(status?.code == .timedOut || status?.code == .connectionClosed, "got \(String(describing: status))")
        #expect(took < .seconds(8), "the call does not outlive its deadline by much (\(took))")
        await client.peer.close()
    }

    @Test("without callsWaitForReconnect a call made while redialling fails at once with 102")
    func callFailsFastWhileRedialling() async throws {
        let (server, port) = try await Self.startServer()
        let client = Client(policy: Self.policy(waitForReconnect: false))
        let session = try await client.peer.dial(.tcp(host: "127.0.0.1", port: port))
        #expect(try await session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) == 3)

        await server.close()
        #expect(await eventually { !session.isActive })
        let (status, took) = await timed {
            await statusThrown { try await session.call("/math/add", AddArgs(a: 2, b: 3), as: Int.self, options: .timeout(.seconds(30))) }
        }
        #expect(status?.code == .connectionClosed, "got \(String(describing: status))")
        #expect(took < .seconds(5), "fails at once, not at its 30 s timeout (\(took))")

        // Once the server is back, the session works again.
        let (again, _) = try await Self.startServer(port: port)
        #expect(await eventually(timeout: .seconds(5)) { session.isActive })
        #expect(try await session.call("/math/add", AddArgs(a: 3, b: 4), as: Int.self, options: .timeout(.seconds(2))) == 7)
        await client.peer.close()
        await again.close()
    }

    @Test("redial gives up after maximumAttempts: the session stays closed, calls fail with 102, onDisconnect runs once")
    func redialGivesUp() async throws {
        let (server, port) = try await Self.startServer()
        let attempts = 5
        let client = Client(policy: Self.policy(attempts: attempts))
        let session = try await client.peer.dial(.tcp(host: "127.0.0.1", port: port))
        #expect(try await session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) == 3)

        await server.close()
        // 5 waits of at most 200 ms each, plus the failing connects: the bound is for a busy machine.
        #expect(await eventually(timeout: .seconds(30)) { client.disconnects.count == 1 }, "onDisconnect runs when redial gives up")
        let failures = client.logs.all.filter { $0.message == "redial attempt failed" }
        #expect(failures.count == attempts, "one logged failure per attempt: \(failures.count)")
        #expect(client.logs.first { $0.message.contains("redial gave up") } != nil)
        #expect(!session.isActive)
        #expect(client.dials.count == 1, "the dial hook never ran again: no connection was made")

        let (status, took) = await timed {
            await statusThrown { try await session.call("/math/add", AddArgs(a: 2, b: 3), as: Int.self, options: .timeout(.seconds(30))) }
        }
        #expect(status?.code == .connectionClosed, "got \(String(describing: status))")
        #expect(took < .seconds(5), "a closed session fails at once, not at its 30 s timeout (\(took))")
        #expect(client.peer.hub.count == 0, "the session left the hub")

        // Nothing more happens later: no second disconnect, no new attempts.
        try await Task.sleep(for: .milliseconds(300))
        #expect(client.disconnects.count == 1)
        #expect(client.logs.all.filter { $0.message == "redial attempt failed" }.count == attempts)
        await client.peer.close()
    }

    @Test("each redial runs the auth handshake again; one the server refuses stops redialling and logs auth refused")
    func redialReauthenticates() async throws {
        let verified = Counter()
        let accepting = FerryAuth(verify: { token, _ in
            guard token == "secret" else { throw FerryStatus(.unauthorized, "Unauthorized") }
            verified.increment()
            return "ok"
        })
        let refusals = Counter()
        let refusing = FerryAuth(verify: { _, _ in
            refusals.increment()
            throw FerryStatus(.unauthorized, "Unauthorized", cause: "revoked")
        })
        let (first, port) = try await Self.startServer(configuration: FerryPeer.Configuration(auth: accepting))
        let client = Client(policy: Self.policy(), auth: FerryAuth(credential: { "secret" }))
        let session = try await client.peer.dial(.tcp(host: "127.0.0.1", port: port))
        #expect(try await session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) == 3)
        #expect(verified.count == 1)

        // Back with the same credential check: the redial authenticates again.
        await first.close()
        #expect(await eventually { !session.isActive })
        let (second, _) = try await Self.startServer(port: port, configuration: FerryPeer.Configuration(auth: accepting))
        #expect(await eventually(timeout: .seconds(5)) { session.isActive })
        #expect(verified.count >= 2, "the redial ran the auth handshake")
        #expect(try await session.call("/math/add", AddArgs(a: 2, b: 2), as: Int.self, options: .timeout(.seconds(2))) == 4)

        // Back with a check that now refuses: redialling stops.
        await second.close()
        #expect(await eventually { !session.isActive })
        let (strict, _) = try await Self.startServer(port: port, configuration: FerryPeer.Configuration(auth: refusing))
        let logged = await client.logs.waitFor(timeout: .seconds(5)) { $0.message.contains("auth refused") }
        #expect(logged != nil, "the client logs that the redial was refused")
        #expect(await eventually { client.disconnects.count == 1 }, "the session is given up")
        // It does not keep trying. (A refusal the client never read, because the connection
        // closed before the reply was processed, counts as a failed attempt and is tried again:
        // the server may have counted more than one, but none after the one the client read.)
        let refusedBeforeGivingUp = refusals.count
        #expect(refusedBeforeGivingUp >= 1)
        try await Task.sleep(for: .milliseconds(600))
        #expect(refusals.count == refusedBeforeGivingUp, "no attempt after the refusal: \(client.logs.all.map { "\($0.message) \($0.metadata)" })")
        #expect(!session.isActive)
        let status = await statusThrown { try await session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self, options: .timeout(.seconds(2))) }
        #expect(status?.code == .connectionClosed)
        await client.peer.close()
        await strict.close()
    }

    @Test("closing a session while it redials stops it for good, even mid-redial")
    func closeDuringRedial() async throws {
        let (server, port) = try await Self.startServer()
        let redialHookStarted = Signal<Void>()
        let redialHookFinished = Signal<Void>()
        var configuration = FerryPeer.Configuration(redial: Self.policy())
        let dials = Counter()
        let disconnects = Counter()
        configuration.hooks.onDial = { _ in
            dials.increment()
            guard dials.count > 1 else { return }
            // A slow dial hook on the redial: the session is closed meanwhile.
            redialHookStarted.fulfil(())
            try? await Task.sleep(for: .milliseconds(300))
            redialHookFinished.fulfil(())
        }
        configuration.hooks.onDisconnect = { _ in disconnects.increment() }
        let client = FerryPeer(configuration: configuration, logger: quietLogger())
        let session = try await client.dial(.tcp(host: "127.0.0.1", port: port))

        await server.close()
        #expect(await eventually { !session.isActive })
        let (back, _) = try await Self.startServer(port: port)
        #expect(await redialHookStarted.wait(timeout: .seconds(5)) != nil, "a redial connects and runs the dial hook")
        await session.close()

        // Once the hook returns, the redial finds the session closed: the connection it made is
        // closed, not adopted.
        #expect(await redialHookFinished.wait(timeout: .seconds(10)) != nil)
        #expect(await eventually { back.hub.count == 0 }, "no connection is left open to the server")
        #expect(!session.isActive, "a session closed by this side stays closed")
        #expect(disconnects.count == 1)
        let status = await statusThrown { try await session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self, options: .timeout(.seconds(1))) }
        #expect(status?.code == .connectionClosed, "got \(String(describing: status))")
        await client.close()
        await back.close()
    }
}
