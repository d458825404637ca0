@testable import Ferry
import FerryCore
import NIOCore
import Testing

@Suite("Call table")
struct CallTableTests {
    typealias Table = CallTable<Int>

    /// The connections stay alive for the whole run: a freed object's address, and so its
    /// identifier, can be handed to the next object allocated.
    static let connections = (Connection(), Connection())
    static let connection = ObjectIdentifier(connections.0)
    static let other = ObjectIdentifier(connections.1)
    static let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    static func call(_ waiter: Int, at milliseconds: Int64, on connection: ObjectIdentifier = connection) -> Table.Call {
        Table.Call(waiter: waiter, deadline: start + .milliseconds(milliseconds), timeout: .milliseconds(milliseconds), connection: connection)
    }

    @Test("the timer is armed for a call's deadline only when no armed timer fires by then")
    func armsOnlyForEarlierDeadlines() {
        var table = Table()
        #expect(table.add(1, Self.call(1, at: 100)) == Self.start + .milliseconds(100))
        #expect(table.add(2, Self.call(2, at: 200)) == nil)
        #expect(table.add(3, Self.call(3, at: 100)) == nil)
        #expect(table.add(4, Self.call(4, at: 50)) == Self.start + .milliseconds(50))
        #expect(table.armedDeadline == Self.start + .milliseconds(50))
    }

    @Test("expiry takes the calls past their deadline, in deadline order, and re-arms for the earliest left")
    func expiresInOrderAndRearms() {
        var table = Table()
        _ = table.add(1, Self.call(1, at: 300))
        _ = table.add(2, Self.call(2, at: 100))
        _ = table.add(3, Self.call(3, at: 200))
        _ = table.add(4, Self.call(4, at: 400))
        let (expired, rearm) = table.expire(now: Self.start + .milliseconds(250))
        #expect(expired.map(\.waiter) == [2, 3])
        #expect(rearm == Self.start + .milliseconds(300))
        #expect(table.count == 2)
        #expect(table.contains(1) && table.contains(4))
    }

    @Test("a call answered before its deadline does not expire, and a stale entry does not arm the timer")
    func answeredCallsDoNotExpire() {
        var table = Table()
        _ = table.add(1, Self.call(1, at: 100))
        _ = table.add(2, Self.call(2, at: 200))
        #expect(table.remove(1)?.waiter == 1)
        let first = table.expire(now: Self.start + .milliseconds(100))
        #expect(first.expired.isEmpty)
        #expect(first.rearm == Self.start + .milliseconds(200))
        #expect(table.remove(2)?.waiter == 2)
        let second = table.expire(now: Self.start + .milliseconds(200))
        #expect(second.expired.isEmpty)
        #expect(second.rearm == nil)
        #expect(table.isEmpty)
    }

    @Test("a timer firing early (made stale by an earlier deadline) expires nothing and re-arms nothing new")
    func staleTimerIsHarmless() {
        var table = Table()
        _ = table.add(1, Self.call(1, at: 100))
        let (expired, rearm) = table.expire(now: Self.start + .milliseconds(10))
        #expect(expired.isEmpty)
        #expect(rearm == nil, "the armed timer still covers the call")
        #expect(table.armedDeadline == Self.start + .milliseconds(100))
    }

    @Test("many answered calls do not grow the deadline heap without bound")
    func heapStaysCompact() {
        var table = Table()
        for seq in 0..<Int32(100_000) {
            _ = table.add(seq, Self.call(Int(seq), at: 30_000))
            _ = table.remove(seq)
            #expect(table.heapCount <= 2 * (table.count + 1) + 64, "compacted at the next call")
        }
        _ = table.add(-1, Self.call(-1, at: 30_000))
        let (expired, _) = table.expire(now: Self.start + .milliseconds(30_000))
        #expect(expired.map(\.waiter) == [-1])
        #expect(table.isEmpty)
    }

    @Test("a lost connection takes exactly its own calls")
    func removesByConnection() {
        var table = Table()
        _ = table.add(1, Self.call(1, at: 100, on: Self.connection))
        _ = table.add(2, Self.call(2, at: 100, on: Self.other))
        _ = table.add(3, Self.call(3, at: 100, on: Self.connection))
        #expect(Set(table.removeAll(on: Self.connection).map(\.waiter)) == [1, 3])
        #expect(table.hasCalls(on: Self.other))
        #expect(!table.hasCalls(on: Self.connection))
        #expect(table.expire(now: Self.start + .milliseconds(100)).expired.map(\.waiter) == [2])
    }
}

/// A stand-in for a connection: only its identity matters.
final class Connection: Sendable {}
