@testable import FerryMicro
import FerryTestSupport
import Testing

@Suite("Circuit breaker, retry budget and token bucket", .timeLimit(.minutes(1)))
struct ResilienceTests {
    let start = ContinuousClock.now
    let settings = FerryClient.Configuration.CircuitBreaker(failureRatio: 0.5, minimumCalls: 4, windowSize: 4, openDuration: .seconds(5))

    func run(_ breaker: inout CircuitBreaker, _ verdicts: [CircuitBreaker.Verdict], at now: ContinuousClock.Instant) {
        for verdict in verdicts {
            let permit = breaker.acquire(at: now)
            #expect(permit == .normal)
            breaker.record(verdict, permit: permit!, at: now)
        }
    }

    @Test("the breaker opens once the window holds enough calls and the failed share reaches the ratio")
    func opens() {
        var breaker = CircuitBreaker(settings: settings)
        run(&breaker, [.failure, .failure, .failure], at: start)
        #expect(breaker.state == .closed)  // below minimumCalls
        run(&breaker, [.failure], at: start)
        #expect(breaker.state == .open(until: start + .seconds(5)))
        #expect(!breaker.isAvailable(at: start + .seconds(4)))
        #expect(breaker.acquire(at: start + .seconds(4)) == nil)
    }

    @Test("the window rolls: old outcomes leave it, and cancelled calls do not count")
    func rollingWindow() {
        var breaker = CircuitBreaker(settings: settings)
        run(&breaker, [.success, .success, .success, .failure, .none, .none], at: start)
        #expect(breaker.state == .closed)  // 1 of 4 failed
        run(&breaker, [.failure], at: start)  // window: S S F F
        #expect(breaker.state == .open(until: start + .seconds(5)))
    }

    @Test("after the open period one probe goes through; its success closes the breaker")
    func probeSucceeds() {
        var breaker = CircuitBreaker(settings: settings)
        run(&breaker, Array(repeating: .failure, count: 4), at: start)
        let later = start + .seconds(5)
        #expect(breaker.isAvailable(at: later))
        let probe = breaker.acquire(at: later)
        #expect(probe == .probe)
        #expect(breaker.state == .halfOpen(probing: true))
        #expect(!breaker.isAvailable(at: later))
        #expect(breaker.acquire(at: later) == nil)  // one probe at a time
        breaker.record(.success, permit: .probe, at: later)
        #expect(breaker.state == .closed)
        // The window starts empty: three failures are not enough to open again.
        run(&breaker, [.failure, .failure, .failure], at: later)
        #expect(breaker.state == .closed)
    }

    @Test("a failed probe opens the breaker again; a cancelled one lets another call probe")
    func probeFails() {
        var breaker = CircuitBreaker(settings: settings)
        run(&breaker, Array(repeating: .failure, count: 4), at: start)
        let later = start + .seconds(5)
        _ = breaker.acquire(at: later)
        breaker.record(.none, permit: .probe, at: later)
        #expect(breaker.state == .halfOpen(probing: false))
        #expect(breaker.acquire(at: later) == .probe)
        breaker.record(.failure, permit: .probe, at: later)
        #expect(breaker.state == .open(until: later + .seconds(5)))
        // A call let through before the breaker opened does not disturb it when it ends.
        breaker.record(.success, permit: .normal, at: later)
        #expect(breaker.state == .open(until: later + .seconds(5)))
    }

    @Test("endpoint failures are connection errors, timeouts, 106 and 503, not application statuses")
    func verdicts() {
        for code: FerryStatus.Code in [.connectionClosed, .writeFailed, .dialFailed, .shuttingDown, .timedOut, .unavailable] {
            #expect(FerryClient.verdict(for: code) == .failure, "\(code)")
        }
        for code: FerryStatus.Code in [.ok, .notFound, .internalServerError, .badMessage, .rateLimited, 1234] {
            #expect(FerryClient.verdict(for: code) == .success, "\(code)")
        }
        #expect(FerryClient.verdict(for: .cancelled) == .none)
    }

    @Test("the retry budget allows the ratio of calls plus the floor, and no more, by its clock")
    func retryBudget() {
        let clock = TestClock()
        let ratioOnly = RetryBudget(ratio: 0.2, minimumPerSecond: 0, clock: clock)
        #expect(!ratioOnly.withdraw())
        for _ in 0..<100 { ratioOnly.recordCall() }
        clock.advance(by: .seconds(60))  // time alone adds nothing without a floor
        var granted = 0
        while ratioOnly.withdraw() { granted += 1 }
        #expect(granted == 20)
        ratioOnly.refund()
        #expect(ratioOnly.withdraw())
        #expect(!ratioOnly.withdraw())

        let floorOnly = RetryBudget(ratio: 0, minimumPerSecond: 10, clock: clock)
        granted = 0
        while floorOnly.withdraw() { granted += 1 }
        #expect(granted == 10)
        clock.advance(by: .milliseconds(500))
        granted = 0
        while floorOnly.withdraw() { granted += 1 }
        #expect(granted == 5)
        clock.advance(by: .seconds(60))  // the floor holds at most a second's worth
        granted = 0
        while floorOnly.withdraw() { granted += 1 }
        #expect(granted == 10)

        // Deposits are capped, so a long quiet success streak cannot bank a retry storm.
        let capped = RetryBudget(ratio: 0.2, minimumPerSecond: 0, clock: clock)
        for _ in 0..<10_000 { capped.recordCall() }
        granted = 0
        while capped.withdraw() { granted += 1 }
        #expect(granted == 20)
    }

    @Test("a clock reader follows an injected clock exactly, and reads ContinuousClock as it is")
    func clockReader() {
        let clock = TestClock()
        let reader = ClockReader(clock)
        let first = reader.now
        #expect(reader.now == first)  // the test clock stands still
        clock.advance(by: .milliseconds(1500))
        #expect(first.duration(to: reader.now) == .milliseconds(1500))

        let continuous = ClockReader(ContinuousClock())
        let before = ContinuousClock.now
        let read = continuous.now
        #expect(before <= read && read <= ContinuousClock.now)
    }

    @Test("an endpoint's breaker, on its clock: open for the open period, then one probe; failure reopens, success closes")
    func endpointBreaker() throws {
        let clock = TestClock()
        let time = ClockReader(clock)
        let peer = FerryPeer(logger: quietLogger())
        let node = FerryNode(service: "s", address: .tcp(host: "10.0.0.1", port: 1))
        let endpoint = Endpoint(node: node, dialler: NodeDialler(peer: peer), poolSize: 1, breaker: settings)
        func call(_ verdict: CircuitBreaker.Verdict) throws -> FerryClient.CircuitState? {
            let admission = try #require(endpoint.admit(at: time.now))
            return endpoint.finish(admission, verdict: verdict, latency: .milliseconds(1), at: time.now).circuitChange
        }
        // Trip it: the fourth failure fills the window and opens the breaker.
        for _ in 0..<3 { #expect(try call(.failure) == nil) }
        #expect(try call(.failure) == .open)
        #expect(endpoint.status.circuit == .open)
        clock.advance(by: .milliseconds(4999))
        #expect(endpoint.admit(at: time.now) == nil)

        // The open period is over: one probe, and no second call while it runs.
        clock.advance(by: .milliseconds(1))
        let probe = try #require(endpoint.admit(at: time.now))
        #expect(endpoint.status.circuit == .halfOpen)
        #expect(endpoint.admit(at: time.now) == nil)
        #expect(endpoint.finish(probe, verdict: .failure, latency: nil, at: time.now).circuitChange == .open)
        clock.advance(by: .seconds(4))
        #expect(endpoint.admit(at: time.now) == nil)

        // Five seconds after the failed probe, the next probe succeeds and closes the breaker.
        clock.advance(by: .seconds(1))
        #expect(try call(.success) == .closed)
        for _ in 0..<10 { #expect(try call(.success) == nil) }
        #expect(endpoint.status.circuit == .closed)
        #expect(endpoint.status.failures == 5 && endpoint.status.calls == 16)
    }

    @Test("a token bucket holds its capacity and refills at its rate")
    func tokenBucket() {
        var bucket = TokenBucket(capacity: 3, ratePerSecond: 2, now: start)
        var outcomes: [Bool] = []
        for _ in 0..<4 { outcomes.append(bucket.take(at: start)) }
        #expect(outcomes == [true, true, true, false])
        let fullAtStart = bucket.isFull(at: start)
        #expect(!fullAtStart)
        let half = start + .milliseconds(500)
        outcomes = [bucket.take(at: half), bucket.take(at: half)]
        #expect(outcomes == [true, false])
        let fullLater = bucket.isFull(at: start + .seconds(10))
        #expect(fullLater)
        #expect(bucket.tokens == 3)
    }
}
