@testable import Ferry
import NIOCore
import Testing

/// erpc's heartbeat, on a session served over an in-memory channel whose loop time the test
/// moves: no test waits for time to pass. Two tests over real sockets check the wiring.
@Suite("Heartbeat")
struct HeartbeatTests {
    static let route = FerryPeer.Heartbeat.route
    static let periodKey = FerryPeer.Heartbeat.periodMetaKey
    static let interval = Duration.milliseconds(300)

    /// A session that pings every 300 ms (announced as 1 whole second).
    static func pinging(withCall: Bool = false, logs: LogStore? = nil) async throws -> EmbeddedSession {
        try await EmbeddedSession.start(
            FerryPeer.Configuration(heartbeat: FerryPeer.Heartbeat(pingInterval: interval, pingWithCall: withCall)),
            logger: logs?.logger(label: "server") ?? quietLogger()
        ) { router in
            router.push("/feed") { (_: Int, _: FerryContext) in }
        }
    }

    /// Checks that `message` is a heartbeat of the given type announcing 1 s.
    static func expectHeartbeat(_ message: FerryMessage, type: FerryMessageType, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(message.serviceMethod == route, sourceLocation: sourceLocation)
        #expect(message.type == type, sourceLocation: sourceLocation)
        #expect(message.meta[periodKey] == "1", "300 ms is announced as 1 whole second", sourceLocation: sourceLocation)
        #expect(message.body.readableBytes == 0, sourceLocation: sourceLocation)
    }

    // MARK: Pinging side

    @Test("a quiet session sends a /heartbeat PUSH carrying hb_=1 after each ping interval of silence, not before")
    func pingsAfterEachIntervalOfSilence() async throws {
        let embedded = try await Self.pinging()

        await embedded.advance(by: Self.interval - .milliseconds(1))
        #expect(embedded.timerEvents.all.isEmpty, "no heartbeat before the interval")
        #expect(try await embedded.written().isEmpty)

        await embedded.advance(by: .milliseconds(1))
        #expect(embedded.timerEvents.all.map(\.isHeartbeatDue) == [true])
        let first = try await embedded.nextWritten()
        Self.expectHeartbeat(first, type: .push)

        // The heartbeat itself was the latest traffic: the next one comes an interval after it.
        await embedded.advance(by: Self.interval - .milliseconds(1))
        #expect(embedded.timerEvents.count == 1)
        await embedded.advance(by: .milliseconds(1))
        let second = try await embedded.nextWritten()
        Self.expectHeartbeat(second, type: .push)
        #expect(second.seq != first.seq, "each ping has its own seq")
        #expect(embedded.timerEvents.all.map(\.at) == [.milliseconds(300), .milliseconds(600)])
        #expect(embedded.isOpen)
        await embedded.close()
    }

    @Test("no heartbeat is sent while traffic flows; pings resume an interval after it stops")
    func noPingWhileBusy() async throws {
        let embedded = try await Self.pinging()

        // A PUSH in every 200 ms for 3 s, which the session reads and does not answer: the
        // connection is never quiet for the ping interval.
        for seq in Int32(1)...15 {
            await embedded.advance(by: .milliseconds(200))
            try await embedded.send(FerryMessage(type: .push, seq: seq, serviceMethod: "/feed", bodyCodec: .json, body: ByteBuffer(string: "1")))
        }
        #expect(try await embedded.written().isEmpty)
        #expect(embedded.timerEvents.all.isEmpty, "no heartbeat while busy: \(embedded.timerEvents.all)")

        await embedded.advance(by: Self.interval - .milliseconds(1))
        #expect(embedded.timerEvents.all.isEmpty)
        await embedded.advance(by: .milliseconds(1))
        let ping = try await embedded.nextWritten()
        Self.expectHeartbeat(ping, type: .push)
        #expect(ping.seq == 1, "the first message this side sent: no ping was sent while busy")
        #expect(embedded.timerEvents.all == [EmbeddedSession.TimerEvent(isHeartbeatDue: true, at: .seconds(3) + Self.interval)])
        await embedded.close()
    }

    @Test("with pingWithCall the ping is a CALL; answered OK, the session stays open and keeps pinging")
    func pingWithCallAnsweredOK() async throws {
        let embedded = try await Self.pinging(withCall: true)
        for round in 1...3 {
            await embedded.advance(by: Self.interval)
            let ping = try await embedded.nextWritten()
            Self.expectHeartbeat(ping, type: .call)
            try await embedded.send(.reply(to: ping.seq))
            #expect(embedded.timerEvents.count == round)
        }
        #expect(embedded.isOpen)
        #expect(await eventually { embedded.session.outstanding.pendingCalls == 0 })
        #expect(embedded.session.isActive)
        await embedded.close()
    }

    @Test("a heartbeat CALL answered with an error closes the session, and no ping follows")
    func pingWithCallClosesOnError() async throws {
        let logs = LogStore()
        let embedded = try await Self.pinging(withCall: true, logs: logs)
        await embedded.advance(by: Self.interval)
        let ping = try await embedded.nextWritten()
        Self.expectHeartbeat(ping, type: .call)

        try await embedded.send(.reply(to: ping.seq, status: FerryStatus(.internalServerError, "Internal Server Error", cause: "no heartbeat here")))
        #expect(await embedded.waitUntilClosed(), "a failed heartbeat closes the session")
        let logged = try #require(logs.first { $0.message.contains("heartbeat failed") }, "the session logs why it closed")
        #expect(logged.metadata["error"]?.contains("500") == true, "closed because of the 500 answer: \(logged)")

        await embedded.advance(by: Self.interval * 3)
        #expect(try await embedded.written().isEmpty, "no ping after the failure")
        let status = await statusThrown { try await embedded.session.callForReply("/work", (), options: .timeout(.seconds(1))) }
        #expect(status?.code == .connectionClosed)
        await embedded.close()
    }

    @Test("a heartbeat CALL left unanswered closes the session at its deadline, the ping interval")
    func pingWithCallUnanswered() async throws {
        let logs = LogStore()
        let embedded = try await Self.pinging(withCall: true, logs: logs)
        await embedded.advance(by: Self.interval)
        Self.expectHeartbeat(try await embedded.nextWritten(), type: .call)

        await embedded.advance(by: Self.interval - .milliseconds(1))
        #expect(embedded.session.outstanding.pendingCalls == 1, "the ping still waits for its answer")
        #expect(embedded.isOpen)
        // At the deadline the ping fails (and the ping timer, due too, may start another one).
        await embedded.advance(by: .milliseconds(1))
        #expect(await embedded.waitUntilClosed())
        let logged = try #require(logs.first { $0.message.contains("heartbeat failed") })
        #expect(logged.metadata["error"]?.contains("408") == true, "closed because the ping timed out: \(logged)")
        await embedded.close()
    }

    // MARK: Answering side

    @Test("the answering side closes a remote silent for twice its announced period, not sooner")
    func closesSilentRemote() async throws {
        let logs = LogStore()
        let embedded = try await EmbeddedSession.start(logger: logs.logger(label: "server"))
        await embedded.advance(by: .seconds(5))
        try await embedded.send(FerryMessage(type: .push, seq: 1, serviceMethod: Self.route, meta: [Self.periodKey: "1"]))

        await embedded.advance(by: .seconds(2) - .milliseconds(1))
        #expect(embedded.isOpen, "silent for just under twice the announced 1 s")
        await embedded.advance(by: .milliseconds(1))
        #expect(!embedded.isOpen, "silent for twice the announced period: closed")
        #expect(embedded.timerEvents.all.map(\.at) == [.seconds(7)])
        #expect(try #require(embedded.timerEvents.all.first?.reason).contains("heartbeat"))
        #expect(logs.first { $0.message == "session closed" && ($0.metadata["reason"] ?? "").contains("heartbeat") } != nil)
        #expect(try await embedded.written().isEmpty, "a heartbeat PUSH is not answered")
        await embedded.close()
    }

    @Test("a remote that never announced a period is not closed by the heartbeat rule")
    func unannouncedRemoteStaysOpen() async throws {
        let embedded = try await EmbeddedSession.start()
        try await embedded.send(.add(1, 2, seq: 1))
        #expect(try await embedded.nextWritten().status.isOK)
        await embedded.advance(by: .seconds(60))
        #expect(embedded.isOpen)
        #expect(embedded.timerEvents.all.isEmpty)
        await embedded.close()
    }

    @Test("a remote that keeps pinging within twice its period stays open, and is closed once it stops")
    func pingingRemoteStaysOpen() async throws {
        let embedded = try await EmbeddedSession.start()
        for seq in Int32(1)...10 {
            try await embedded.send(FerryMessage(type: .push, seq: seq, serviceMethod: Self.route, meta: [Self.periodKey: "1"]))
            await embedded.advance(by: .milliseconds(1900))
            #expect(embedded.isOpen, "ping \(seq)")
        }
        await embedded.advance(by: .milliseconds(100))
        #expect(!embedded.isOpen, "closed twice the period after the last ping")
        await embedded.close()
    }

    @Test("a session where only the answering side sends traffic is not closed as silent")
    func answeringSideTrafficKeepsSessionOpen() async throws {
        let embedded = try await EmbeddedSession.start()
        try await embedded.send(FerryMessage(type: .push, seq: 1, serviceMethod: Self.route, meta: [Self.periodKey: "1"]))

        // The server pushes to the remote every 500 ms for 5 s; the remote never writes. As in
        // erpc, this side's own writes keep the session from counting as silent.
        for value in 0..<10 {
            try await embedded.session.push("/feed", value, options: .timeout(.seconds(1)))
            #expect(try await embedded.written().map(\.serviceMethod) == ["/feed"])
            await embedded.advance(by: .milliseconds(500))
        }
        #expect(embedded.isOpen)
        await embedded.advance(by: .milliseconds(1500))
        #expect(!embedded.isOpen, "closed twice the period after the last traffic")
        await embedded.close()
    }

    @Test("a heartbeat CALL with a bad period gets 400; with hb_=1 an OK reply with the same seq")
    func heartbeatCallReplies() async throws {
        let embedded = try await EmbeddedSession.start()

        try await embedded.send(FerryMessage(type: .call, seq: 7, serviceMethod: Self.route, meta: [Self.periodKey: "x"]))
        let bad = try await embedded.nextWritten()
        #expect(bad.type == .reply)
        #expect(bad.seq == 7)
        #expect(bad.status.code == .badMessage)

        try await embedded.send(FerryMessage(type: .call, seq: 8, serviceMethod: Self.route, meta: [Self.periodKey: "1"]))
        let good = try await embedded.nextWritten()
        #expect(good.type == .reply)
        #expect(good.seq == 8)
        #expect(good.status.isOK)
        #expect(good.serviceMethod.isEmpty)

        try await embedded.send(FerryMessage(type: .call, seq: 9, serviceMethod: Self.route, meta: [Self.periodKey: "-3"]))
        let negative = try await embedded.nextWritten()
        #expect(negative.seq == 9)
        #expect(negative.status.code == .badMessage, "a negative period is invalid too")
        #expect(embedded.isOpen, "a bad heartbeat rate does not close the session")
        await embedded.close()
    }

    // MARK: Wiring over real sockets

    @Test("over TCP, a quiet dialled client's pings reach the server as /heartbeat PUSHes with hb_")
    func pingsOverTCP() async throws {
        let server = try await RawServer.start()
        let logs = LogStore()
        let client = FerryPeer(
            // A ping not written within its interval closes the session: a whole second leaves
            // room for a busy machine.
            configuration: FerryPeer.Configuration(heartbeat: FerryPeer.Heartbeat(pingInterval: .seconds(1))),
            logger: logs.logger(label: "client"))
        let session = try await client.dial(server.address)
        #expect(await eventually(timeout: .seconds(30)) { !server.messages(to: Self.route).isEmpty })
        let ping = try #require(server.messages(to: Self.route).first)
        #expect(ping.message.type == .push)
        #expect(ping.message.meta[Self.periodKey] == "1")
        #expect(session.isActive, "closed: \(logs.all.filter { $0.level >= .info })")
        await client.close()
        await server.close()
    }

    @Test("over TCP, the server closes a client that announced a period and went silent")
    func closesSilentClientOverTCP() async throws {
        let logs = LogStore()
        let (server, listener) = try await makeServer(logger: logs.logger(label: "server"))
        let silent = try await RawConnection.connect(to: listener.address)
        try await silent.send(FerryMessage(type: .push, seq: 1, serviceMethod: Self.route, meta: [Self.periodKey: "1"]))
        #expect(await silent.waitUntilClosed(timeout: .seconds(30)))
        #expect(await closeReasonLogged(logs, containing: "heartbeat") != nil)
        await silent.close()
        await server.close()
    }
}
