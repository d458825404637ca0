/// Reads an injected clock as instants of `ContinuousClock`, the instant type that the
/// time-based state machines (``CircuitBreaker``, ``TokenBucket``) keep, so that the types
/// owning them need not be generic over their clock.
///
/// A `ContinuousClock` is read as it is. Any other clock (a test's manual clock) is read as a
/// fixed `ContinuousClock` instant plus the time that clock has advanced since the reader was
/// made: the state machines only ever use the differences between readings.
struct ClockReader: Sendable {
    private let read: @Sendable () -> ContinuousClock.Instant

    /// A reader of `clock`.
    init(_ clock: any Clock<Duration>) {
        if let continuous = clock as? ContinuousClock {
            read = { continuous.now }
        } else {
            read = Self.offsetReader(clock)
        }
    }

    /// The clock's time now.
    var now: ContinuousClock.Instant { read() }

    private static func offsetReader<C: Clock<Duration>>(_ clock: C) -> @Sendable () -> ContinuousClock.Instant {
        let origin = clock.now
        let base = ContinuousClock.now
        return { base + origin.duration(to: clock.now) }
    }
}
