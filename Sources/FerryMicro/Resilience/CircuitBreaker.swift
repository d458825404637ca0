/// The circuit breaker of one endpoint, as a value-type state machine fed with instants (read by
/// its owner from a clock, ``ClockReader``) so that it can be tested without clocks.
///
/// Closed: calls flow and their outcomes fill a window of the last `windowSize` calls. Once the
/// window holds at least `minimumCalls` outcomes and the failed share reaches `failureRatio`,
/// the breaker opens. Open: no calls until `openDuration` has passed. Then the next call is the
/// single probe (half-open): its success closes the breaker with an empty window, its failure
/// opens it again. A probe that ends without a verdict (cancelled) lets another call probe.
struct CircuitBreaker: Sendable {
    /// The thresholds; see ``FerryClient/Configuration/CircuitBreaker``.
    typealias Settings = FerryClient.Configuration.CircuitBreaker

    enum State: Equatable {
        case closed
        case open(until: ContinuousClock.Instant)
        case halfOpen(probing: Bool)
    }

    /// What a call was allowed as.
    enum Permit: Equatable {
        /// An ordinary call while closed.
        case normal
        /// The one call that tests a half-open endpoint.
        case probe
    }

    /// How a call went, for the breaker.
    enum Verdict: Equatable {
        /// The endpoint answered (whatever the application status).
        case success
        /// The endpoint failed: connection lost, dial failed, timed out, overloaded, shutting down.
        case failure
        /// No verdict: the call was cancelled by its caller.
        case none
    }

    let settings: Settings
    private(set) var state = State.closed
    /// The last outcomes while closed, true for failures, as a ring.
    private var window: [Bool] = []
    private var next = 0
    private var failures = 0

    init(settings: Settings) {
        self.settings = settings
        window.reserveCapacity(max(settings.windowSize, 1))
    }

    /// Whether a call could be let through now, without taking the probe.
    func isAvailable(at now: ContinuousClock.Instant) -> Bool {
        switch state {
        case .closed: true
        case .open(let until): now >= until
        case .halfOpen(let probing): !probing
        }
    }

    /// Lets a call through, if the state allows; the first call after the open period becomes
    /// the probe.
    mutating func acquire(at now: ContinuousClock.Instant) -> Permit? {
        switch state {
        case .closed:
            return .normal
        case .open(let until):
            guard now >= until else { return nil }
            state = .halfOpen(probing: true)
            return .probe
        case .halfOpen(let probing):
            guard !probing else { return nil }
            state = .halfOpen(probing: true)
            return .probe
        }
    }

    /// Records the outcome of a call let through as `permit`.
    mutating func record(_ verdict: Verdict, permit: Permit, at now: ContinuousClock.Instant) {
        switch permit {
        case .probe:
            guard case .halfOpen = state else { return }
            switch verdict {
            case .success:
                state = .closed
                resetWindow()
            case .failure:
                state = .open(until: now + settings.openDuration)
            case .none:
                state = .halfOpen(probing: false)
            }
        case .normal:
            // Calls let through before the breaker opened may finish after it did: ignore them.
            guard state == .closed, verdict != .none else { return }
            append(failed: verdict == .failure)
            let size = window.count
            if size >= max(settings.minimumCalls, 1), Double(failures) >= settings.failureRatio * Double(size) {
                state = .open(until: now + settings.openDuration)
                resetWindow()
            }
        }
    }

    private mutating func append(failed: Bool) {
        let capacity = max(settings.windowSize, 1)
        if window.count < capacity {
            window.append(failed)
        } else {
            if window[next] { failures -= 1 }
            window[next] = failed
        }
        if failed { failures += 1 }
        next = (next + 1) % capacity
    }

    private mutating func resetWindow() {
        window.removeAll(keepingCapacity: true)
        next = 0
        failures = 0
    }
}
