import Ferry
import NIOCore
import Synchronization
import Testing

@Suite("Overload protection")
struct OverloadTests {
    /// A `/block` route whose handlers wait until the gate opens.
    final class BlockingRoute: Sendable {
        let gate = Signal<Void>()
        let started = Counter()

        func register(on router: FerryRouter) {
            router.call("/block") { [gate, started] (_: Void, _: FerryContext) async -> String in
                started.increment()
                await gate.wait()
                return "done"
            }
        }
    }

    // MARK: Handler bound

    @Test("past maximumConcurrentHandlers a call gets 503 Overloaded at once, and calls succeed after release")
    func handlerBound() async throws {
        let blocking = BlockingRoute()
        let pair = try await makePair(
            server: FerryPeer.Configuration(limits: FerryPeer.Limits(maximumConcurrentHandlers: 2)),
            configure: blocking.register)
        defer { blocking.gate.fulfil(()) }

        let first = Task { try await pair.session.call("/block", (), as: String.self, options: .timeout(.seconds(5))) }
        let second = Task { try await pair.session.call("/block", (), as: String.self, options: .timeout(.seconds(5))) }
        #expect(await eventually { blocking.started.count == 2 }, "two handlers run")

        let (reply, elapsed) = try await timed {
            try await pair.session.callForReply("/block", (), options: .timeout(.seconds(30)))
        }
        #expect(reply.status.code == .unavailable)
        #expect(reply.status.message == "Overloaded")
        #expect(elapsed < .seconds(5), "refused at once, not queued until its 30 s timeout (\(elapsed))")
        #expect(blocking.started.count == 2, "the refused call never reached its handler")
        let other = try await pair.session.callForReply("/math/add", AddArgs(a: 1, b: 2), options: .timeout(.seconds(5)))
        #expect(other.status.code == .unavailable, "the bound covers every route")

        blocking.gate.fulfil(())
        #expect(try await first.value == "done")
        #expect(try await second.value == "done")
        #expect(await eventually {
            (try? await pair.session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self, options: .timeout(.seconds(2)))) == 3
        }, "calls succeed again once the handlers finish")
        #expect(try await pair.session.call("/block", (), as: String.self, options: .timeout(.seconds(5))) == "done")
        await pair.close()
    }

    // MARK: Connection bound

    @Test("past maximumConnections a new connection is closed on accept; others keep working; a freed slot is reused")
    func connectionBound() async throws {
        let logs = LogStore()
        let (server, listener) = try await makeServer(
            FerryPeer.Configuration(limits: FerryPeer.Limits(maximumConnections: 2)), logger: logs.logger(label: "server"))
        let clients = (0..<4).map { _ in FerryPeer(logger: quietLogger()) }

        let first = try await clients[0].dial(listener.address)
        let second = try await clients[1].dial(listener.address)
        #expect(try await first.call("/math/add", AddArgs(a: 1, b: 1), as: Int.self, options: .timeout(.seconds(5))) == 2)
        #expect(try await second.call("/math/add", AddArgs(a: 2, b: 2), as: Int.self, options: .timeout(.seconds(5))) == 4)
        #expect(await eventually { server.hub.count == 2 })

        let refused = await statusThrown {
            let third = try await clients[2].dial(listener.address)
            return try await third.call("/math/add", AddArgs(a: 3, b: 3), as: Int.self, options: .timeout(.seconds(5)))
        }
        let code = try #require(refused?.code, "the third connection's call must fail")
        // The dial may see the close (105), or the call does (102; a write racing the reset is 104).
        #expect([.connectionClosed, .dialFailed, .writeFailed].contains(code), "got \(String(describing: refused))")
        #expect(logs.first { $0.message.contains("connection limit") } != nil, "the refusal is logged")
        #expect(server.hub.count == 2)

        #expect(try await first.call("/math/add", AddArgs(a: 5, b: 5), as: Int.self, options: .timeout(.seconds(5))) == 10)
        #expect(try await second.call("/math/add", AddArgs(a: 6, b: 6), as: Int.self, options: .timeout(.seconds(5))) == 12)

        await clients[0].close()
        #expect(await eventually { server.hub.count == 1 }, "the server sees the first client leave")
        let fourth = try await clients[3].dial(listener.address)
        #expect(try await fourth.call("/math/add", AddArgs(a: 7, b: 7), as: Int.self, options: .timeout(.seconds(5))) == 14,
                "a freed slot takes a new connection")
        #expect(try await second.call("/math/add", AddArgs(a: 8, b: 8), as: Int.self, options: .timeout(.seconds(5))) == 16)

        for client in clients { await client.close() }
        await server.close()
    }

    // MARK: Slow consumers

    /// Body size of each push to a client that does not read.
    static let chunk = 32 << 10
    static let queueBound = 64 << 10

    /// A server with a 64 KiB outbound bound and `policy`, a connection that never reads, and
    /// the server's session for it.
    struct SlowConsumerFixture {
        let server: FerryPeer
        let logs: LogStore
        let reader: NonReadingConnection
        let session: FerrySession

        init(policy: FerryPeer.SlowConsumerPolicy) async throws {
            let logs = LogStore()
            let (server, listener) = try await makeServer(
                FerryPeer.Configuration(limits: FerryPeer.Limits(maximumQueuedOutboundBytes: OverloadTests.queueBound, slowConsumerPolicy: policy)),
                logger: logs.logger(label: "server"))
            self.server = server
            self.logs = logs
            reader = try await NonReadingConnection.connect(to: listener.address)
            #expect(await eventually { server.hub.count == 1 })
            session = try #require(server.hub.all.first)
        }

        func close() async {
            await reader.close()
            await server.close()
        }
    }

    /// The outcome of one push to a client that does not read.
    final class PushAttempt: Sendable {
        let started = ContinuousClock.now
        let outcome = Signal<(FerryStatus?, Duration)>()
        let timeout: Duration

        init(session: FerrySession, timeout: Duration) {
            self.timeout = timeout
            let outcome = self.outcome
            let started = self.started
            Task {
                let status = await statusThrown {
                    try await session.push(
                        "/sink", body: ByteBuffer(repeating: 0x61, count: OverloadTests.chunk), codec: .plain,
                        options: .timeout(timeout))
                }
                outcome.fulfil((status, started.duration(to: .now)))
            }
        }

        /// Waits for the push to finish, at most `limit`; nil while it still runs.
        func result(within limit: Duration) async -> (FerryStatus?, Duration)? {
            if let finished = outcome.current { return finished }
            guard limit > .zero else { return nil }
            return await outcome.wait(timeout: limit)
        }

        /// Waits until the push finishes or `slack` past its deadline; nil when it still runs.
        func resultByDeadline(slack: Duration = .seconds(2)) async -> (FerryStatus?, Duration)? {
            await result(within: timeout + slack - started.duration(to: .now))
        }
    }

    /// Pushes one chunk after another until a push fails at once, waiting at most 100 ms for
    /// each; returns every attempt (the last one failed, unless the limit of attempts ran out).
    static func pushUntilRefused(_ session: FerrySession, timeout: Duration, maximumAttempts: Int = 1000) async -> [PushAttempt] {
        var attempts: [PushAttempt] = []
        for _ in 0..<maximumAttempts {
            let attempt = PushAttempt(session: session, timeout: timeout)
            attempts.append(attempt)
            if let (status, _) = await attempt.result(within: .milliseconds(100)), status != nil { break }
        }
        return attempts
    }

    @Test("slow consumer, failWrite: once the queue is full a push fails at once with 104 and the session stays")
    func slowConsumerFailWrite() async throws {
        let fixture = try await SlowConsumerFixture(policy: .failWrite)
        // "At once" is measured against a push timeout of seconds, so that a busy machine cannot
        // pass a push that waited for its deadline off as refused.
        let attempts = await Self.pushUntilRefused(fixture.session, timeout: .seconds(5))
        let (status, elapsed) = try #require(await attempts.last?.result(within: .zero), "the last push finished")
        #expect(status?.code == .writeFailed, "got \(String(describing: status))")
        #expect(elapsed < .seconds(1), "refused at once (\(elapsed))")
        #expect(attempts.count > 1, "some pushes went through before the queue filled")

        // The next pushes do not wait either: each is refused with 104 while the queue is full,
        // or written if the kernel has taken some of it meanwhile (Linux grows a socket's send
        // buffer on its own, more so on a busy machine).
        for _ in 0..<5 {
            let again = PushAttempt(session: fixture.session, timeout: .seconds(5))
            let result = try #require(await again.result(within: .seconds(3)), "a push to a full queue does not wait")
            #expect(result.0 == nil || result.0?.code == .writeFailed, "got \(String(describing: result.0))")
            #expect(result.1 < .seconds(2), "decided at once (\(result.1))")
        }
        #expect(fixture.session.isActive, "failWrite keeps the session; closed: \(fixture.logs.all.filter { $0.message == "session closed" })")

        // The pushes that made it into the queue but cannot be written must not hang past their
        // deadline either.
        for (index, attempt) in attempts.enumerated() {
            let result = await attempt.resultByDeadline()
            #expect(result != nil, "push \(index + 1) of \(attempts.count) still hangs past its deadline")
        }
        await fixture.close()
    }

    @Test("slow consumer, closeSession: the session closes with a logged reason and the push fails with 102")
    func slowConsumerCloseSession() async throws {
        let fixture = try await SlowConsumerFixture(policy: .closeSession)
        let attempts = await Self.pushUntilRefused(fixture.session, timeout: .seconds(1))
        let (status, _) = try #require(await attempts.last?.result(within: .zero), "the last push finished")
        #expect(status?.code == .connectionClosed, "got \(String(describing: status))")
        #expect(await eventually { !fixture.session.isActive }, "the session is closed")
        #expect(await closeReasonLogged(fixture.logs, containing: "slow consumer") != nil, "with a logged reason")
        #expect(await eventually { fixture.server.hub.count == 0 })
        let after = await statusThrown {
            try await fixture.session.push("/sink", "late", options: .timeout(.seconds(1)))
        }
        #expect(after?.code == .connectionClosed)
        await fixture.close()
    }

    @Test("slow consumer, applyBackPressure, over a real socket: every push ends by its deadline, written or 408, and the queue stays bounded")
    func slowConsumerBackPressure() async throws {
        // How a waiting push fails at its deadline is shown on loop time in
        // ``SlowConsumerPolicyTests``; over a socket, whether the kernel's buffers grow in time to
        // take a waiting push depends on the machine, so only the bounds are checked here.
        let fixture = try await SlowConsumerFixture(policy: .applyBackPressure)
        let deadline = Duration.seconds(2)
        // Push until five pushes in a row have not finished within 100 ms each: by then the
        // queue is full and pushes wait for room.
        var attempts: [PushAttempt] = []
        var unfinishedInARow = 0
        while unfinishedInARow < 5, attempts.count < 1000 {
            let attempt = PushAttempt(session: fixture.session, timeout: deadline)
            attempts.append(attempt)
            if let (status, _) = await attempt.result(within: .milliseconds(100)) {
                #expect(status == nil, "push \(attempts.count) failed before the queue was full: \(String(describing: status))")
                unfinishedInARow = 0
            } else {
                unfinishedInARow += 1
            }
        }
        #expect(unfinishedInARow == 5, "the queue fills up (\(attempts.count) pushes)")
        #expect(fixture.session.isActive, "back-pressure keeps the session; closed: \(fixture.logs.all.filter { $0.message == "session closed" })")

        // Every push ends by its deadline: written, or 408 after waiting for room.
        var written = 0
        var timedOut = 0
        var stuck = 0
        for (index, attempt) in attempts.enumerated() {
            guard let (status, elapsed) = await attempt.resultByDeadline() else {
                stuck += 1
                Issue.record("push \(index + 1) of \(attempts.count) still hangs \(attempt.started.duration(to: .now)) after it started, past its \(deadline) deadline")
                continue
            }
            switch status?.code {
            case nil:
                written += 1
            case .timedOut?:
                timedOut += 1
                #expect(elapsed >= deadline - .milliseconds(50), "push \(index + 1) waited for its deadline (\(elapsed))")
                #expect(elapsed < deadline + .seconds(2), "push \(index + 1) failed at its deadline (\(elapsed))")
            default:
                Issue.record("push \(index + 1): unexpected \(String(describing: status))")
            }
        }
        // Bounded memory: beyond what the socket took (the written pushes) and the refused
        // ones, the queue holds at most the bound, plus the message that crossed it and one the
        // socket took in part.
        let queued = attempts.count - written - timedOut
        #expect(queued * Self.chunk <= Self.queueBound + 2 * Self.chunk,
                "\(queued) chunks of \(Self.chunk) bytes queued beyond the socket (\(stuck) stuck)")
        #expect(fixture.session.isActive, "closed: \(fixture.logs.all.filter { $0.message == "session closed" })")
        await fixture.close()
    }

    // MARK: Push flood

    @Test("a flood of 50,000 pushes runs at most maximumConcurrentHandlers at once and the server stays responsive")
    func pushFlood() async throws {
        let limit = 4
        let gauge = ConcurrencyGauge()
        let pair = try await makePair(
            server: FerryPeer.Configuration(limits: FerryPeer.Limits(maximumConcurrentHandlers: limit))
        ) { router in
            router.push("/flood") { (_: Void, _: FerryContext) in
                gauge.enter()
                defer { gauge.leave() }
                try? await Task.sleep(for: .milliseconds(2))
            }
        }
        let flooder = try await RawConnection.connect(to: pair.listener.address)

        let count = 50_000
        let proto = FerryRawProto()
        var buffer = ByteBuffer()
        buffer.reserveCapacity(count * 32)
        for seq in 1...count {
            try proto.encodeMessage(FerryMessage(type: .push, seq: Int32(seq), serviceMethod: "/flood"), into: &buffer)
        }
        // A CALL behind the flood: its reply means every push before it was dispatched.
        try proto.encodeMessage(FerryMessage(
            type: .call, seq: Int32(count + 1), serviceMethod: "/echo", bodyCodec: .json, body: ByteBuffer(string: #""end""#)),
            into: &buffer)
        let bytes = Array(buffer.readableBytesView)

        let flood = Task { try await flooder.send(bytes) }
        // Meanwhile the well-behaved session gets prompt answers: OK, or 503 while the bound is full.
        var answers: [FerryStatus.Code] = []
        var slowest = Duration.zero
        while answers.count < 20 || flooder.receivedBytes.isEmpty {
            let (reply, elapsed) = try await timed {
                try await pair.session.callForReply("/math/add", AddArgs(a: 1, b: 2), options: .timeout(.seconds(30)))
            }
            answers.append(reply.status.code)
            slowest = max(slowest, elapsed)
            if answers.count > 2000 { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        try await flood.value
        let end = try #require(try await flooder.nextMessage(timeout: .seconds(20)), "the CALL behind the flood is answered")
        #expect(end.seq == Int32(count + 1))
        #expect([FerryStatus.Code.ok, .unavailable].contains(end.status.code))

        #expect(gauge.peak <= limit, "at most \(limit) push handlers ran at once (peak \(gauge.peak))")
        #expect(gauge.peak == limit, "the flood filled every slot (peak \(gauge.peak))")
        #expect(gauge.total > 0, "some pushes were handled")
        #expect(gauge.total < count, "the rest were dropped, not queued (\(gauge.total) handled)")
        #expect(answers.allSatisfy { $0 == .ok || $0 == .unavailable }, "answers: \(Set(answers))")
        #expect(slowest < .seconds(10), "the other session's calls are answered promptly, far within their 30 s (slowest \(slowest))")

        #expect(await eventually { gauge.current == 0 })
        #expect(try await pair.session.call("/math/add", AddArgs(a: 20, b: 22), as: Int.self, options: .timeout(.seconds(5))) == 42)
        #expect(!flooder.isClosed)
        await flooder.close()
        await pair.close()
    }
}
