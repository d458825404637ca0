import Synchronization

/// Whether the mailbox takes calls, and how many are in progress: a value kept under a lock.
///
/// `idle` (before `run()`) → `running` → `closing` (no new calls; waits for those in
/// progress) → `closed`. Calls are taken while idle too: they wait for a connection until
/// `run()` starts the pool, or until their timeout.
struct Lifecycle {
    enum Phase {
        case idle
        case running
        case closing
        case closed
    }

    private(set) var phase = Phase.idle
    private var calls = 0
    private var drained: CheckedContinuation<Void, Never>?

    /// `run()` starts; false if it ran before or the mailbox is closed.
    mutating func beginRun() -> Bool {
        guard case .idle = phase else { return false }
        phase = .running
        return true
    }

    /// A call starts; false once the mailbox is closing.
    mutating func beginCall() -> Bool {
        switch phase {
        case .idle, .running:
            calls += 1
            return true
        case .closing, .closed:
            return false
        }
    }

    /// A call ended; the caller resumes what is returned (the closer waiting for the last call).
    mutating func endCall() -> CheckedContinuation<Void, Never>? {
        calls -= 1
        guard calls == 0, let drained else { return nil }
        self.drained = nil
        return drained
    }

    /// Stops taking calls. Returns true if calls are in progress: then `waitForCalls` takes the
    /// continuation resumed by the last one.
    mutating func beginClosing() -> Bool {
        if case .running = phase { phase = .closing }
        return calls > 0
    }

    /// Keeps `continuation` for the last call in progress; returns it to resume at once if none is.
    mutating func waitForCalls(_ continuation: CheckedContinuation<Void, Never>) -> CheckedContinuation<Void, Never>? {
        guard calls > 0 else { return continuation }
        drained = continuation
        return nil
    }

    /// Closes a mailbox whose `run()` never started; false if it is running.
    mutating func closeIdle() -> Bool {
        guard case .idle = phase else { return false }
        phase = .closed
        return true
    }

    mutating func finishClose() {
        phase = .closed
    }
}

/// A one-way switch that tasks wait on: once opened, every waiter (and every later one) goes on.
final class Latch: Sendable {
    private struct State {
        var isOpen = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    var isOpen: Bool { state.withLock { $0.isOpen } }

    func open() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.isOpen else { return [] }
            state.isOpen = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once the latch is open (not when the task is cancelled: whoever cancels opens it).
    func wait() async {
        await withCheckedContinuation { continuation in
            let isOpen = state.withLock { state in
                if !state.isOpen { state.waiters.append(continuation) }
                return state.isOpen
            }
            if isOpen { continuation.resume() }
        }
    }
}
