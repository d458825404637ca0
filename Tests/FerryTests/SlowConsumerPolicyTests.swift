@testable import Ferry
import NIOCore
import Testing

/// What each slow-consumer policy does with a push to a connection that cannot take more bytes,
/// on a session served over an in-memory channel: the test decides when the connection is full
/// and moves the loop's time. The tests in ``OverloadTests`` check the same over a real socket.
@Suite("Slow-consumer policies on loop time")
struct SlowConsumerPolicyTests {
    static func session(_ policy: FerryPeer.SlowConsumerPolicy, logs: LogStore? = nil) async throws -> EmbeddedSession {
        let embedded = try await EmbeddedSession.start(
            FerryPeer.Configuration(limits: FerryPeer.Limits(slowConsumerPolicy: policy)),
            logger: logs?.logger(label: "server") ?? quietLogger())
        // The outbound queue is past its high-water mark: the remote is not reading.
        embedded.channel.isWritable = false
        return embedded
    }

    /// Starts a push of `value` with `timeout`; its task returns the status it failed with.
    static func push(_ value: Int, on embedded: EmbeddedSession, timeout: Duration) -> Task<FerryStatus?, Never> {
        Task { await statusThrown { try await embedded.session.push("/feed", value, options: .timeout(timeout)) } }
    }

    @Test("applyBackPressure: pushes wait for room, each fails with 408 exactly at its deadline, and one still waiting goes out once there is room")
    func backPressureWaitsUntilTheDeadline() async throws {
        let embedded = try await Self.session(.applyBackPressure)
        let first = Self.push(1, on: embedded, timeout: .seconds(1))
        #expect(await eventually { embedded.session.outstanding.writabilityWaiters == 1 })
        let second = Self.push(2, on: embedded, timeout: .seconds(3))
        #expect(await eventually { embedded.session.outstanding.writabilityWaiters == 2 })

        await embedded.advance(by: .milliseconds(999))
        #expect(embedded.session.outstanding.writabilityWaiters == 2, "both still wait just before the first deadline")
        await embedded.advance(by: .milliseconds(1))
        #expect(await first.value?.code == .timedOut)
        #expect(embedded.session.outstanding.writabilityWaiters == 1, "the second push still waits")
        #expect(try await embedded.written().isEmpty, "nothing is written while the connection is full")

        // The remote reads: the waiting push goes out.
        embedded.channel.isWritable = true
        embedded.channel.pipeline.fireChannelWritabilityChanged()
        await embedded.channel.testingEventLoop.run()
        #expect(await second.value == nil, "the push that found room was written")
        #expect(try await embedded.nextWritten().body == ByteBuffer(string: "2"))
        #expect(embedded.session.outstanding.writabilityWaiters == 0)
        #expect(embedded.isOpen, "back-pressure keeps the session")
        await embedded.close()
    }

    @Test("failWrite: a push to a full connection fails at once with 104, before any time passes, and the session stays")
    func failWriteRefusesAtOnce() async throws {
        let embedded = try await Self.session(.failWrite)
        let status = await Self.push(1, on: embedded, timeout: .seconds(1)).value
        #expect(status?.code == .writeFailed, "got \(String(describing: status))")
        #expect(embedded.elapsed == .zero, "refused without waiting")
        #expect(embedded.session.outstanding.writabilityWaiters == 0)
        #expect(try await embedded.written().isEmpty)
        #expect(embedded.isOpen, "failWrite keeps the session")

        embedded.channel.isWritable = true
        #expect(await Self.push(2, on: embedded, timeout: .seconds(1)).value == nil, "with room again, pushes go out")
        #expect(try await embedded.nextWritten().body == ByteBuffer(string: "2"))
        await embedded.close()
    }

    @Test("closeSession: a push to a full connection closes the session, says why, and fails with 102")
    func closeSessionCloses() async throws {
        let logs = LogStore()
        let embedded = try await Self.session(.closeSession, logs: logs)
        let status = await Self.push(1, on: embedded, timeout: .seconds(1)).value
        #expect(status?.code == .connectionClosed, "got \(String(describing: status))")
        #expect(await embedded.waitUntilClosed())
        #expect(await closeReasonLogged(logs, containing: "slow consumer") != nil)
        await embedded.close()
    }
}
