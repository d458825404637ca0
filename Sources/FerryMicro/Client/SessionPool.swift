import Synchronization

/// Up to `size` sessions to one endpoint, dialled lazily: each call takes the next slot in turn,
/// and an empty slot is dialled by the first call that reaches it (later callers share that
/// dial). A session that lost its connection is evicted and its slot dialled again on demand.
final class SessionPool: Sendable {
    private enum Slot {
        case empty
        case dialling(id: UInt64, task: Task<FerrySession, any Error>)
        case ready(FerrySession)
    }

    private struct State {
        var slots: [Slot]
        var next = 0
        var nextDialID: UInt64 = 0
        var closed = false
    }

    let address: FerryAddress
    private let peer: FerryPeer
    private let state: Mutex<State>

    init(address: FerryAddress, peer: FerryPeer, size: Int) {
        self.address = address
        self.peer = peer
        self.state = Mutex(State(slots: Array(repeating: .empty, count: max(size, 1))))
    }

    /// A session from the next slot, dialling it if needed. Throws 105 when the dial fails and
    /// 102 once the pool is closed.
    func session() async throws -> FerrySession {
        enum Step {
            case use(FerrySession)
            case await(UInt64, Int, Task<FerrySession, any Error>, replacing: FerrySession?)
        }
        let step: Step = try state.withLock { state in
            guard !state.closed else { throw Self.closedStatus }
            let index = state.next % state.slots.count
            state.next &+= 1
            var replaced: FerrySession?
            switch state.slots[index] {
            case .ready(let session):
                // A session whose connection is gone (closed, or redialling) is replaced now
                // rather than failing this call.
                if session.isActive { return .use(session) }
                replaced = session
            case .dialling(let id, let task):
                return .await(id, index, task, replacing: nil)
            case .empty:
                break
            }
            state.nextDialID &+= 1
            let id = state.nextDialID
            let peer = self.peer
            let address = self.address
            let task = Task { try await peer.dial(address) }
            state.slots[index] = .dialling(id: id, task: task)
            return .await(id, index, task, replacing: replaced)
        }
        switch step {
        case .use(let session):
            return session
        case .await(let id, let index, let task, let replaced):
            if let replaced { await replaced.close() }
            let result = await task.result
            let (session, closeIt): (FerrySession?, Bool) = state.withLock { state in
                let session = try? result.get()
                guard case .dialling(let current, _) = state.slots[index], current == id else {
                    // Another waiter already settled the slot, or the pool closed meanwhile.
                    return (session, state.closed)
                }
                if state.closed {
                    state.slots[index] = .empty
                    return (session, true)
                }
                state.slots[index] = session.map(Slot.ready) ?? .empty
                return (session, false)
            }
            if closeIt {
                if let session { await session.close() }
                throw Self.closedStatus
            }
            if let session { return session }
            if case .failure(let error) = result {
                throw (error as? FerryStatus) ?? FerryStatus(.dialFailed, "Dial Failed", cause: "\(address): \(error)")
            }
            throw FerryStatus(.dialFailed, "Dial Failed", cause: "\(address)")
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
}
