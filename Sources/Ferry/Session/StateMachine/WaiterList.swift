/// Continuations waiting for one condition (reconnected, writable), each with an id so a
/// timeout or a cancellation can remove just its own.
package struct WaiterList<Value> {
    private var waiters: [UInt64: CheckedContinuation<Value, any Error>] = [:]
    private var nextID: UInt64 = 0

    package init() {}

    package mutating func add(_ continuation: CheckedContinuation<Value, any Error>) -> UInt64 {
        nextID &+= 1
        waiters[nextID] = continuation
        return nextID
    }

    package mutating func remove(_ id: UInt64) -> CheckedContinuation<Value, any Error>? {
        waiters.removeValue(forKey: id)
    }

    package var count: Int { waiters.count }

    package mutating func removeAll() -> [CheckedContinuation<Value, any Error>] {
        defer { waiters = [:] }
        return Array(waiters.values)
    }
}
