@testable import FerryMicro
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

    @Test("the retry budget allows the ratio of calls plus the floor, and no more")
    func retryBudget() {
        let ratioOnly = RetryBudget(ratio: 0.2, minimumPerSecond: 0, now: start)
        #expect(!ratioOnly.withdraw(at: start))
        for _ in 0..<100 { ratioOnly.recordCall() }
        var granted = 0
        while ratioOnly.withdraw(at: start + .seconds(60)) { granted += 1 }
        #expect(granted == 20)
        ratioOnly.refund()
        #expect(ratioOnly.withdraw(at: start))
        #expect(!ratioOnly.withdraw(at: start))

        let floorOnly = RetryBudget(ratio: 0, minimumPerSecond: 10, now: start)
        granted = 0
        while floorOnly.withdraw(at: start) { granted += 1 }
        #expect(granted == 10)
        granted = 0
        while floorOnly.withdraw(at: start + .milliseconds(500)) { granted += 1 }
        #expect(granted == 5)

        // Deposits are capped, so a long quiet success streak cannot bank a retry storm.
        let capped = RetryBudget(ratio: 0.2, minimumPerSecond: 0, now: start)
        for _ in 0..<10_000 { capped.recordCall() }
        granted = 0
        while capped.withdraw(at: start) { granted += 1 }
        #expect(granted == 20)
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
