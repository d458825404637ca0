import Ferry
import NIOCore
import Testing

@Suite("Idle, read and age timeouts")
struct TimeoutTests {
    @Test("idleTimeout closes a session without traffic, but traffic resets it")
    func idleTimeout() async throws {
        let timeout = Duration.milliseconds(600)
        let logs = LogStore()
        let (server, listener) = try await makeServer(
            FerryPeer.Configuration(idleTimeout: timeout), logger: logs.logger(label: "server"))
        let idleClient = FerryPeer(logger: quietLogger())
        let busyClient = FerryPeer(logger: quietLogger())
        let start = ContinuousClock.now
        let idle = try await idleClient.dial(listener.address)
        let busy = try await busyClient.dial(listener.address)

        // The busy session calls every 100 ms for twice the idle timeout and more; the idle one
        // does nothing.
        var idleClosedAfter: Duration?
        var calls: [(start: ContinuousClock.Instant, end: ContinuousClock.Instant)] = []
        while start.duration(to: .now) < timeout * 2 + .milliseconds(300) {
            let callStart = ContinuousClock.now
            let status = await statusThrown {
                try await busy.call("/math/add", AddArgs(a: 1, b: 1), as: Int.self, options: .timeout(.seconds(2)))
            }
            calls.append((callStart, .now))
            if let status {
                Issue.record("call \(calls.count) failed: \(status)")
                break
            }
            if idleClosedAfter == nil, !idle.isActive { idleClosedAfter = start.duration(to: .now) }
            try await Task.sleep(for: .milliseconds(100))
        }
        // The longest the server can have gone without traffic on the busy session.
        let longestQuiet = zip(calls, calls.dropFirst()).map { $0.start.duration(to: $1.end) }.max() ?? .zero
        if longestQuiet < timeout {
            #expect(busy.isActive, "traffic at most \(longestQuiet) apart resets a \(timeout) idle timeout")
        }
        #expect(!idle.isActive, "a session without traffic is closed after the idle timeout")
        if let idleClosedAfter {
            #expect(idleClosedAfter >= timeout - .milliseconds(50), "not before the idle timeout (\(idleClosedAfter))")
        }
        #expect(await closeReasonLogged(logs, containing: "idle") != nil, "the reason is logged")

        // Once the busy session stops, it is closed too.
        #expect(await eventually(timeout: .seconds(3)) { !busy.isActive })
        await idleClient.close()
        await busyClient.close()
        await server.close()
    }

    @Test("readTimeout closes a connection that stalls mid-frame, not one that sends nothing or whole frames")
    func readTimeout() async throws {
        let logs = LogStore()
        let (server, listener) = try await makeServer(
            FerryPeer.Configuration(readTimeout: .milliseconds(300)), logger: logs.logger(label: "server"))
        let stalled = try await RawConnection.connect(to: listener.address)
        let silent = try await RawConnection.connect(to: listener.address)
        let whole = try await RawConnection.connect(to: listener.address)

        let call = FerryMessage(
            type: .call, seq: 1, serviceMethod: "/math/add", bodyCodec: .json, body: ByteBuffer(string: #"{"a":2,"b":3}"#))
        let frame = try frameBytes(call)
        try await whole.send(frame)
        #expect(try await whole.nextMessage()?.status.isOK == true)

        let start = ContinuousClock.now
        try await stalled.send(Array(frame.prefix(10)))
        #expect(await stalled.waitUntilClosed(timeout: .seconds(2)), "half a frame then nothing: closed after the read timeout")
        let elapsed = start.duration(to: .now)
        #expect(elapsed >= .milliseconds(250), "not before the read timeout (\(elapsed))")
        #expect(await closeReasonLogged(logs, containing: "frame incomplete") != nil, "the reason is logged")
        #expect(stalled.receivedBytes.isEmpty)

        // One second in all: the others are untouched by the read timeout.
        let remaining = Duration.seconds(1) - start.duration(to: .now)
        if remaining > .zero { try await Task.sleep(for: remaining) }
        #expect(!silent.isClosed, "a connection that sends nothing is not closed by the read timeout")
        #expect(!whole.isClosed, "a connection between whole frames is not closed by the read timeout")
        try await whole.send(try frameBytes(FerryMessage(
            type: .call, seq: 2, serviceMethod: "/echo", bodyCodec: .json, body: ByteBuffer(string: #""still here""#))))
        #expect(try await whole.nextMessage()?.seq == 2)

        await stalled.close()
        await silent.close()
        await whole.close()
        await server.close()
    }

    @Test("a frame sent slowly but steadily, each gap within the read timeout, is not cut off")
    func slowButSteadyFrame() async throws {
        let (server, listener) = try await makeServer(FerryPeer.Configuration(readTimeout: .milliseconds(600)))
        let raw = try await RawConnection.connect(to: listener.address)
        let frame = try frameBytes(FerryMessage(
            type: .call, seq: 1, serviceMethod: "/math/add", bodyCodec: .json, body: ByteBuffer(string: #"{"a":2,"b":3}"#)))
        // In five parts, 200 ms apart: the whole frame takes longer than the read timeout, but
        // no gap comes near it.
        let parts = stride(from: 0, to: frame.count, by: frame.count / 5 + 1).map { Array(frame[$0..<min($0 + frame.count / 5 + 1, frame.count)]) }
        #expect(parts.count == 5)
        for (index, part) in parts.enumerated() {
            if index > 0 { try await Task.sleep(for: .milliseconds(200)) }
            try await raw.send(part)
        }
        let reply = try #require(try await raw.nextMessage(timeout: .seconds(2)))
        #expect(reply.status.isOK)
        #expect(String(buffer: reply.body) == "5")
        #expect(!raw.isClosed)
        await raw.close()
        await server.close()
    }

    @Test("maximumSessionAge closes a session once it is that old, even a busy one")
    func maximumSessionAge() async throws {
        let logs = LogStore()
        let (server, listener) = try await makeServer(
            FerryPeer.Configuration(maximumSessionAge: .milliseconds(500)), logger: logs.logger(label: "server"))
        let client = FerryPeer(logger: quietLogger())
        let start = ContinuousClock.now
        let session = try await client.dial(listener.address)

        var closedAfter: Duration?
        while start.duration(to: .now) < .seconds(3) {
            if !session.isActive {
                closedAfter = start.duration(to: .now)
                break
            }
            _ = try? await session.call("/math/add", AddArgs(a: 1, b: 1), as: Int.self, options: .timeout(.seconds(1)))
            try await Task.sleep(for: .milliseconds(100))
        }
        let age = try #require(closedAfter, "the session must be closed at its maximum age")
        #expect(age >= .milliseconds(400), "not before the maximum age (\(age))")
        #expect(await closeReasonLogged(logs, containing: "maximum age") != nil, "the reason is logged")
        #expect(await eventually { server.hub.count == 0 })
        await client.close()
        await server.close()
    }
}
