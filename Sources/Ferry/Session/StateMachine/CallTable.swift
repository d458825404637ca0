import HeapModule
import NIOCore

/// The calls of a session that await their replies, by seq, with their deadlines in a heap.
///
/// One timer serves every deadline: the table says when it must fire (``armedDeadline``) and
/// which calls have expired when it does. A reply removes its call from the table but not from
/// the heap; stale heap entries are skipped when they surface and the heap is rebuilt when they
/// outnumber the live calls, so neither a reply nor an expiry scans the table.
///
/// `Waiter` is what resumes the caller (a continuation in a session; anything in a test).
package struct CallTable<Waiter> {
    /// A call awaiting its reply.
    package struct Call {
        /// Resumed exactly once, by whoever removes the call from the table.
        package var waiter: Waiter
        /// When the call fails with 408.
        package var deadline: NIODeadline
        /// The call's timeout, for the 408's cause.
        package var timeout: Duration
        /// The connection the call was written on.
        package var connection: ObjectIdentifier

        package init(waiter: Waiter, deadline: NIODeadline, timeout: Duration, connection: ObjectIdentifier) {
            self.waiter = waiter
            self.deadline = deadline
            self.timeout = timeout
            self.connection = connection
        }
    }

    private struct Entry: Comparable {
        var deadline: NIODeadline
        var seq: Int32

        static func < (lhs: Entry, rhs: Entry) -> Bool {
            lhs.deadline < rhs.deadline || (lhs.deadline == rhs.deadline && lhs.seq < rhs.seq)
        }
    }

    private var calls: [Int32: Call] = [:]
    private var deadlines = Heap<Entry>()
    /// The deadline the timer is armed for, if it is armed.
    package private(set) var armedDeadline: NIODeadline?

    package init() {}

    /// The number of calls awaiting replies.
    package var count: Int { calls.count }

    /// Whether no call awaits a reply.
    package var isEmpty: Bool { calls.isEmpty }

    /// The entries in the deadline heap, stale ones included: never far above ``count``.
    package var heapCount: Int { deadlines.count }

    /// Whether `seq` awaits its reply.
    package func contains(_ seq: Int32) -> Bool { calls[seq] != nil }

    /// Whether a call written on `connection` awaits its reply.
    package func hasCalls(on connection: ObjectIdentifier) -> Bool {
        calls.values.contains { $0.connection == connection }
    }

    /// Adds a call; returns the deadline to arm the timer for when no armed timer fires by the
    /// call's deadline (nil: the armed one covers it).
    package mutating func add(_ seq: Int32, _ call: Call) -> NIODeadline? {
        calls[seq] = call
        deadlines.insert(Entry(deadline: call.deadline, seq: seq))
        if deadlines.count > 2 * calls.count + 64 { compact() }
        if let armed = armedDeadline, armed <= call.deadline { return nil }
        armedDeadline = call.deadline
        return call.deadline
    }

    /// Removes and returns the call with `seq`, if it is waiting.
    package mutating func remove(_ seq: Int32) -> Call? {
        calls.removeValue(forKey: seq)
    }

    /// Removes and returns every call written on `connection`.
    package mutating func removeAll(on connection: ObjectIdentifier) -> [Call] {
        var removed: [Call] = []
        for (seq, call) in calls where call.connection == connection {
            calls[seq] = nil
            removed.append(call)
        }
        return removed
    }

    /// Removes and returns every call.
    package mutating func removeAll() -> [Call] {
        defer {
            calls = [:]
            deadlines = Heap()
        }
        return Array(calls.values)
    }

    /// The timer fired at `now`: removes the calls whose deadline has passed, in deadline
    /// order, and says when the timer must fire next (nil: no call left, or the armed timer
    /// still covers the earliest).
    package mutating func expire(now: NIODeadline) -> (expired: [Call], rearm: NIODeadline?) {
        if let armed = armedDeadline, armed <= now { armedDeadline = nil }
        var expired: [Call] = []
        while let first = deadlines.min, first.deadline <= now {
            deadlines.removeMin()
            if let call = calls[first.seq], call.deadline == first.deadline {
                calls[first.seq] = nil
                expired.append(call)
            }
        }
        while let first = deadlines.min, calls[first.seq]?.deadline != first.deadline {
            deadlines.removeMin()
        }
        guard let next = deadlines.min?.deadline, armedDeadline.map({ next < $0 }) ?? true else {
            return (expired, nil)
        }
        armedDeadline = next
        return (expired, next)
    }

    /// Drops the heap entries of calls that have left the table.
    private mutating func compact() {
        deadlines = Heap(calls.map { Entry(deadline: $0.value.deadline, seq: $0.key) })
    }
}

extension CallTable.Call: Sendable where Waiter: Sendable {}
