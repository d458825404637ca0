@testable import Ferry
import NIOCore
import Testing

/// The idle, read and age limits, on a session served over an in-memory channel whose loop time
/// the test moves: no test waits for time to pass. Two tests over real sockets check the wiring.
@Suite("Idle, read and age timeouts")
struct TimeoutTests {
    /// A raw-proto CALL frame of `/math/add`, as bytes.
    static func addFrame(seq: Int32 = 1) throws -> [UInt8] {
        try RawConnection.frame(.add(2, 3, seq: seq))
    }

    /// The reason the session's timer handler gave for closing, if it closed.
    static func closeReason(_ embedded: EmbeddedSession) -> String? {
        embedded.timerEvents.all.first { !$0.isHeartbeatDue }?.reason
    }

    // MARK: Idle

    @Test("idleTimeout closes a session without traffic at the timeout, not before, and says why")
    func idleTimeout() async throws {
        let logs = LogStore()
        let embedded = try await EmbeddedSession.start(
            FerryPeer.Configuration(idleTimeout: .milliseconds(600)), logger: logs.logger(label: "server"))
        await embedded.advance(by: .milliseconds(599))
        #expect(embedded.isOpen)
        await embedded.advance(by: .milliseconds(1))
        #expect(!embedded.isOpen, "idle for the timeout: closed")
        #expect(embedded.timerEvents.all.map(\.at) == [.milliseconds(600)])
        #expect(Self.closeReason(embedded)?.contains("idle") == true)
        #expect(logs.first { $0.message == "session closed" && ($0.metadata["reason"] ?? "").contains("idle") } != nil, "the reason is logged")
        await embedded.close()
    }

    @Test("inbound traffic resets the idle timeout; the session is closed a timeout after the last of it")
    func idleTimeoutResetByInboundTraffic() async throws {
        let embedded = try await EmbeddedSession.start(FerryPeer.Configuration(idleTimeout: .milliseconds(600)))
        // A call every 500 ms for 5 s, more than eight idle timeouts.
        for seq in Int32(1)...10 {
            await embedded.advance(by: .milliseconds(500))
            #expect(embedded.isOpen, "call \(seq)")
            try await embedded.send(.add(1, 1, seq: seq))
            #expect(try await embedded.nextWritten().seq == seq)
        }
        await embedded.advance(by: .milliseconds(599))
        #expect(embedded.isOpen)
        await embedded.advance(by: .milliseconds(1))
        #expect(!embedded.isOpen, "closed once the traffic stopped for the timeout")
        #expect(embedded.timerEvents.all.map(\.at) == [.milliseconds(5600)])
        await embedded.close()
    }

    @Test("outbound traffic resets the idle timeout too")
    func idleTimeoutResetByOutboundTraffic() async throws {
        let embedded = try await EmbeddedSession.start(FerryPeer.Configuration(idleTimeout: .milliseconds(600)))
        // The session pushes every 500 ms; the remote never writes.
        for value in 0..<10 {
            await embedded.advance(by: .milliseconds(500))
            #expect(embedded.isOpen, "push \(value)")
            try await embedded.session.push("/feed", value, options: .timeout(.seconds(1)))
            #expect(try await embedded.written().map(\.serviceMethod) == ["/feed"])
        }
        await embedded.advance(by: .milliseconds(600))
        #expect(!embedded.isOpen)
        await embedded.close()
    }

    // MARK: Read

    @Test("readTimeout closes a connection that stalls mid-frame, at the timeout after its last byte")
    func readTimeoutStalledFrame() async throws {
        let logs = LogStore()
        let embedded = try await EmbeddedSession.start(
            FerryPeer.Configuration(readTimeout: .milliseconds(300)), logger: logs.logger(label: "server"))
        await embedded.advance(by: .seconds(5))
        try await embedded.send(bytes: Array(try Self.addFrame().prefix(10)))
        await embedded.advance(by: .milliseconds(299))
        #expect(embedded.isOpen)
        await embedded.advance(by: .milliseconds(1))
        #expect(!embedded.isOpen, "half a frame then nothing: closed after the read timeout")
        #expect(embedded.timerEvents.all.map(\.at) == [.milliseconds(5300)])
        #expect(Self.closeReason(embedded)?.contains("frame incomplete") == true)
        #expect(logs.first { $0.message == "session closed" && ($0.metadata["reason"] ?? "").contains("frame incomplete") } != nil)
        #expect(try await embedded.written().isEmpty)
        await embedded.close()
    }

    @Test("readTimeout leaves alone a connection that sends nothing, or whole frames with long gaps")
    func readTimeoutSparesWholeFrames() async throws {
        let embedded = try await EmbeddedSession.start(FerryPeer.Configuration(readTimeout: .milliseconds(300)))
        await embedded.advance(by: .seconds(10))
        #expect(embedded.isOpen, "a connection that sends nothing is not closed by the read timeout")
        for seq in Int32(1)...3 {
            try await embedded.send(bytes: try Self.addFrame(seq: seq))
            let reply = try await embedded.nextWritten()
            #expect(reply.seq == seq)
            #expect(String(buffer: reply.body) == "5")
            await embedded.advance(by: .seconds(10))
            #expect(embedded.isOpen, "a connection between whole frames is not closed by the read timeout")
        }
        #expect(embedded.timerEvents.all.isEmpty)
        await embedded.close()
    }

    @Test("a frame sent slowly but steadily, each gap within the read timeout, is not cut off")
    func slowButSteadyFrame() async throws {
        let embedded = try await EmbeddedSession.start(FerryPeer.Configuration(readTimeout: .milliseconds(300)))
        let frame = try Self.addFrame()
        // In five parts, each 299 ms after the one before: the whole frame takes four times the
        // read timeout, but no gap reaches it.
        let size = frame.count / 5 + 1
        let parts = stride(from: 0, to: frame.count, by: size).map { Array(frame[$0..<min($0 + size, frame.count)]) }
        #expect(parts.count == 5)
        for (index, part) in parts.enumerated() {
            if index > 0 { await embedded.advance(by: .milliseconds(299)) }
            #expect(embedded.isOpen, "part \(index)")
            try await embedded.send(bytes: part)
        }
        let reply = try await embedded.nextWritten()
        #expect(reply.status.isOK)
        #expect(String(buffer: reply.body) == "5")
        await embedded.advance(by: .seconds(10))
        #expect(embedded.isOpen)
        #expect(embedded.timerEvents.all.isEmpty)
        await embedded.close()
    }

    // MARK: Age

    @Test("maximumSessionAge closes a session once it is that old, even a busy one")
    func maximumSessionAge() async throws {
        let logs = LogStore()
        let embedded = try await EmbeddedSession.start(
            FerryPeer.Configuration(maximumSessionAge: .milliseconds(500)), logger: logs.logger(label: "server"))
        for seq in Int32(1)...4 {
            await embedded.advance(by: .milliseconds(100))
            try await embedded.send(.add(1, 1, seq: seq))
            #expect(try await embedded.nextWritten().seq == seq)
        }
        await embedded.advance(by: .milliseconds(99))
        #expect(embedded.isOpen, "younger than its maximum age")
        await embedded.advance(by: .milliseconds(1))
        #expect(!embedded.isOpen, "closed at its maximum age, busy as it was")
        #expect(embedded.timerEvents.all.map(\.at) == [.milliseconds(500)])
        #expect(logs.first { $0.message == "session closed" && ($0.metadata["reason"] ?? "").contains("maximum age") } != nil)
        #expect(await eventually { embedded.peer.hub.count == 0 })
        await embedded.close()
    }

    // MARK: Wiring over real sockets

    @Test("over TCP, an idle dialled session is closed by the server's idle timeout")
    func idleTimeoutOverTCP() async throws {
        let logs = LogStore()
        let (server, listener) = try await makeServer(
            FerryPeer.Configuration(idleTimeout: .seconds(2)), logger: logs.logger(label: "server"))
        let client = FerryPeer(logger: quietLogger())
        // On a machine busy enough, the server's idle timer fires before the dial is done; the
        // dial then fails, and the server's log must still say it closed for idleness.
        if let session = try? await client.dial(listener.address) {
            #expect(await eventually(timeout: .seconds(30)) { !session.isActive })
        }
        #expect(await closeReasonLogged(logs, containing: "idle", timeout: .seconds(30)) != nil)
        await client.close()
        await server.close()
    }

    @Test("over TCP, a connection that stalls mid-frame is closed by the read timeout")
    func readTimeoutOverTCP() async throws {
        let logs = LogStore()
        let (server, listener) = try await makeServer(
            FerryPeer.Configuration(readTimeout: .milliseconds(200)), logger: logs.logger(label: "server"))
        let stalled = try await RawConnection.connect(to: listener.address)
        try await stalled.send(Array(try Self.addFrame().prefix(10)))
        #expect(await stalled.waitUntilClosed(timeout: .seconds(30)))
        #expect(await closeReasonLogged(logs, containing: "frame incomplete", timeout: .seconds(30)) != nil)
        await stalled.close()
        await server.close()
    }
}
