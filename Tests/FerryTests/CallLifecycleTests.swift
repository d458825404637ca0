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

    @Test("the default call timeout gives 408, the late reply is dropped, and the session keeps working")
    func defaultTimeout() async throws {
        let slow = SlowRoute()
        let clientLogs = LogStore()
        let pair = try await makePair(
            client: FerryPeer.Configuration(defaultCallTimeout: .milliseconds(200)),
            clientLogger: clientLogs.logger(label: "client"),
            configure: slow.register)
        defer { slow.gate.fulfil(()) }

        try await expectTimeoutThenLateReplyDropped(pair: pair, slow: slow, clientLogs: clientLogs, options: FerryCallOptions())
        await pair.close()
    }

    @Test("a per-call timeout gives 408, the late reply is dropped, and the session keeps working")
    func perCallTimeout() async throws {
        let slow = SlowRoute()
        let clientLogs = LogStore()
        let pair = try await makePair(clientLogger: clientLogs.logger(label: "client"), configure: slow.register)
        defer { slow.gate.fulfil(()) }

        try await expectTimeoutThenLateReplyDropped(
            pair: pair, slow: slow, clientLogs: clientLogs, options: .timeout(.milliseconds(200)))
        await pair.close()
    }

    @Test("calls with different timeouts each fail at their own deadline, whatever the order they were made in")
    func mixedTimeouts() async throws {
        let slow = SlowRoute()
        let pair = try await makePair(configure: slow.register)
        defer { slow.gate.fulfil(()) }

        // A long call first, then shorter ones: each short one must not wait for the long one.
        let start = ContinuousClock.now
        let long = Task { await statusThrown { try await pair.session.call("/slow", (), as: Int.self, options: .timeout(.seconds(3))) } }
        #expect(await slow.waitForStarts(1))
        let short = await statusThrown { try await pair.session.call("/slow", (), as: Int.self, options: .timeout(.milliseconds(200))) }
        let shortElapsed = start.duration(to: .now)
        #expect(short?.code == .timedOut)
        #expect(shortElapsed < .milliseconds(2500), "the 200 ms call waited for the 3 s one (\(shortElapsed))")
        let shorter = await statusThrown { try await pair.session.call("/slow", (), as: Int.self, options: .timeout(.milliseconds(100))) }
        #expect(shorter?.code == .timedOut)

        // The long call is still pending, then fails at its own deadline, not before.
        let longStatus = await long.value
        let longElapsed = start.duration(to: .now)
        #expect(longStatus?.code == .timedOut)
        #expect(longElapsed >= .milliseconds(2900), "the 3 s call failed early (\(longElapsed))")
        #expect(pair.session.outstanding.pendingCalls == 0)
        await pair.close()
    }

    private func expectTimeoutThenLateReplyDropped(
        pair: PeerPair, slow: SlowRoute, clientLogs: LogStore, options: FerryCallOptions
    ) async throws {
        let start = ContinuousClock.now
        let status = await statusThrown { try await pair.session.call("/slow", (), as: Int.self, options: options) }
        let elapsed = start.duration(to: .now)
        #expect(status?.code == .timedOut)
        #expect(elapsed >= .milliseconds(150), "the call must not time out early (\(elapsed))")
        #expect(elapsed < .seconds(5), "a 200 ms timeout must fail promptly (\(elapsed))")

        // Let the handler answer now; its reply arrives after the deadline and must be dropped.
        #expect(await slow.waitForStarts(1))
        slow.gate.fulfil(())
        let dropped = await clientLogs.waitFor { $0.message.contains("dropping a reply") }
        #expect(dropped?.metadata["seq"] == "1", "the late reply of call 1 is received and dropped")

        // The session still works, and later calls get their own replies.
        #expect(try await pair.session.call("/math/add", AddArgs(a: 40, b: 2), as: Int.self) == 42)
        #expect(try await pair.session.call("/slow", (), as: Int.self, options: .timeout(.seconds(5))) == 7)
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
            client: FerryPeer.Configuration(defaultCallTimeout: .seconds(3)), clientLogger: clientLogger, configure: slow.register)
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
        #expect(start.duration(to: .now) < .seconds(2), "no second call waited for its timeout")
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
