import Synchronization

/// Reads the time as durations since a fixed origin, from any clock (tests pass a test clock).
struct PushClock: Sendable {
    let now: @Sendable () -> Duration
    let sleep: @Sendable (Duration) async throws -> Void

    init<C: Clock & Sendable>(_ clock: C) where C.Duration == Duration {
        let origin = clock.now
        now = { origin.duration(to: clock.now) }
        sleep = { try await clock.sleep(for: $0) }
    }
}

/// Wakes its one waiter. A signal sent while nobody waits is kept for the next wait, so a
/// wake-up between checking for work and waiting is not lost.
final class Signal: Sendable {
    private struct State {
        var pending = false
        var waiter: (generation: UInt64, continuation: CheckedContinuation<Void, Never>)?
        var generation: UInt64 = 0
        var cancelledThrough: UInt64 = 0
    }
    private let state = Mutex(State())

    func signal() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard let waiter = state.waiter else {
                state.pending = true
                return nil
            }
            state.waiter = nil
            return waiter.continuation
        }
        waiter?.resume()
    }

    /// Waits for a signal, at most `timeout` on `clock` (nil: without a limit), or until the
    /// task is cancelled.
    func wait(timeout: Duration?, clock: PushClock) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForSignal() }
            if let timeout {
                group.addTask { try? await clock.sleep(max(timeout, .zero)) }
            }
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForSignal() async {
        let generation = state.withLock { state in
            state.generation += 1
            return state.generation
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let now = state.withLock { state -> Bool in
                    if state.pending || state.cancelledThrough >= generation {
                        state.pending = false
                        return true
                    }
                    state.waiter = (generation, continuation)
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
                state.cancelledThrough = max(state.cancelledThrough, generation)
                guard let waiter = state.waiter, waiter.generation == generation else { return nil }
                state.waiter = nil
                return waiter.continuation
            }
            waiter?.resume()
        }
    }
}
