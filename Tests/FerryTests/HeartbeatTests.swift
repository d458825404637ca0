import Ferry
import NIOCore
import Testing

@Suite("Heartbeat")
struct HeartbeatTests {
    static let route = FerryPeer.Heartbeat.route
    static let periodKey = FerryPeer.Heartbeat.periodMetaKey

    /// A client peer that pings every 300 ms with the given settings.
    static func pingingClient(withCall: Bool = false, logs: LogStore? = nil) -> FerryPeer {
        let configuration = FerryPeer.Configuration(
            heartbeat: FerryPeer.Heartbeat(pingInterval: .milliseconds(300), pingWithCall: withCall))
        return FerryPeer(configuration: configuration, logger: logs?.logger(label: "client") ?? quietLogger())
    }

    // MARK: Pinging side

    @Test("a quiet client pings with /heartbeat PUSHes carrying hb_=1, and stops while other traffic flows")
    func pingsWhenQuietOnly() async throws {
        let server = try await RawServer.start()
        let client = Self.pingingClient()
        let session = try await client.dial(server.address)

        // No traffic at all: pings come every ~300 ms.
        #expect(await eventually(timeout: .seconds(5)) { server.messages(to: Self.route).count >= 2 },
                "at least two pings within about a second of silence")
        let pings = server.messages(to: Self.route)
        for ping in pings {
            #expect(ping.message.type == .push, "without pingWithCall the ping is a PUSH")
            #expect(ping.message.meta[Self.periodKey] == "1", "300 ms is announced as 1 whole second")
            #expect(ping.message.body.readableBytes == 0)
        }
        #expect(Set(pings.map(\.message.seq)).count == pings.count, "each ping has its own seq")
        #expect(server.received.allSatisfy { $0.message.serviceMethod == Self.route }, "nothing but pings was sent")

        // Busy: a call every 100 ms for a second; no ping may be sent meanwhile.
        var calls: [(start: ContinuousClock.Instant, end: ContinuousClock.Instant)] = []
        for _ in 0..<10 {
            let start = ContinuousClock.now
            _ = try await session.callForReply("/work", (), options: .timeout(.seconds(10)))
            calls.append((start, .now))
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(server.messages(to: "/work", type: .call).count == 10)
        // The longest the client can have been quiet: from one call's start to the next one's end.
        let longestQuiet = zip(calls, calls.dropFirst()).map { $0.start.duration(to: $1.end) }.max() ?? .zero
        // A ping the timer fired just before the first call may still land during it.
        let pingsWhileBusy = server.messages(to: Self.route).filter {
            $0.at > calls[0].end + .milliseconds(50) && $0.at <= calls[calls.count - 1].end
        }
        if longestQuiet < .milliseconds(300) {
            #expect(pingsWhileBusy.isEmpty, "no ping while calls keep the connection busy: \(pingsWhileBusy.map(\.at))")
        } else {
            // The machine stalled the loop past the ping interval; a ping was allowed then.
            #expect(pingsWhileBusy.count <= calls.count, "at most one ping per stall")
        }

        // Quiet again: pings resume.
        let before = server.messages(to: Self.route).count
        #expect(await eventually(timeout: .seconds(2)) { server.messages(to: Self.route).count > before },
                "pings resume once the connection is quiet again")
        #expect(session.isActive)
        await client.close()
        await server.close()
    }

    @Test("with pingWithCall the ping is a CALL, and a non-OK answer closes the session")
    func pingWithCallClosesOnError() async throws {
        let server = try await RawServer.start { message in
            guard message.serviceMethod == HeartbeatTests.route else { return RawServer.replyOK(message) }
            return FerryMessage(
                type: .reply, seq: message.seq,
                status: FerryStatus(.internalServerError, "Internal Server Error", cause: "no heartbeat here"))
        }
        let logs = LogStore()
        let client = Self.pingingClient(withCall: true, logs: logs)
        let session = try await client.dial(server.address)

        let firstPing = await eventually(timeout: .seconds(2)) { !server.messages(to: Self.route).isEmpty }
        #expect(firstPing, "a ping is sent after 300 ms of silence")
        let ping = try #require(server.messages(to: Self.route).first)
        #expect(ping.message.type == .call)
        #expect(ping.message.meta[Self.periodKey] == "1")

        #expect(await eventually(timeout: .seconds(3)) { !session.isActive }, "the client closes the session after a failed heartbeat")
        #expect(await eventually(timeout: .seconds(3)) { server.closedCount == 1 }, "the connection is really closed")
        let logged = await logs.waitFor(timeout: .seconds(2)) { $0.message.contains("heartbeat failed") }
        let error = try #require(logged?.metadata["error"], "the client logs why it closed")
        #expect(error.contains("500"), "closed because of the 500 answer, not a timeout: \(error)")
        #expect(server.messages(to: Self.route).count == 1, "no further pings after the failure")

        let status = await statusThrown { try await session.callForReply("/work", (), options: .timeout(.seconds(1))) }
        #expect(status?.code == .connectionClosed)
        await client.close()
        await server.close()
    }

    @Test("a heartbeat CALL answered OK keeps the session open")
    func pingWithCallAnsweredOK() async throws {
        let server = try await RawServer.start()
        let client = Self.pingingClient(withCall: true)
        let session = try await client.dial(server.address)

        #expect(await eventually(timeout: .seconds(3)) { server.messages(to: Self.route, type: .call).count >= 3 })
        #expect(session.isActive)
        #expect(server.closedCount == 0)
        _ = try await session.callForReply("/work", (), options: .timeout(.seconds(2)))
        await client.close()
        await server.close()
    }

    // MARK: Answering side

    @Test("the answering side closes a client silent for twice its announced period, and only such a client")
    func answeringSideClosesSilentClients() async throws {
        let logs = LogStore()
        let (server, listener) = try await makeServer(logger: logs.logger(label: "server"))

        // Announces 1 s, then goes silent.
        let silent = try await RawConnection.connect(to: listener.address)
        // Never announces a period; one ordinary call, then silence.
        let unannounced = try await RawConnection.connect(to: listener.address)
        // Announces 1 s and keeps pinging every 700 ms.
        let pinging = try await RawConnection.connect(to: listener.address)

        let start = ContinuousClock.now
        try await silent.send(FerryMessage(type: .push, seq: 1, serviceMethod: Self.route, meta: [Self.periodKey: "1"]))
        try await unannounced.send(FerryMessage(
            type: .call, seq: 1, serviceMethod: "/math/add", bodyCodec: .json, body: ByteBuffer(string: #"{"a":1,"b":2}"#)))
        #expect(try await unannounced.nextMessage()?.status.isOK == true)

        let keepPinging = Task {
            var seq: Int32 = 1
            while !Task.isCancelled {
                try await pinging.send(FerryMessage(type: .push, seq: seq, serviceMethod: Self.route, meta: [Self.periodKey: "1"]))
                seq += 1
                try await Task.sleep(for: .milliseconds(700))
            }
        }

        #expect(await silent.waitUntilClosed(timeout: .milliseconds(3500)), "silent for 2 s after announcing 1 s: closed")
        let closedAfter = start.duration(to: .now)
        #expect(closedAfter >= .milliseconds(1500), "not before twice the period (\(closedAfter))")
        let reason = await closeReasonLogged(logs, containing: "heartbeat", timeout: .seconds(2))
        #expect(reason != nil, "the close is logged with a reason that mentions the heartbeat")

        // Let three seconds pass in all: the other two stay open.
        let remaining = Duration.seconds(3) - start.duration(to: .now)
        if remaining > .zero { try await Task.sleep(for: remaining) }
        #expect(!unannounced.isClosed, "a client that never announced a period is not closed by the heartbeat rule")
        #expect(!pinging.isClosed, "a client that keeps pinging is not closed")
        #expect(silent.receivedBytes.isEmpty, "a heartbeat PUSH is not answered")

        keepPinging.cancel()
        await silent.close()
        await unannounced.close()
        await pinging.close()
        await server.close()
    }

    @Test("a session where only the answering side sends traffic is not closed as silent")
    func answeringSideTrafficKeepsSessionOpen() async throws {
        let heartbeatsWritten = Recorder<ContinuousClock.Instant>()
        var clientConfiguration = FerryPeer.Configuration(heartbeat: FerryPeer.Heartbeat(pingInterval: .milliseconds(300)))
        clientConfiguration.hooks.beforeWrite = { message, _ in
            if message.serviceMethod == HeartbeatTests.route { heartbeatsWritten.append(.now) }
        }
        let received = Counter()
        let pair = try await makePair(client: clientConfiguration) { _ in
        } clientRoutes: { router in
            router.push("/feed") { (_: Int, _: FerryContext) in received.increment() }
        }

        // The client announces its period (1 s) once the connection is quiet.
        #expect(await eventually(timeout: .seconds(2)) { heartbeatsWritten.count >= 1 })
        #expect(await eventually { pair.server.hub.count == 1 })
        let accepted = try #require(pair.server.hub.all.first)

        // Then the server streams to the client every 50 ms for 3 s. The client, never quiet,
        // does not ping (as erpc's pinger does not); the session is busy, not silent.
        let start = ContinuousClock.now
        let pingsBefore = heartbeatsWritten.count
        var sent = 0
        while start.duration(to: .now) < .seconds(3) {
            guard accepted.isActive else { break }
            try? await accepted.push("/feed", sent, options: .timeout(.seconds(1)))
            sent += 1
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(accepted.isActive && pair.session.isActive,
                "closed after \(start.duration(to: .now)) although the server wrote to it every 50 ms (\(received.count) pushes received, \(heartbeatsWritten.count - pingsBefore) pings meanwhile)")
        await pair.close()
    }

    @Test("a heartbeat CALL with a bad period gets 400; with hb_=1 an OK reply with the same seq")
    func heartbeatCallReplies() async throws {
        let (server, listener) = try await makeServer()
        let raw = try await RawConnection.connect(to: listener.address)

        try await raw.send(FerryMessage(type: .call, seq: 7, serviceMethod: Self.route, meta: [Self.periodKey: "x"]))
        let bad = try #require(try await raw.nextMessage())
        #expect(bad.type == .reply)
        #expect(bad.seq == 7)
        #expect(bad.status.code == .badMessage)

        try await raw.send(FerryMessage(type: .call, seq: 8, serviceMethod: Self.route, meta: [Self.periodKey: "1"]))
        let good = try #require(try await raw.nextMessage())
        #expect(good.type == .reply)
        #expect(good.seq == 8)
        #expect(good.status.isOK)
        #expect(good.serviceMethod.isEmpty)

        try await raw.send(FerryMessage(type: .call, seq: 9, serviceMethod: Self.route, meta: [Self.periodKey: "-3"]))
        let negative = try #require(try await raw.nextMessage())
        #expect(negative.seq == 9)
        #expect(negative.status.code == .badMessage, "a negative period is invalid too")

        #expect(!raw.isClosed, "a bad heartbeat rate does not close the session")
        await raw.close()
        await server.close()
    }
}
