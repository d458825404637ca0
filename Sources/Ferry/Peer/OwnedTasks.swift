import Synchronization

/// The background work of a peer (accept hooks, auth checks, heartbeats, redials): every task
/// is tracked from its start to its end, and ``cancelAllAndWait()`` (run by the peer's shutdown)
/// cancels and awaits whatever is still running. Once that has run, nothing new starts.
final class OwnedTasks: Sendable {
    private struct State {
        var running: [UInt64: Task<Void, Never>] = [:]
        var nextID: UInt64 = 0
        var closed = false
    }
    private let state = Mutex(State())

    init() {}

    /// Starts `body` as a tracked task; false (and nothing runs) once the owner has stopped.
    @discardableResult
    func start(_ body: @escaping @Sendable () async -> Void) -> Bool {
        state.withLock { state in
            guard !state.closed else { return false }
            state.nextID &+= 1
            let id = state.nextID
            // Made under the lock: a task that ends at once waits for its entry to exist
            // before it removes it.
            state.running[id] = Task { [self] in
                await body()
                finished(id)
            }
            return true
        }
    }

    private func finished(_ id: UInt64) {
        _ = state.withLock { $0.running.removeValue(forKey: id) }
    }

    /// Stops new tasks, cancels the running ones and waits for them to end.
    func cancelAllAndWait() async {
        let running = state.withLock { state in
            state.closed = true
            return Array(state.running.values)
        }
        for task in running { task.cancel() }
        for task in running { await task.value }
    }
}
