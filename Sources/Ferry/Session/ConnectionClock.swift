/// The clock readings of one connection, on its event loop. The clock is read once per socket
/// read and once after each handler run in place; every message takes its times from these
/// readings instead of reading the clock again.
///
/// - ``lastRead`` is when the latest inbound bytes were read: the arrival of every message they
///   complete, from which the message's deadline is measured.
/// - ``latest`` is the most recent reading of any kind: a lower bound of the present that lags
///   by no more than the decoding done since, against which deadlines are checked. A message
///   read together with others that wait behind a slow handler sees that handler's time pass.
///
/// These readings are on the continuous clock, the clock of ``FerryDeadline`` and of a handler's
/// ``FerryContext/arrival``, which a handler compares with `ContinuousClock.now`. The
/// connection's timers (heartbeat, idle, read, age) do not use them: ``SessionTimerHandler``
/// decides on its event loop's time, the clock its timers are scheduled on.
final class ConnectionClock {
    /// When the latest inbound bytes were read.
    private(set) var lastRead: ContinuousClock.Instant
    /// The most recent reading.
    private(set) var latest: ContinuousClock.Instant

    init() {
        let now = ContinuousClock.now
        lastRead = now
        latest = now
    }

    /// Reads the clock for inbound bytes just read.
    func markRead() {
        lastRead = .now
        latest = lastRead
    }

    /// Reads the clock.
    @discardableResult
    func now() -> ContinuousClock.Instant {
        latest = .now
        return latest
    }
}
