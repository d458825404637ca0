/// A token bucket: holds at most `capacity` tokens, gains `ratePerSecond` tokens per second, and
/// lets an action through when it can take one token. Instants are passed in, read by the owner
/// from its injected clock (``ClockReader``), so that it can be tested without clocks.
package struct TokenBucket: Sendable {
    package let capacity: Double
    package let ratePerSecond: Double
    package private(set) var tokens: Double
    private var updated: ContinuousClock.Instant

    /// A bucket holding `tokens` (nil: full).
    package init(capacity: Double, ratePerSecond: Double, tokens: Double? = nil, now: ContinuousClock.Instant) {
        self.capacity = max(capacity, 0)
        self.ratePerSecond = max(ratePerSecond, 0)
        self.tokens = min(max(tokens ?? self.capacity, 0), self.capacity)
        self.updated = now
    }

    /// Adds what accrued since the last update.
    package mutating func refill(at now: ContinuousClock.Instant) {
        guard now > updated else { return }
        let elapsed = updated.duration(to: now)
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        tokens = min(capacity, tokens + seconds * ratePerSecond)
        updated = now
    }

    /// Whether a token is there now (after refilling).
    package mutating func hasToken(at now: ContinuousClock.Instant) -> Bool {
        refill(at: now)
        // Fractional deposits (0.2 per call) add up with rounding errors; forgive them.
        return tokens >= 1 - Self.tolerance
    }

    /// Takes one token if there is one.
    package mutating func take(at now: ContinuousClock.Instant) -> Bool {
        guard hasToken(at: now) else { return false }
        tokens = max(tokens - 1, 0)
        return true
    }

    /// Adds `amount` tokens at once, up to the capacity.
    mutating func deposit(_ amount: Double) {
        tokens = min(capacity, tokens + amount)
    }

    /// Whether the bucket is full at `now`: it then behaves exactly like a new one and can be
    /// forgotten.
    mutating func isFull(at now: ContinuousClock.Instant) -> Bool {
        refill(at: now)
        return tokens >= capacity - Self.tolerance
    }

    private static let tolerance = 1e-9
}
