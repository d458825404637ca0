@testable import Ferry
import Dispatch
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

/// Defects found by reading the session and the peer, each shown by a test that failed before
/// its fix.
@Suite("Session defects")
struct SessionDefectTests {
    /// A redial policy whose second attempt waits long: a session stays redialling for the test.
    static let slowRedial = FerryPeer.Redial(
        maximumAttempts: 1_000, baseDelay: .seconds(60), maximumDelay: .seconds(60), callsWaitForReconnect: true)

    @Test("a sender whose task is cancelled before it waits for a reconnect fails with 499 at once, not at its deadline")
    func cancelledBeforeWaiting() async throws {
        let (server, port) = try await RedialTests.startServer()
        let client = RedialTests.Client(policy: Self.slowRedial)
        let session = try await client.peer.dial(.tcp(host: "127.0.0.1", port: port))
        await server.close()
        #expect(await eventually { !session.isActive && !session.isClosed }, "the session is redialling")

        // The task is cancelled before it sends: the cancellation comes before the wait.
        let go = Signal<Void>()
        let sender = Task {
            await go.wait()
            return await statusThrown { try await session.push("/chat/say", "hi", options: .timeout(.seconds(3))) }
        }
        sender.cancel()
        go.fulfil(())
        let status = await sender.value
        #expect(status?.code == .cancelled, "got \(String(describing: status))")
        #expect(session.outstanding.reconnectWaiters == 0)
        await client.peer.close()
    }

    @Test("a waiter resumed before its deadline leaves no deadline task holding the session")
    func resumedWaiterCancelsItsDeadline() async throws {
        let (server, port) = try await RedialTests.startServer()
        let client = RedialTests.Client(
            policy: FerryPeer.Redial(maximumAttempts: 100, baseDelay: .milliseconds(20), maximumDelay: .milliseconds(50), callsWaitForReconnect: true))
        let session = try await Self.callAcrossARedial(client.peer, server: server, port: port)
        #expect(await eventually { session.value == nil }, "the session is released once closed, not kept by a 60 s waiter deadline")
        await client.peer.close()
    }

    /// Dials, restarts the server under the session, makes a call that waits for the redial
    /// (with a 60 s deadline), closes the session; returns a weak reference to it.
    private static func callAcrossARedial(_ client: FerryPeer, server: FerryPeer, port: Int) async throws -> WeakSession {
        let session = try await client.dial(.tcp(host: "127.0.0.1", port: port))
        await server.close()
        #expect(await eventually { !session.isActive })
        let (newServer, _) = try await RedialTests.startServer(port: port)
        let sum = try await session.call("/math/add", AddArgs(a: 2, b: 3), as: Int.self, options: .timeout(.seconds(60)))
        #expect(sum == 5)
        await session.close()
        await newServer.close()
        return WeakSession(session)
    }

    @Test("a failed redial during a go-away keeps the old connection, whose calls still get their replies")
    func goAwayWithNoSuccessorKeepsInFlightCalls() async throws {
        let hold = RedialTests.HoldRoute()
        defer { hold.gate.fulfil(()) }
        let (server, port) = try await RedialTests.startServer(hold: hold)
        let client = RedialTests.Client(
            policy: FerryPeer.Redial(maximumAttempts: 2, baseDelay: .milliseconds(10), maximumDelay: .milliseconds(20), callsWaitForReconnect: true))
        let session = try await client.peer.dial(.tcp(host: "127.0.0.1", port: port))
        let held = Task { try await session.call("/hold", (), as: String.self, options: .timeout(.seconds(20))) }
        #expect(await eventually { hold.started.count == 1 })

        // The server drains with no successor: the client's redials are refused.
        let drained = Task { await server.shutdown(drainTimeout: .seconds(20)) }
        #expect(await client.logs.waitFor { $0.message == "session closed: redial gave up" } != nil)
        hold.gate.fulfil(())
        let reply = try await withDeadline(.seconds(10), "the held call") { try await held.value }
        #expect(reply == "held")
        await drained.value
        await client.peer.close()
    }

    @Test("setID on a session that has closed neither evicts the live holder of that ID nor puts the closed session in the hub")
    func setIDAfterClose() async throws {
        let (server, listener) = try await makeServer()
        let client = FerryPeer(logger: quietLogger())
        let first = try await client.dial(listener.address)
        #expect(await eventually { server.hub.count == 1 })
        let gone = try #require(server.hub.all.first)
        let second = try await client.dial(listener.address)
        #expect(await eventually { server.hub.count == 2 })
        let live = try #require(server.hub.all.first { $0 !== gone })

        await first.close()
        #expect(await eventually { gone.isClosed })
        live.setID("alice")
        gone.setID("alice")

        #expect(server.hub.session(id: "alice") === live)
        #expect(server.hub.count == 1)
        #expect(!server.hub.all.contains { $0 === gone })
        #expect(try await second.call("/math/add", AddArgs(a: 1, b: 1), as: Int.self) == 2)
        #expect(!live.isClosed)
        await client.close()
        await server.close()
    }

    @Test("sessions that change their ID while they close never stay in the hub")
    func setIDRacingClose() async throws {
        let (server, listener) = try await makeServer()
        let client = FerryPeer(logger: quietLogger())
        for round in 0..<40 {
            let session = try await client.dial(listener.address)
            #expect(await eventually { server.hub.count == 1 })
            let serverSide = try #require(server.hub.all.first)
            async let renamed: Void = serverSide.setID("user-\(round)")
            async let closed: Void = session.close()
            _ = await (renamed, closed)
            #expect(await eventually { serverSide.isClosed })
            #expect(await eventually { server.hub.count == 0 }, "round \(round): the hub still holds \(server.hub.all)")
        }
        await client.close()
        await server.close()
    }

    @Test("concurrent accepts on several event loops never pass the connection limit")
    func connectionLimitHoldsUnderConcurrentAccepts() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 4)
        var configuration = FerryPeer.Configuration()
        configuration.limits.maximumConnections = 2
        let server = FerryPeer(configuration: configuration, eventLoopGroup: group, logger: quietLogger())
        let largest = Maximum()
        server.router.call("/math/add") { (args: AddArgs, _: FerryContext) in args.a + args.b }
        let listener = try await server.listen(.tcp(host: "127.0.0.1", port: 0))
        let clients = (0..<4).map { _ in FerryPeer(eventLoopGroup: group, logger: quietLogger()) }
        for _ in 0..<5 {
            let sessions = await withTaskGroup(of: FerrySession?.self) { dials in
                for index in 0..<60 {
                    dials.addTask { try? await clients[index % clients.count].dial(listener.address) }
                }
                var sessions: [FerrySession] = []
                for await session in dials {
                    if let session { sessions.append(session) }
                    largest.raise(to: server.connectionCount)
                }
                return sessions
            }
            largest.raise(to: server.connectionCount)
            for session in sessions { await session.close() }
            #expect(await eventually { server.connectionCount == 0 })
        }
        #expect(largest.value <= 2, "the server held \(largest.value) connections at once")
        for client in clients { await client.close() }
        await server.close()
        try await group.shutdownGracefully()
    }

    @Test("a push from a handler whose deadline has passed is not sent")
    func pushInheritsTheHandlerDeadline() async throws {
        let received = Counter()
        let pair = try await makePair { router in
            router.push("/note") { (_: String, _: FerryContext) in received.increment() }
        }
        let status = await FerryDeadline.$current.withValue(ContinuousClock.now - .seconds(1)) {
            await statusThrown { try await pair.session.push("/note", "late", options: .timeout(.seconds(5))) }
        }
        #expect(status?.code == .timedOut, "got \(String(describing: status))")
        // A call after it on the same connection: once it is answered, the push would have been handled.
        #expect(try await pair.session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) == 3)
        #expect(received.count == 0)
        await pair.close()
    }

    @Test("a broadcast to many sessions runs a bounded number of pushes at once")
    func broadcastIsBounded() async throws {
        let (server, port) = try await RedialTests.startServer()
        let client = RedialTests.Client(policy: Self.slowRedial)
        var dialled: [FerrySession] = []
        for _ in 0..<(FerrySessionHub.maximumConcurrentPushes + 20) {
            dialled.append(try await client.peer.dial(.tcp(host: "127.0.0.1", port: port)))
        }
        let sessions = dialled
        await server.close()
        #expect(await eventually { sessions.allSatisfy { !$0.isActive } })
        // Every push waits for a reconnect that does not come before its deadline.
        let broadcast = Task { try await client.peer.hub.broadcast("/news", "hi", options: .timeout(.seconds(30))) }
        let waiting: @Sendable () -> Int = { sessions.reduce(0) { $0 + $1.outstanding.reconnectWaiters } }
        #expect(await eventually { waiting() == FerrySessionHub.maximumConcurrentPushes })
        #expect(waiting() == FerrySessionHub.maximumConcurrentPushes)
        broadcast.cancel()
        _ = try? await broadcast.value
        #expect(await eventually { waiting() == 0 })
        await client.peer.close()
    }
}

/// The largest value seen, from any thread.
final class Maximum: Sendable {
    private let largest = Atomic<Int>(0)
    init() {}
    func raise(to value: Int) { largest.max(value, ordering: .relaxed) }
    var value: Int { largest.load(ordering: .relaxed) }
}

/// A count that goes up and down, from any thread.
final class Gauge: Sendable {
    private let value = Atomic<Int>(0)
    init() {}
    /// Goes up by one; returns the new value.
    func enter() -> Int { value.wrappingAdd(1, ordering: .relaxed).newValue }
    func leave() { value.wrappingSubtract(1, ordering: .relaxed) }
}

/// A session that is not kept alive by the test.
final class WeakSession: @unchecked Sendable {
    // Written once in init; read from any task.
    weak var value: FerrySession?
    init(_ session: FerrySession) { value = session }
}

@Suite("Connection count")
struct ConnectionCountTests {
    @Test("threads admitting and releasing at once never hold more connections than the limit")
    func neverPassesTheLimit() {
        let connections = ConnectionCount(limit: 3)
        // Who holds an admitted connection now, counted apart from the count under test.
        let holders = Gauge()
        let largest = Maximum()
        // Threads, not tasks: the admissions must truly overlap.
        DispatchQueue.concurrentPerform(iterations: 4) { _ in
            for _ in 0..<1_000_000 where connections.admit() {
                largest.raise(to: holders.enter())
                holders.leave()
                connections.release()
            }
        }
        #expect(largest.value <= 3, "held \(largest.value) at once")
        #expect(connections.current == 0)
    }

    @Test("a connection over the limit is refused and not counted; one served from elsewhere is counted unchecked")
    func refusesOverTheLimit() {
        let connections = ConnectionCount(limit: 1)
        #expect(connections.admit())
        #expect(!connections.admit())
        #expect(connections.current == 1)
        connections.add()
        #expect(connections.current == 2)
        connections.release()
        connections.release()
        #expect(connections.admit())
    }
}
