import Synchronization

/// Bounds retries and backup requests so that they cannot multiply load: every original call
/// deposits `ratio` of a token, and a floor of `minimumPerSecond` tokens per second lets a
/// lightly used client retry at all. Each retry or backup request takes one token; without one,
/// the call gives up with its last outcome.
///
/// Over any stretch of time, extra attempts are therefore at most `ratio × calls` plus
/// `minimumPerSecond × seconds`, plus what the two buckets held at the start (at most
/// `max(ratio × 100, 1)` banked deposits and `minimumPerSecond` floor tokens).
///
/// The floor refills by the injected clock (`ContinuousClock` by default).
final class RetryBudget: Sendable {
    private struct State {
        var deposits: TokenBucket
        var floor: TokenBucket
    }

    let ratio: Double
    private let clock: ClockReader
    private let state: Mutex<State>
    /// Calls recorded since the last withdrawal, deposited in bulk when a token is needed so
    /// that recording a call takes no lock.
    private let undeposited = Atomic<Int>(0)

    init(ratio: Double, minimumPerSecond: Double, clock: any Clock<Duration> = ContinuousClock()) {
        self.ratio = max(ratio, 0)
        self.clock = ClockReader(clock)
        let now = self.clock.now
        let deposits = TokenBucket(capacity: max(self.ratio * 100, 1), ratePerSecond: 0, tokens: 0, now: now)
        let floor = TokenBucket(capacity: max(minimumPerSecond, 0), ratePerSecond: max(minimumPerSecond, 0), now: now)
        self.state = Mutex(State(deposits: deposits, floor: floor))
    }

    /// Records an original call.
    func recordCall() {
        guard ratio > 0 else { return }
        undeposited.wrappingAdd(1, ordering: .relaxed)
    }

    /// Takes a token for one retry or backup request; false when the budget is spent.
    func withdraw() -> Bool {
        let calls = undeposited.exchange(0, ordering: .relaxed)
        let now = clock.now
        return state.withLock { state in
            // The bucket caps its tokens, so one bulk deposit equals one deposit per call.
            if calls > 0 { state.deposits.deposit(ratio * Double(calls)) }
            return state.deposits.take(at: now) || state.floor.take(at: now)
        }
    }

    /// Gives back a token taken for an attempt that could not be sent after all.
    func refund() {
        state.withLock { $0.deposits.deposit(1) }
    }
}
