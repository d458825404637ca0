/// The lifecycle of a type whose `run()` owns its background work, as a value kept under that
/// type's own lock (so a call can check it with the rest of the type's state in one lock).
///
/// ```
/// notStarted ──run()──▶ running ──stop asked──▶ stopping ──run() returns──▶ stopped
///      └──────────────────────── closed before it ran ──────────────────────▶ ┘
/// ```
///
/// `run()` waits for a stop to be asked for (a graceful shutdown, a cancellation, a `close()`)
/// with a continuation kept in ``running(stopWaiter:)``: nothing polls.
package enum RunState: Sendable {
    /// `run()` has not been called.
    case notStarted
    /// `run()` is running; `stopWaiter` is its wait for a stop request, once it waits.
    case running(stopWaiter: CheckedContinuation<Void, Never>?)
    /// A stop was asked for; `run()` is winding down its work.
    case stopping
    /// `run()` returned, or the value was closed before it ran. Terminal.
    case stopped

    /// Whether calls and registrations are taken: before `run()` (they wait for it) and while it
    /// runs, not once a stop was asked for.
    package var isAccepting: Bool {
        switch self {
        case .notStarted, .running: true
        case .stopping, .stopped: false
        }
    }

    /// Whether `run()` has not been called yet.
    package var isNotStarted: Bool {
        if case .notStarted = self { return true }
        return false
    }

    /// Enters ``running(stopWaiter:)``; throws when `run()` runs already or the value stopped.
    package mutating func start(_ what: String) throws(FerryRunError) {
        switch self {
        case .notStarted:
            self = .running(stopWaiter: nil)
        case .running:
            throw FerryRunError(.alreadyRunning, "\(what) is already running; run() can be called once")
        case .stopping, .stopped:
            throw FerryRunError(.stopped, "\(what) has stopped (its run() returned, or it was closed before it ran); make a new one")
        }
    }

    /// Asks `run()` to stop. Returns the wait to resume, if `run()` is waiting already; a value
    /// that never ran goes straight to ``stopped``.
    package mutating func requestStop() -> CheckedContinuation<Void, Never>? {
        switch self {
        case .notStarted:
            self = .stopped
            return nil
        case .running(let waiter):
            self = .stopping
            return waiter
        case .stopping, .stopped:
            return nil
        }
    }

    /// Keeps `continuation` as `run()`'s wait for a stop request; false when a stop was asked
    /// for already, and the caller resumes it at once.
    package mutating func waitForStop(_ continuation: CheckedContinuation<Void, Never>) -> Bool {
        guard case .running(stopWaiter: .none) = self else { return false }
        self = .running(stopWaiter: continuation)
        return true
    }

    /// `run()` returned.
    package mutating func finish() {
        self = .stopped
    }
}
