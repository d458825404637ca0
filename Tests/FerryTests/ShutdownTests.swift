import Ferry
import Logging
import NIOCore
import ServiceLifecycle
import Testing

@Suite("Graceful shutdown")
struct ShutdownTests {
    /// The status of a call refused because the peer is draining: 106 "Shutting Down" (not
    /// handled, safe to retry), as ``FerryPeer/shutdown(drainTimeout:)`` documents.
    static let drainRefusal = FerryStatus(.shuttingDown, "Shutting Down")

    /// A `/work` route whose handlers wait for the gate, then sleep a little and answer "done".
    final class GatedRoute: Sendable {
        let gate = Signal<Void>()
        let started = Counter()
        let finished = Counter()

        func register(on router: FerryRouter) {
            router.call("/work") { [gate, started, finished] (_: Void, _: FerryContext) async -> String in
                started.increment()
                await gate.wait()
                try? await Task.sleep(for: .milliseconds(100))
                finished.increment()
                return "done"
            }
        }
    }

    @Test("shutdown lets an in-flight handler finish and its reply reach the client, refuses new calls with 106, stops accepting, and closes idle sessions promptly")
    func drainsInFlightWork() async throws {
        let route = GatedRoute()
        let hookRuns = Counter()
        var configuration = FerryPeer.Configuration()
        configuration.hooks.onShutdown = { hookRuns.increment() }
        let (server, listener) = try await makeServer(configuration) { route.register(on: $0) }
        let busyClient = FerryPeer(logger: quietLogger())
        let idleClient = FerryPeer(logger: quietLogger())
        let lateClient = FerryPeer(logger: quietLogger())
        defer { route.gate.fulfil(()) }
        let busy = try await busyClient.dial(listener.address)
        let idle = try await idleClient.dial(listener.address)
        #expect(await eventually { server.hub.count == 2 })

        // The drain timeout is far longer than anything here takes, even on a busy machine, so
        // that "well before the drain timeout" cannot be a matter of luck.
        let inFlight = Task { try await busy.call("/work", (), as: String.self, options: .timeout(.seconds(60))) }
        #expect(await eventually { route.started.count == 1 })

        let start = ContinuousClock.now
        let shutdown = Task { await server.shutdown(drainTimeout: .seconds(30)) }
        #expect(await eventually { hookRuns.count == 1 }, "the shutdown hook runs")

        // Idle sessions go at once, well before the drain timeout.
        #expect(await eventually(timeout: .seconds(10)) { !idle.isActive }, "the idle session is closed promptly")
        // A new call on the busy session is refused, unhandled.
        let refused = try await busy.callForReply("/work", (), options: .timeout(.seconds(10)))
        #expect(refused.status.code == Self.drainRefusal.code, "got \(refused.status)")
        #expect(refused.status.message == Self.drainRefusal.message)
        #expect(route.started.count == 1, "the refused call never reached its handler")
        // The listener no longer accepts.
        let dial = await statusThrown { try await lateClient.dial(listener.address) }
        #expect(dial?.code == .dialFailed, "a new dial fails with 105: \(String(describing: dial))")

        // The in-flight handler finishes and its reply arrives.
        route.gate.fulfil(())
        #expect(try await inFlight.value == "done")
        #expect(route.finished.count == 1)
        try await withDeadline(.seconds(20), "shutdown") { await shutdown.value }
        let took = start.duration(to: .now)
        #expect(took < .seconds(20), "shutdown ends when the work is done, not at the drain timeout (\(took))")
        #expect(await eventually { !busy.isActive }, "the busy session is closed once its work is done (the client sees it close)")
        #expect(server.hub.count == 0)
        #expect(hookRuns.count == 1)

        await busyClient.close()
        await idleClient.close()
        await lateClient.close()
        await server.close()
    }

    @Test("shutdown waits for a reply the client is slow to read: the session closes only once the channel has written it")
    func drainWaitsForUnreadReply() async throws {
        let size = 12 << 20
        let answered = Counter()
        let (server, listener) = try await makeServer { router in
            router.call("/big") { (_: ByteBuffer, _: FerryContext) -> ByteBuffer in
                answered.increment()
                return ByteBuffer(repeating: 7, count: size)
            }
        }
        let client = try await NonReadingConnection.connect(to: listener.address)
        try await client.send(frameBytes(FerryMessage(type: .call, seq: 1, serviceMethod: "/big", bodyCodec: .plain)))
        #expect(await eventually { answered.count == 1 })

        // The reply is far larger than the socket buffers (a loopback send buffer grows to
        // 4 MiB): most of it waits in the server's channel while the client does not read, well
        // past the drain's quiet period.
        let shutdown = Task { await server.shutdown(drainTimeout: .seconds(10)) }
        try await Task.sleep(for: .seconds(1))
        var received = try await client.readUntilClosed()
        try await withDeadline(.seconds(5), "shutdown") { await shutdown.value }

        let proto = FerryRawProto()
        var reply: FerryMessage?
        while reply == nil, let message = try proto.decodeMessage(from: &received) {
            if message.type == .reply { reply = message }
        }
        #expect(reply?.seq == 1, "the whole reply arrived before the session closed")
        #expect(reply?.body.readableBytes == size)
        #expect(reply?.status.isOK == true)
        await client.close()
    }

    @Test("a handler running past the drain timeout is cut off: the call fails with 102 at about the timeout")
    func drainTimeoutCutsOff() async throws {
        let route = GatedRoute()
        let (server, listener) = try await makeServer { route.register(on: $0) }
        defer { route.gate.fulfil(()) }
        let client = FerryPeer(logger: quietLogger())
        let session = try await client.dial(listener.address)

        let start = Signal<ContinuousClock.Instant>()
        let call = Task {
            let status = await statusThrown { try await session.call("/work", (), as: String.self, options: .timeout(.seconds(60))) }
            return (status, (start.current ?? .now).duration(to: .now))
        }
        #expect(await eventually { route.started.count == 1 })
        start.fulfil(.now)
        // Timers never fire early, so the lower bounds are exact; the upper bounds leave room for a
        // busy machine and still sit far below the call's own minute.
        let (_, shutdownTook) = await timed { await server.shutdown(drainTimeout: .seconds(2)) }
        let (status, failedAfter) = try await withDeadline(.seconds(15), "the cut-off call") { await call.value }
        #expect(status?.code == .connectionClosed, "got \(String(describing: status))")
        #expect(failedAfter >= .milliseconds(1900), "not before the drain timeout (\(failedAfter))")
        #expect(failedAfter < .seconds(10), "at about the drain timeout (\(failedAfter))")
        #expect(shutdownTook >= .milliseconds(1900) && shutdownTook < .seconds(10), "shutdown took \(shutdownTook)")
        await client.close()
        await server.close()
    }

    @Test("drainTimeout zero closes everything at once")
    func zeroDrainTimeout() async throws {
        let route = GatedRoute()
        let (server, listener) = try await makeServer { route.register(on: $0) }
        defer { route.gate.fulfil(()) }
        let client = FerryPeer(logger: quietLogger())
        let session = try await client.dial(listener.address)
        // The handler never finishes (its gate opens only when the test ends) and the call's own
        // timeout is a minute: only a shutdown that does not drain ends the call.
        let call = Task { await statusThrown { try await session.call("/work", (), as: String.self, options: .timeout(.seconds(60))) } }
        #expect(await eventually { route.started.count == 1 })

        let (_, took) = await timed { await server.shutdown(drainTimeout: .zero) }
        #expect(took < .seconds(5), "no drain at all (\(took))")
        let status = try await withDeadline(.seconds(10), "the call") { await call.value }
        #expect(status?.code == .connectionClosed)
        #expect(await eventually(timeout: .seconds(10)) { !session.isActive })
        await client.close()
        await server.close()
    }

    @Test("the shutdown hook runs once, after the listener stops accepting and before sessions close")
    func shutdownHookOrder() async throws {
        struct Observation: Sendable {
            var dialStatus: FerryStatus?
            var sessionsOpen: Int
            var clientActive: Bool
        }
        let observed = Recorder<Observation>()
        let address = Box<FerryAddress>()
        let clientSession = Box<FerrySession>()
        let server = Box<FerryPeer>()
        var configuration = FerryPeer.Configuration()
        configuration.hooks.onShutdown = {
            let prober = FerryPeer(logger: quietLogger())
            let status: FerryStatus?
            do {
                _ = try await prober.dial(address.value!)
                status = nil
            } catch {
                status = error as? FerryStatus
            }
            await prober.close()
            observed.append(Observation(
                dialStatus: status, sessionsOpen: server.value?.hub.count ?? -1,
                clientActive: clientSession.value?.isActive ?? false))
        }
        let (peer, listener) = try await makeServer(configuration)
        server.value = peer
        address.value = listener.address
        let client = FerryPeer(logger: quietLogger())
        let session = try await client.dial(listener.address)
        clientSession.value = session
        #expect(await eventually { peer.hub.count == 1 })

        // Two shutdowns at once: the hook still runs once, and both return.
        async let first: Void = peer.shutdown(drainTimeout: .seconds(2))
        async let second: Void = peer.shutdown(drainTimeout: .seconds(2))
        _ = await (first, second)

        #expect(observed.count == 1, "the hook runs once")
        let seen = try #require(observed.all.first)
        #expect(seen.dialStatus?.code == .dialFailed, "the listener is closed when the hook runs: \(String(describing: seen.dialStatus))")
        #expect(seen.sessionsOpen == 1, "sessions are still open when the hook runs")
        #expect(seen.clientActive, "the client's session is still connected when the hook runs")
        #expect(await eventually(timeout: .seconds(10)) { !session.isActive }, "the idle session is closed after the hook")
        await client.close()
        await peer.close()
    }

    @Test("as a Service in a ServiceGroup, graceful shutdown lets in-flight work complete and run() returns")
    func serviceGroupGracefulShutdown() async throws {
        let route = GatedRoute()
        let (server, listener) = try await makeServer(FerryPeer.Configuration(drainTimeout: .seconds(30))) { route.register(on: $0) }
        defer { route.gate.fulfil(()) }
        let group = ServiceGroup(services: [server], gracefulShutdownSignals: [], cancellationSignals: [], logger: quietLogger())
        let running = Task { try await group.run() }

        let client = FerryPeer(logger: quietLogger())
        let session = try await client.dial(listener.address)
        let inFlight = Task { try await session.call("/work", (), as: String.self, options: .timeout(.seconds(60))) }
        #expect(await eventually { route.started.count == 1 })

        await group.triggerGracefulShutdown()
        #expect(await eventually { server.isDraining }, "the peer starts draining")
        let refused = try await session.callForReply("/math/add", AddArgs(a: 1, b: 2), options: .timeout(.seconds(10)))
        #expect(refused.status.code == Self.drainRefusal.code, "got \(refused.status)")
        #expect(refused.status.message == Self.drainRefusal.message)
        #expect(!running.isCancelled)

        route.gate.fulfil(())
        #expect(try await inFlight.value == "done", "the in-flight call completes")
        try await withDeadline(.seconds(20), "ServiceGroup.run") { try await running.value }
        #expect(await eventually(timeout: .seconds(10)) { !session.isActive })
        await client.close()
        await server.close()
    }
}
