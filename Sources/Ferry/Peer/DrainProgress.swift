import Synchronization

/// Wakes a draining shutdown when something it waits for may have happened (a handler ended,
/// a reply was written, a session closed), instead of having it poll.
final class DrainProgress: Sendable {
    private struct State {
        var waiter: CheckedContinuation<Void, Never>?
        /// A signal that came while nobody waited: the next wait returns at once.
        var signalled = false
    }
    private let state = Mutex(State())

    init() {}

    /// Wakes the waiter, or the next one.
    func signal() {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { state in
            guard let waiter = state.waiter else {
                state.signalled = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// Returns at the next signal (or at once if one came since the last wait), at `deadline`,
    /// or when the task is cancelled, whichever is first. One waiter at a time.
    func wait(until deadline: ContinuousClock.Instant) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await Task.sleep(until: deadline) }
            group.addTask { await self.nextSignal() }
            await group.next()
            group.cancelAll()
            // The sleep ends when cancelled; the signal wait when signalled, below.
            self.signal()
        }
        state.withLock { $0.signalled = false }
    }

    private func nextSignal() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now: Bool = state.withLock { state in
                if state.signalled {
                    state.signalled = false
                    return true
                }
                state.waiter = continuation
                return false
            }
            if now { continuation.resume() }
        }
    }
}
