/// The deadline of the work the current task does for an inbound call.
///
/// A caller's remaining time travels in the meta key ``metaKey`` (milliseconds, relative, so
/// clocks need not agree). While a handler runs, ``current`` holds its deadline, and every call
/// it makes, on any session, gets no more time than what is left. A call that arrives with no
/// time left is answered 504 without running its handler.
public enum FerryDeadline {
    /// The deadline inherited by outgoing calls made from the current task; nil outside handlers.
    @TaskLocal public static var current: ContinuousClock.Instant?

    /// The meta key carrying the caller's remaining time in whole milliseconds.
    public static let metaKey = "X-Ferry-Timeout"

    /// The time left until ``current``, if there is a current deadline.
    public static var remaining: Duration? {
        current.map { ContinuousClock.now.duration(to: $0) }
    }

    /// The deadline `meta` announces, measured from `arrival` (when the message was read);
    /// nil when it carries none.
    static func deadline(from meta: FerryMeta, arrival: ContinuousClock.Instant) -> ContinuousClock.Instant? {
        guard let text = meta[metaKey], let milliseconds = Int64(text) else { return nil }
        return arrival + .milliseconds(milliseconds)
    }

    /// Whole milliseconds of `duration`, rounded down, never negative.
    package static func milliseconds(_ duration: Duration) -> Int64 {
        max(0, duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000)
    }
}
