@testable import Ferry
import Foundation
import Logging
import NIOCore
import Testing

@Suite("Call lifecycle")
struct CallLifecycleTests {
    /// A `/slow` route that records each start and answers 7 only when the gate opens.
    final class SlowRoute: Sendable {
        let gate = Signal<Void>()
        let started = Recorder<Int32>()

        func register(on router: FerryRouter) {
            router.call("/slow") { [gate, started] (_: Void, ctx: FerryContext) async -> Int in
                started.append(ctx.seq)
                await gate.wait()
                return 7
            }
        }

        /// Waits until `count` calls have reached the handler.
        func waitForStarts(_ count: Int) async -> Bool {
            await eventually { self.started.count >= count }
        }

        /// Checks that no call made on `pair` so far reached the handler: a call made after
        /// them on the same connection is answered first, and a moment more passes.
        func expectNoCallReached(on pair: PeerPair) async throws {
            #expect(try await pair.session.call("/math/add", AddArgs(a: 1, b: 1), as: Int.self) == 2)
            try await Task.sleep(for: .milliseconds(100))
            #expect(started.count == 0)
        }
    }

    // MARK: Deadlines, on a session over an in-memory channel whose loop time the test moves

    @Test("the default call timeout gives 408 at the deadline, the late reply is dropped, and the session keeps working")
    func defaultTimeout() async throws {
        let logs = LogStore()
        let embedded = try await EmbeddedSession.start(
            FerryPeer.Configuration(defaultCallTimeout: .milliseconds(200)), logger: logs.logger(label: "server"))
        try await expectTimeoutThenLateReplyDropped(embedded, logs: logs, options: FerryCallOptions())
        await embedded.close()
    }

    @Test("a per-call timeout gives 408 at the deadline, the late reply is dropped, and the session keeps working")
    func perCallTimeout() async throws {
        let logs = LogStore()
        let embedded = try await EmbeddedSession.start(logger: logs.logger(label: "server"))
        try await expectTimeoutThenLateReplyDropped(embedded, logs: logs, options: .timeout(.milliseconds(200)))
        await embedded.close()
    }

    /// A `/slow` call with a 200 ms deadline from `embedded`'s session to the test: pending until
    /// the deadline, 408 at it; the reply sent after it is dropped; the next call gets its own.
    private func expectTimeoutThenLateReplyDropped(_ embedded: EmbeddedSession, logs: LogStore, options: FerryCallOptions) async throws {
        let session = embedded.session
        let call = Task { await statusThrown { try await session.call("/slow", (), as: Int.self, options: options) } }
        let sent = try await embedded.nextWritten()
        #expect(sent.type == .call)
        #expect(sent.serviceMethod == "/slow")

        await embedded.advance(by: .milliseconds(199))
        #expect(session.outstanding.pendingCalls == 1, "the call must not time out before its deadline")
        await embedded.advance(by: .milliseconds(1))
        let expired = session.outstanding.pendingCalls == 0
        #expect(expired, "the call fails at its deadline")
        if !expired { call.cancel() }
        let status = await call.value
        #expect(status?.code == .timedOut)

        // The reply arrives after the deadline and must be dropped.
        try await embedded.send(.reply(to: sent.seq, json: "7"))
        let dropped = logs.first { $0.message.contains("dropping a reply") }
        #expect(dropped?.metadata["seq"] == "\(sent.seq)", "the late reply of the call is received and dropped")

        // The session still works, and the next call gets its own reply.
        let next = Task { try await session.call("/math/add", AddArgs(a: 40, b: 2), as: Int.self, options: .timeout(.seconds(5))) }
        let second = try await embedded.nextWritten()
        #expect(second.seq != sent.seq)
        try await embedded.send(.reply(to: second.seq, json: "42"))
        #expect(try await next.value == 42)
        #expect(embedded.isOpen)
    }

    @Test("calls with different timeouts each fail at their own deadline, whatever the order they were made in")
    func mixedTimeouts() async throws {
        let embedded = try await EmbeddedSession.start()
        let session = embedded.session
        // A long call first, then a shorter one: the short one must not wait for the long one,
        // and the long one must not fail with it.
        let long = Task { await statusThrown { try await session.call("/slow", (), as: Int.self, options: .timeout(.seconds(3))) } }
        _ = try await embedded.nextWritten()
        let short = Task { await statusThrown { try await session.call("/slow", (), as: Int.self, options: .timeout(.milliseconds(200))) } }
        _ = try await embedded.nextWritten()
        #expect(session.outstanding.pendingCalls == 2)

        await embedded.advance(by: .milliseconds(200))
        if session.outstanding.pendingCalls == 2 { short.cancel() }
        #expect(await short.value?.code == .timedOut)
        #expect(session.outstanding.pendingCalls == 1, "the 3 s call is still pending after the 200 ms one failed")
        await embedded.advance(by: .milliseconds(2799))
        #expect(session.outstanding.pendingCalls == 1, "the 3 s call does not fail early")
        await embedded.advance(by: .milliseconds(1))
        if session.outstanding.pendingCalls > 0 { long.cancel() }
        #expect(await long.value?.code == .timedOut)
        #expect(session.outstanding.pendingCalls == 0)
        await embedded.close()
    }

    @Test("over TCP, a short call fails with 408 while a longer one made before it keeps waiting for its reply")
    func mixedTimeoutsOverTCP() async throws {
        let slow = SlowRoute()
        let pair = try await makePair(configure: slow.register)
        defer { slow.gate.fulfil(()) }
        let long = Task { try await pair.session.call("/slow", (), as: Int.self, options: .timeout(.seconds(60))) }
        #expect(await slow.waitForStarts(1))
        let short = await statusThrown { try await pair.session.call("/slow", (), as: Int.self, options: .timeout(.milliseconds(200))) }
        #expect(short?.code == .timedOut)
        #expect(pair.session.outstanding.pendingCalls == 1, "the long call still waits")
        slow.gate.fulfil(())
        #expect(try await long.value == 7, "the long call was not failed with the short one")
        await pair.close()
    }

    @Test("over TCP, a call to a handler that does not answer in time gets 408 and the session keeps working")
    func timeoutOverTCP() async throws {
        let slow = SlowRoute()
        let pair = try await makePair(configure: slow.register)
        defer { slow.gate.fulfil(()) }
        let status = await statusThrown {
            try await pair.session.call("/slow", (), as: Int.self, options: .timeout(.milliseconds(200)))
        }
        #expect(status?.code == .timedOut)
        #expect(try await pair.session.call("/math/add", AddArgs(a: 40, b: 2), as: Int.self, options: .timeout(.seconds(30))) == 42)
        await pair.close()
    }

    @Test("cancelling the calling task gives 499 and the session keeps working")
    func cancellation() async throws {
        let slow = SlowRoute()
        let pair = try await makePair(configure: slow.register)
        defer { slow.gate.fulfil(()) }

        let call = Task {
            await statusThrown { try await pair.session.call("/slow", (), as: Int.self) }
        }
        #expect(await slow.waitForStarts(1))
        let start = ContinuousClock.now
        call.cancel()
        let status = await call.value
        #expect(status?.code == .cancelled)
        #expect(start.duration(to: .now) < .seconds(5))

        #expect(try await pair.session.call("/math/add", AddArgs(a: 1, b: 1), as: Int.self) == 2)
        await pair.close()
    }

    @Test("a task cancelled before it calls gets 499 at once, and its call is neither pending nor sent")
    func cancelledBeforeCalling() async throws {
        let slow = SlowRoute()
        let pair = try await makePair(configure: slow.register)
        defer { slow.gate.fulfil(()) }

        let call = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return await statusThrown { try await pair.session.call("/slow", (), as: Int.self) }
        }
        #expect(await call.value?.code == .cancelled)
        #expect(pair.session.outstanding.pendingCalls == 0)
        try await slow.expectNoCallReached(on: pair)
        await pair.close()
    }

    @Test("a call cancelled while it waits for its connection's event loop is not sent")
    func cancelledWhileQueued() async throws {
        let slow = SlowRoute()
        let pair = try await makePair(configure: slow.register)
        defer { slow.gate.fulfil(()) }

        // The client connection's event loop is busy for a second, so the call waits in the
        // session's outbox until then.
        let busy = pair.session.channel.eventLoop.submit { Thread.sleep(forTimeInterval: 1) }
        let call = Task {
            await statusThrown { try await pair.session.call("/slow", (), as: Int.self) }
        }
        #expect(await eventually { pair.session.outstanding.unsentCalls == 1 })
        call.cancel()
        #expect(await call.value?.code == .cancelled)
        try await busy.get()
        #expect(await eventually { pair.session.outstanding.unsentCalls == 0 })
        try await slow.expectNoCallReached(on: pair)
        #expect(pair.session.outstanding.pendingCalls == 0)
        await pair.close()
    }

    @Test("calls made together from many tasks off the event loop are each answered with their own reply")
    func manyConcurrentCallers() async throws {
        let pair = try await makePair()
        // Several calls per task, so that callers woken together call together.
        let wrong = await wrongReplies(on: pair.session, callers: 500, calls: 4)
        #expect(wrong == 0)
        #expect(pair.session.outstanding.pendingCalls == 0)
        #expect(pair.session.outstanding.unsentCalls == 0)
        await pair.close()
    }

    @Test("closing the server peer fails every pending call promptly with 102; later calls fail with 102")
    func serverPeerCloses() async throws {
        try await expectPendingCallsFailWhenServerCloses { pair in await pair.server.close() }
    }

    @Test("closing the accepted session on the server fails every pending call promptly with 102")
    func acceptedSessionCloses() async throws {
        try await expectPendingCallsFailWhenServerCloses { pair in
            #expect(await eventually { pair.server.hub.count == 1 })
            let accepted = try #require(pair.server.hub.all.first)
            await accepted.close()
        }
    }

    @Test("callers woken by a lost connection that call again get 102 at once, not a timeout")
    func callsRightAfterTheConnectionIsLost() async throws {
        let slow = SlowRoute()
        // The client's event-loop thread stalls while it logs the session's close, after the
        // pending calls have failed: callers they wake call again in that time.
        let clientLogger = LogStore().logger(label: "client", stall: (message: "session closed", duration: .milliseconds(300)))
        let pair = try await makePair(
            client: FerryPeer.Configuration(defaultCallTimeout: .seconds(15)), clientLogger: clientLogger, configure: slow.register)
        defer { slow.gate.fulfil(()) }
        let session = pair.session
        let callers = 4
        let again = Task {
            await withTaskGroup(of: (FerryStatus?, FerryStatus?).self) { group in
                for _ in 0..<callers {
                    group.addTask {
                        let first = await statusThrown { try await session.call("/slow", (), as: Int.self) }
                        let second = await statusThrown { try await session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) }
                        return (first, second)
                    }
                }
                var statuses: [(FerryStatus?, FerryStatus?)] = []
                for await pair in group { statuses.append(pair) }
                return statuses
            }
        }
        #expect(await slow.waitForStarts(callers))
        let start = ContinuousClock.now
        let accepted = try #require(pair.server.hub.all.first)
        await accepted.close()
        let statuses = await again.value
        #expect(start.duration(to: .now) < .seconds(12), "no second call waited for its 15 s timeout")
        #expect(statuses.count == callers)
        for (first, second) in statuses {
            #expect(first?.code == .connectionClosed, "first call: \(String(describing: first))")
            #expect(second?.code == .connectionClosed, "second call: \(String(describing: second))")
        }
        await pair.close()
    }

    private func expectPendingCallsFailWhenServerCloses(_ closeServerSide: (PeerPair) async throws -> Void) async throws {
        let slow = SlowRoute()
        let pair = try await makePair(configure: slow.register)
        defer { slow.gate.fulfil(()) }

        let session = pair.session
        let calls = Task {
            await withTaskGroup(of: FerryStatus?.self) { group in
                for _ in 0..<3 {
                    group.addTask { await statusThrown { try await session.call("/slow", (), as: Int.self) } }
                }
                var statuses: [FerryStatus?] = []
                for await status in group { statuses.append(status) }
                return statuses
            }
        }
        #expect(await slow.waitForStarts(3), "all three calls reach the handler before the close")

        let start = ContinuousClock.now
        try await closeServerSide(pair)
        let statuses = await calls.value
        #expect(start.duration(to: .now) < .seconds(5), "pending calls fail promptly, not at their deadline")
        #expect(statuses.count == 3)
        for status in statuses {
            #expect(status?.code == .connectionClosed, "got \(String(describing: status))")
        }

        let after = await statusThrown { try await session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) }
        #expect(after?.code == .connectionClosed)
        let pushAfter = await statusThrown { try await session.push("/anything", "x") }
        #expect(pushAfter?.code == .connectionClosed)
        await pair.close()
    }

    @Test("closing the client session fails its pending call with 102, and later calls fail with 102")
    func clientSessionCloses() async throws {
        let slow = SlowRoute()
        let pair = try await makePair(configure: slow.register)
        defer { slow.gate.fulfil(()) }

        let pending = Task { await statusThrown { try await pair.session.call("/slow", (), as: Int.self) } }
        #expect(await slow.waitForStarts(1))
        await pair.session.close()
        #expect(await pending.value?.code == .connectionClosed)
        #expect(pair.session.isActive == false)

        let after = await statusThrown { try await pair.session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) }
        #expect(after?.code == .connectionClosed)
        await pair.close()
    }

    @Test("closing the client peer closes every session it dialled, even two to the same server")
    func clientPeerClosesEverySession() async throws {
        let slow = SlowRoute()
        let (server, listener) = try await makeServer(configure: slow.register)
        defer { slow.gate.fulfil(()) }
        let client = FerryPeer()
        let first = try await client.dial(listener.address)
        let second = try await client.dial(listener.address)

        let options = FerryCallOptions.timeout(.seconds(10))
        let pending = Task {
            async let one = statusThrown { try await first.call("/slow", (), as: Int.self, options: options) }
            async let two = statusThrown { try await second.call("/slow", (), as: Int.self, options: options) }
            return await [one, two]
        }
        #expect(await slow.waitForStarts(2))
        let hubCount = client.hub.count
        await client.close()
        let bothClosed = await eventually(timeout: .seconds(3)) { !first.isActive && !second.isActive }
        #expect(
            bothClosed,
            "peer.close() must close every session; first active: \(first.isActive), second active: \(second.isActive), client hub held \(hubCount) of 2 sessions (ids \(first.id), \(second.id))")

        // Any session left open would now get its reply instead of 102.
        slow.gate.fulfil(())
        let statuses = await pending.value
        #expect(statuses.map { $0?.code } == [.connectionClosed, .connectionClosed])
        await first.close()
        await second.close()
        await server.close()
    }

    @Test("dialling a closed port fails with 105")
    func dialClosedPort() async throws {
        let (server, listener) = try await makeServer()
        let address = listener.address
        await server.close()

        let client = FerryPeer(configuration: FerryPeer.Configuration(dialTimeout: .seconds(5)))
        let status = await statusThrown { try await client.dial(address) }
        #expect(status?.code == .dialFailed)
        #expect(status?.isConnectionError == true)
        #expect(client.hub.count == 0)
        await client.close()
    }
}
