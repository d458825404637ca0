import Ferry
import FerryPush
import Foundation
import NIOCore
import Synchronization
import Testing

/// A wall clock tests move by hand, for mailboxes' time to live.
final class ManualWallClock: Sendable {
    private let current = Mutex(Date(timeIntervalSince1970: 1_800_000_000))

    var now: Date { current.withLock { $0 } }

    func advance(by seconds: TimeInterval) {
        current.withLock { $0 = $0.addingTimeInterval(seconds) }
    }
}

/// Makes a fresh, empty mailbox with `limits` that reads the time from `clock`.
typealias MailboxMaker = @Sendable (FerryMailboxLimits, ManualWallClock) async throws -> any FerryMailbox

/// The promises every ``FerryMailbox`` keeps. Each implementation's suite runs every case
/// (`@Test(arguments: MailboxConformance.allCases)`).
enum MailboxConformance: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case offsetsInOrder
    case readsAfterAnOffset
    case usersApart
    case capDropsOldest
    case timeToLive
    case positionOfNewStream
    case concurrentAppends
    case bodiesRoundTrip

    var testDescription: String { rawValue }

    static func entry(_ text: String, route: String = "/chat/msg") -> FerryMailboxEntry {
        FerryMailboxEntry(route: route, codec: .json, body: ByteBuffer(string: "\"\(text)\""))
    }

    static func texts(_ page: FerryStreamPage) -> [String] {
        page.messages.map { String(buffer: $0.entry.body).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
    }

    func run(_ make: MailboxMaker) async throws {
        let clock = ManualWallClock()
        switch self {
        case .offsetsInOrder:
            let mailbox = try await make(FerryMailboxLimits(), clock)
            let first = try await mailbox.append([Self.entry("a"), Self.entry("b")], to: "u")
            #expect(first.offsets == 1...2)
            let second = try await mailbox.append([Self.entry("c")], to: "u")
            #expect(second.offsets == 3...3)
            #expect(second.epoch == first.epoch, "the epoch stays while history is kept")
            let position = try await mailbox.position(of: "u")
            #expect(position == FerryStreamPosition(epoch: first.epoch, offset: 3))

        case .readsAfterAnOffset:
            let mailbox = try await make(FerryMailboxLimits(), clock)
            _ = try await mailbox.append(["a", "b", "c", "d"].map { Self.entry($0) }, to: "u")
            let all = try await mailbox.read("u", after: 0, limit: 100)
            #expect(Self.texts(all) == ["a", "b", "c", "d"])
            #expect(all.messages.map(\.offset) == [1, 2, 3, 4])
            #expect(all.lost == 0 && all.lastOffset == 4)
            let rest = try await mailbox.read("u", after: 2, limit: 100)
            #expect(Self.texts(rest) == ["c", "d"])
            let limited = try await mailbox.read("u", after: 0, limit: 3)
            #expect(limited.messages.map(\.offset) == [1, 2, 3])
            let none = try await mailbox.read("u", after: 4, limit: 100)
            #expect(none.messages.isEmpty && none.lost == 0)

        case .usersApart:
            let mailbox = try await make(FerryMailboxLimits(), clock)
            _ = try await mailbox.append([Self.entry("for ann")], to: "ann")
            let bob = try await mailbox.append([Self.entry("for bob"), Self.entry("again")], to: "bob")
            #expect(bob.offsets == 1...2, "each user's stream counts from 1")
            #expect(Self.texts(try await mailbox.read("ann", after: 0, limit: 10)) == ["for ann"])
            #expect(Self.texts(try await mailbox.read("bob", after: 0, limit: 10)) == ["for bob", "again"])

        case .capDropsOldest:
            let mailbox = try await make(FerryMailboxLimits(maximumMessages: 3), clock)
            let first = try await mailbox.append(["1", "2", "3", "4", "5"].map { Self.entry($0) }, to: "u")
            let page = try await mailbox.read("u", after: 0, limit: 10)
            #expect(page.messages.map(\.offset) == [3, 4, 5])
            #expect(page.lost == 2, "the reader is told how many it lost")
            #expect(page.epoch == first.epoch, "dropping by the cap keeps the epoch")
            let afterTwo = try await mailbox.read("u", after: 2, limit: 10)
            #expect(afterTwo.lost == 0)

        case .timeToLive:
            let mailbox = try await make(FerryMailboxLimits(timeToLive: .seconds(60)), clock)
            let first = try await mailbox.append([Self.entry("old"), Self.entry("older")], to: "u")
            clock.advance(by: 30)
            _ = try await mailbox.append([Self.entry("new")], to: "u")
            clock.advance(by: 31)
            let page = try await mailbox.read("u", after: 0, limit: 10)
            #expect(Self.texts(page) == ["new"], "the first two expired")
            #expect(page.lost == 2)
            clock.advance(by: 60)
            let empty = try await mailbox.read("u", after: 0, limit: 10)
            #expect(empty.messages.isEmpty && empty.lost == 3 && empty.lastOffset == 3)
            let next = try await mailbox.append([Self.entry("next")], to: "u")
            #expect(next.offsets == 4...4, "offsets go on after everything expired")
            #expect(next.epoch == first.epoch)

        case .positionOfNewStream:
            let mailbox = try await make(FerryMailboxLimits(), clock)
            let position = try await mailbox.position(of: "nobody")
            #expect(position.offset == 0)
            let appended = try await mailbox.append([Self.entry("x")], to: "nobody")
            #expect(appended.epoch == position.epoch, "the epoch a reader saw before the first message holds")
            #expect(appended.offsets == 1...1)

        case .concurrentAppends:
            let mailbox = try await make(FerryMailboxLimits(), clock)
            let offsets = try await withThrowingTaskGroup(of: ClosedRange<UInt64>.self) { group in
                for index in 0..<50 {
                    group.addTask { try await mailbox.append([Self.entry("m\(index)"), Self.entry("n\(index)")], to: "u").offsets }
                }
                return try await group.reduce(into: [ClosedRange<UInt64>]()) { $0.append($1) }
            }
            #expect(offsets.allSatisfy { $0.count == 2 }, "a batch gets consecutive offsets")
            #expect(Set(offsets.flatMap { Array($0) }) == Set(1...100))
            let page = try await mailbox.read("u", after: 0, limit: 1000)
            #expect(page.messages.map(\.offset) == Array(1...100))
            for range in offsets {
                let pair = page.messages.filter { range.contains($0.offset) }.map { String(buffer: $0.entry.body) }
                #expect(pair.count == 2 && pair[0].dropFirst(2) == pair[1].dropFirst(2), "a batch stays together: \(pair)")
            }

        case .bodiesRoundTrip:
            let mailbox = try await make(FerryMailboxLimits(), clock)
            let bytes: [UInt8] = [0, 1, 2, 0xFF, 0xFE, 10, 13]
            let entry = FerryMailboxEntry(route: "/bin/ary", codec: .protobuf, body: ByteBuffer(bytes: bytes))
            _ = try await mailbox.append([entry], to: "u")
            let stored = try #require(try await mailbox.read("u", after: 0, limit: 1).messages.first)
            #expect(stored.entry == entry)
            #expect(stored.storedAt == clock.now)
        }
    }
}

@Suite("The in-memory mailbox")
struct MemoryMailboxTests {
    @Test("keeps the mailbox promises", arguments: MailboxConformance.allCases)
    func conformance(_ promise: MailboxConformance) async throws {
        try await promise.run { limits, clock in FerryMemoryMailbox(limits: limits, now: { clock.now }) }
    }

    @Test("a new mailbox is a new epoch for every stream")
    func restartIsNewEpoch() async throws {
        let before = try await FerryMemoryMailbox().append([MailboxConformance.entry("x")], to: "u")
        let after = try await FerryMemoryMailbox().position(of: "u")
        #expect(before.epoch != after.epoch)
    }
}
