import Synchronization

/// The accepted connections a peer holds, against its optional limit. A connection is counted
/// and checked in one atomic step, so accepts on several event loops cannot pass the limit
/// together.
final class ConnectionCount: Sendable {
    private let count = Atomic<Int>(0)
    /// The most connections held at once; nil for no limit.
    let limit: Int?

    init(limit: Int?) {
        self.limit = limit
    }

    /// Counts a new connection; false (and not counted) when it would pass the limit.
    func admit() -> Bool {
        let held = count.wrappingAdd(1, ordering: .relaxed).newValue
        guard let limit, held > limit else { return true }
        count.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    /// Counts a connection that is not checked against the limit (one served from elsewhere).
    func add() {
        count.wrappingAdd(1, ordering: .relaxed)
    }

    /// A counted connection has gone.
    func release() {
        count.wrappingSubtract(1, ordering: .relaxed)
    }

    /// The connections counted now.
    var current: Int { count.load(ordering: .relaxed) }
}

/// An accepted connection's place among those that have not authenticated yet
/// (``FerryPeer/Limits/maximumUnauthenticatedConnections``). It is given back once: when the
/// session authenticates or when the connection closes, whichever comes first.
final class UnauthenticatedSlot: Sendable {
    private let held = Atomic<Bool>(true)
    private let count: ConnectionCount

    /// Takes a place in `count`; nil when it is full.
    init?(in count: ConnectionCount) {
        guard count.admit() else { return nil }
        self.count = count
    }

    /// Gives the place back; later calls do nothing.
    func release() {
        if held.exchange(false, ordering: .relaxed) { count.release() }
    }
}
