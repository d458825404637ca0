import Foundation
import Ferry
import NIOCore
import Testing

@Suite("Deadlines across hops")
struct DeadlineTests {
    @Test("a call carries its remaining time in X-Ferry-Timeout and the handler sees it as its deadline")
    func deadlineTravels() async throws {
        let seen = Recorder<(meta: String?, remaining: Duration?)>()
        let pair = try await makePair { router in
            router.call("/deadline") { (_: Void, context: FerryContext) in
                seen.append((context.meta[FerryDeadline.metaKey], context.deadline.map { ContinuousClock.now.duration(to: $0) }))
                return 0
            }
        }
        // Ten seconds against the default thirty: what arrives is the call's own timeout, less
        // the time it took to get there (a fraction of a second, however busy the machine).
        _ = try await pair.session.call("/deadline", (), as: Int.self, options: .timeout(.seconds(10)))
        let observed = try #require(seen.all.first)
        #expect(observed.meta.flatMap(Int.init).map { (5000...10_000).contains($0) } == true, "meta \(String(describing: observed.meta))")
        let remaining = try #require(observed.remaining)
        #expect(remaining > .seconds(5) && remaining <= .seconds(10))
        await pair.close()
    }

    @Test("a handler's outgoing calls inherit the caller's deadline across a second hop")
    func inheritedAcrossHops() async throws {
        // client -> front -> back. The front calls back with default options (30 s).
        let backSeen = Recorder<Duration>()
        let (back, backListener) = try await makeServer { router in
            router.call("/leaf") { (_: Void, context: FerryContext) in
                backSeen.append(context.deadline.map { ContinuousClock.now.duration(to: $0) } ?? .seconds(999))
                return "leaf"
            }
        }
        let front = FerryPeer(logger: quietLogger())
        // Routes are registered before the peer dials; the session they use comes after.
        let backSession = Box<FerrySession>()
        front.router.call("/front") { (_: Void, _: FerryContext) in
            try await backSession.value!.call("/leaf", (), as: String.self)
        }
        backSession.value = try await front.dial(backListener.address)
        let frontListener = try await front.listen(.tcp(host: "127.0.0.1", port: 0))
        let client = FerryPeer(logger: quietLogger())
        let session = try await client.dial(frontListener.address)
        // Ten seconds against the front's default of thirty: the back hop sees at most ten.
        let answer = try await session.call("/front", (), as: String.self, options: .timeout(.seconds(10)))
        #expect(answer == "leaf")
        let remaining = try #require(backSeen.all.first)
        #expect(remaining <= .seconds(10) && remaining > .zero, "the back hop got \(remaining)")
        await client.close()
        await front.close()
        await back.close()
    }

    @Test("a nested call fails at the inherited deadline, not at its own default timeout")
    func nestedCallCutAtDeadline() async throws {
        // The back never answers in time: its gate opens when the test ends.
        let gate = Signal<Void>()
        defer { gate.fulfil(()) }
        let (back, backListener) = try await makeServer { router in
            router.call("/slow") { (_: Void, _: FerryContext) in
                await gate.wait()
                return "late"
            }
        }
        let front = FerryPeer(logger: quietLogger())
        let backSession = Box<FerrySession>()
        let nested = Recorder<(FerryStatus?, Duration)>()
        front.router.call("/front") { (_: Void, _: FerryContext) -> String in
            let start = ContinuousClock.now
            do {
                return try await backSession.value!.call("/slow", (), as: String.self)
            } catch let status as FerryStatus {
                nested.append((status, start.duration(to: .now)))
                throw status
            }
        }
        backSession.value = try await front.dial(backListener.address)
        let frontListener = try await front.listen(.tcp(host: "127.0.0.1", port: 0))
        let client = FerryPeer(logger: quietLogger())
        let session = try await client.dial(frontListener.address)
        // Two seconds: time enough to reach the front's handler on a busy machine, and far
        // below the nested call's own default of thirty.
        let status = await statusThrown { try await session.call("/front", (), as: String.self, options: .timeout(.seconds(2))) }
        #expect(status?.code == .timedOut)
        #expect(await eventually { nested.count == 1 })
        let (nestedStatus, took) = try #require(nested.all.first)
        #expect(nestedStatus?.code == .timedOut)
        #expect(took < .seconds(10), "the nested call waited \(took)")
        await client.close()
        await front.close()
        await back.close()
    }

    @Test("a call that arrives with no time left is answered 504 and its handler never runs")
    func expiredWorkNotStarted() async throws {
        // One millisecond left is time enough: the handler runs.
        try await expectExpiredCallNotStarted(onTimeMilliseconds: "1") { router, ran in
            router.call("/work") { (_: Void, _: FerryContext) in
                ran.append(1)
                return 1
            }
        }
    }

    @Test("an asynchronous handler's call that arrives with no time left is answered 504 and never runs")
    func expiredAsynchronousWorkNotStarted() async throws {
        try await expectExpiredCallNotStarted(onTimeMilliseconds: "1000") { router, ran in
            router.call("/work") { (_: Void, _: FerryContext) async in
                await Task.yield()
                ran.append(1)
                return 1
            }
        }
    }

    @Test("calls read together arrive together: one queued behind a slow handler past its deadline gets 504 and never runs")
    func arrivalIsTheRead() async throws {
        let ran = Recorder<Int>()
        let (server, listener) = try await makeServer { router in
            // Synchronous, so it runs in place as its frame is read, holding up the next one.
            router.call("/slow") { (_: Void, _: FerryContext) in
                Thread.sleep(forTimeInterval: 0.3)
                return 1
            }
            router.call("/work") { (_: Void, _: FerryContext) in
                ran.append(1)
                return 2
            }
        }
        let raw = try await RawConnection.connect(to: listener.address)
        // Both frames in one write, so one read brings them: the second call's 100 ms run out
        // while the first handler works, although its own handling would start in time.
        let slow = FerryMessage(type: .call, seq: 1, serviceMethod: "/slow", bodyCodec: .json)
        let work = FerryMessage(type: .call, seq: 2, serviceMethod: "/work", meta: [FerryDeadline.metaKey: "100"], bodyCodec: .json)
        try await raw.send(try RawConnection.frame(slow) + RawConnection.frame(work))
        var statuses: [Int32: FerryStatus.Code] = [:]
        for _ in 0..<2 {
            let reply = try #require(try await raw.nextMessage())
            statuses[reply.seq] = reply.status.code
        }
        #expect(statuses == [1: .ok, 2: .deadlineExceeded])
        #expect(ran.count == 0)
        await raw.close()
        await server.close()
    }

    /// Registers `/work` with `register` (its handler appends to the recorder), calls it with no
    /// time left (504, not run) and then with `onTimeMilliseconds` left (answered, run once).
    private func expectExpiredCallNotStarted(
        onTimeMilliseconds: String, register: (FerryRouter, Recorder<Int>) -> Void
    ) async throws {
        let ran = Recorder<Int>()
        let pair = try await makePair { router in register(router, ran) }
        let reply = try await pair.session.callForReply("/work", (), options: FerryCallOptions(meta: [FerryDeadline.metaKey: "0"]))
        #expect(reply.status.code == .deadlineExceeded)
        #expect(ran.count == 0)
        let onTime = try await pair.session.callForReply("/work", (), options: FerryCallOptions(meta: [FerryDeadline.metaKey: onTimeMilliseconds]))
        #expect(onTime.status.code == .ok)
        #expect(ran.count == 1)
        await pair.close()
    }
}
