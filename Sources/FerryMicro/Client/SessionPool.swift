import Synchronization

/// Up to `size` sessions to one endpoint, dialled lazily. Each calling task keeps to one slot,
/// chosen from the task's identity: its calls and pushes stay in order on one connection, the
/// calls of the tasks that share a connection leave in one write, and tasks spread over the
/// slots. An empty slot is dialled by the first call that reaches it while later callers wait for
/// the same dial. A caller stops waiting at its deadline or when it is cancelled; the dial goes
/// on and fills the slot for the next call. A session that lost its connection is closed and
/// its slot dialled again on demand.
final class SessionPool: Sendable {
    private enum Slot {
        case empty
        case dialling(UInt64)
        case ready(FerrySession)
    }

    private struct State {
        var slots: [Slot]
        var nextID: UInt64 = 0
        /// Callers waiting for each running dial, by dial ID and then waiter ID.
        var waiters: [UInt64: [UInt64: CheckedContinuation<FerrySession, any Error>]] = [:]
        var closed = false
    }

    let address: FerryAddress
    private let dialler: NodeDialler
    private let state: Mutex<State>

    init(address: FerryAddress, dialler: NodeDialler, size: Int) {
        self.address = address
        self.dialler = dialler
        self.slotCount = max(size, 1)
        self.state = Mutex(State(slots: Array(repeating: .empty, count: max(size, 1))))
    }

    /// The calling task's slot.
    private var callerSlot: Int {
        let count = slotCount
        guard count > 1 else { return 0 }
        let hash = withUnsafeCurrentTask { $0?.hashValue } ?? Int.random(in: 0...Int.max)
        return Int(UInt(bitPattern: hash) % UInt(count))
    }

    private let slotCount: Int

    /// A session from the calling task's slot, dialling it if needed. Throws 105 when the dial fails, 408
    /// when it takes longer than `timeout`, 499 when the task is cancelled, and 102 once the
    /// pool is closed.
    /// The calling task's session when it is connected, without waiting; nil when its slot
    /// must be dialled (use ``session(timeout:)``).
    func readySession() throws -> FerrySession? {
        let index = callerSlot
        return try state.withLock { state in
            guard !state.closed else { throw Self.closedStatus }
            guard case .ready(let session) = state.slots[index], session.isActive else { return nil }
            return session
        }
    }

    func session(timeout: Duration) async throws -> FerrySession {
        let index = callerSlot
        let slot: Slot = try state.withLock { state in
            guard !state.closed else { throw Self.closedStatus }
            return state.slots[index]
        }
        // Fast path: the slot holds a connected session.
        if case .ready(let session) = slot, session.isActive {
            return session
        }
        let waiterID = state.withLock { state in
            state.nextID &+= 1
            return state.nextID
        }
        let (session, replaced): (FerrySession, FerrySession?) = try await withThrowingTaskGroup(of: (FerrySession, FerrySession?)?.self) { group in
            group.addTask {
                try await self.waitForSlot(index, waiterID: waiterID)
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let outcome = first else {
                if Task.isCancelled { throw Self.cancelledStatus }
                throw FerryStatus(.timedOut, "Timeout", cause: "dialling \(address) took longer than \(timeout)")
            }
            return outcome
        }
        if let replaced { await replaced.close() }
        return session
    }

    /// The session in slot `index`, dialling it (or joining its dial) when it has none. Also
    /// returns a disconnected session the slot held, for the caller to close.
    private func waitForSlot(_ index: Int, waiterID: UInt64) async throws -> (FerrySession, FerrySession?) {
        let replaced = Mutex<FerrySession?>(nil)
        let session: FerrySession = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<FerrySession, any Error>) in
                enum Step {
                    case resume(Result<FerrySession, FerryStatus>)
                    case dial(UInt64)
                    case wait
                }
                let step: Step = state.withLock { state in
                    if state.closed { return .resume(.failure(Self.closedStatus)) }
                    if Task.isCancelled { return .resume(.failure(Self.cancelledStatus)) }
                    switch state.slots[index] {
                    case .ready(let session) where session.isActive:
                        return .resume(.success(session))
                    case .dialling(let dialID):
                        state.waiters[dialID, default: [:]][waiterID] = continuation
                        return .wait
                    case .ready(let session):
                        // Its connection is gone (closed, or redialling): replace it now rather
                        // than fail this call.
                        replaced.withLock { $0 = session }
                    case .empty:
                        break
                    }
                    state.nextID &+= 1
                    let dialID = state.nextID
                    state.slots[index] = .dialling(dialID)
                    state.waiters[dialID] = [waiterID: continuation]
                    return .dial(dialID)
                }
                switch step {
                case .resume(let result):
                    continuation.resume(with: result)
                case .wait:
                    break
                case .dial(let dialID):
                    // The dial is a child task of the client's run(): it goes on when this
                    // caller stops waiting, and fills the slot for the next call.
                    let started = dialler.startDial(address) { result in
                        await self.dialFinished(slot: index, dialID: dialID, result: result)
                    }
                    if !started {
                        for waiter in settle(slot: index, dialID: dialID, result: .failure(Self.stoppedStatus)).waiters {
                            waiter.resume(throwing: Self.stoppedStatus)
                        }
                    }
                }
            }
        } onCancel: {
            state.withLock { state -> CheckedContinuation<FerrySession, any Error>? in
                for dialID in Array(state.waiters.keys) {
                    if let waiter = state.waiters[dialID]?.removeValue(forKey: waiterID) { return waiter }
                }
                return nil
            }?.resume(throwing: Self.cancelledStatus)
        }
        return (session, replaced.withLock { $0 })
    }

    /// Settles a slot with the outcome of its dial and wakes the callers waiting for it.
    private func dialFinished(slot index: Int, dialID: UInt64, result: Result<FerrySession, FerryStatus>) async {
        let (waiters, closeIt) = settle(slot: index, dialID: dialID, result: result)
        if closeIt {
            for waiter in waiters { waiter.resume(throwing: Self.closedStatus) }
            if case .success(let session) = result { await session.close() }
            return
        }
        for waiter in waiters { waiter.resume(with: result) }
    }

    /// Puts the outcome of dial `dialID` in slot `index`, and returns the callers that waited
    /// for it; `closeIt` when the pool closed meanwhile (the session, if any, must be closed).
    private func settle(
        slot index: Int, dialID: UInt64, result: Result<FerrySession, FerryStatus>
    ) -> (waiters: [CheckedContinuation<FerrySession, any Error>], closeIt: Bool) {
        state.withLock { state in
            let waiters = Array((state.waiters.removeValue(forKey: dialID) ?? [:]).values)
            if state.closed {
                state.slots[index] = .empty
                return (waiters, true)
            }
            if case .dialling(let current) = state.slots[index], current == dialID {
                if case .success(let session) = result {
                    state.slots[index] = .ready(session)
                } else {
                    state.slots[index] = .empty
                }
            }
            return (waiters, false)
        }
    }

    /// Drops `session` from its slot and closes it, if it no longer has a connection (the call
    /// on it failed with a connection error). A session that is still connected stays.
    func evictIfDisconnected(_ session: FerrySession) async {
        guard !session.isActive else { return }
        let removed: Bool = state.withLock { state in
            guard let index = state.slots.firstIndex(where: {
                if case .ready(let held) = $0 { return held === session }
                return false
            }) else { return false }
            state.slots[index] = .empty
            return true
        }
        if removed { await session.close() }
    }

    /// The number of connected or connecting sessions.
    var sessionCount: Int {
        state.withLock { state in
            state.slots.reduce(0) { count, slot in
                if case .empty = slot { return count }
                return count + 1
            }
        }
    }

    /// Closes every session; dials still running close their session when they finish. Later
    /// calls fail with 102.
    func close() async {
        let sessions: [FerrySession] = state.withLock { state in
            state.closed = true
            var sessions: [FerrySession] = []
            for (index, slot) in state.slots.enumerated() {
                if case .ready(let session) = slot {
                    sessions.append(session)
                    state.slots[index] = .empty
                }
            }
            return sessions
        }
        for session in sessions { await session.close() }
    }

    private static var closedStatus: FerryStatus {
        FerryStatus(.connectionClosed, "Connection Closed", cause: "the endpoint left the client")
    }

    private static var stoppedStatus: FerryStatus {
        FerryStatus(.connectionClosed, "Connection Closed", cause: "the client stopped: no new dials")
    }

    private static var cancelledStatus: FerryStatus {
        FerryStatus(.cancelled, "Cancelled", cause: "the calling task was cancelled")
    }
}
