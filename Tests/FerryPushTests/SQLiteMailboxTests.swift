import Ferry
import FerryPush
import FerryPushSQLite
import FerryTestSupport
import Foundation
import NIOCore
import Synchronization
import Testing

@Suite("The SQLite mailbox")
struct SQLiteMailboxTests {
    @Test("keeps the mailbox promises", arguments: MailboxConformance.allCases)
    func conformance(_ promise: MailboxConformance) async throws {
        try await withMailboxFiles { files in
            try await promise.run { limits, clock in
                try await files.open(limits: limits, now: { clock.now })
            }
        }
    }

    @Test("streams, epochs and messages survive close and reopen")
    func durableAcrossReopen() async throws {
        try await withMailboxFiles { files in
            let path = files.newPath()
            let clock = ManualWallClock()
            let bytes = ByteBuffer(bytes: [0, 1, 0xFF, 13, 10])
            let first = try await files.open(path: path, now: { clock.now })
            let appended = try await first.append(
                [MailboxConformance.entry("a"), FerryMailboxEntry(route: "/bin", codec: .protobuf, body: bytes)], to: "ann")
            _ = try await first.append([MailboxConformance.entry("b")], to: "bob")
            let idle = try await first.position(of: "cyd")
            let before = try await first.read("ann", after: 0, limit: 10)
            try await first.close()

            let second = try await files.open(path: path, now: { clock.now })
            let after = try await second.read("ann", after: 0, limit: 10)
            #expect(after == before, "same epoch, offsets, routes, codecs, bodies and times")
            #expect(after.epoch == appended.epoch && after.messages.map(\.offset) == [1, 2])
            #expect(MailboxConformance.texts(try await second.read("bob", after: 0, limit: 10)) == ["b"])
            #expect(try await second.position(of: "cyd") == idle, "a stream with no message keeps its epoch too")
            let next = try await second.append([MailboxConformance.entry("c")], to: "ann")
            #expect(next.epoch == appended.epoch && next.offsets == 3...3)
        }
    }

    @Test("an append that returned is in the files before close, as after a killed process")
    func acknowledgedAppendIsOnDisk() async throws {
        try await withMailboxFiles { files in
            let path = files.newPath()
            let mailbox = try await files.open(path: path)
            let appended = try await mailbox.append([MailboxConformance.entry("kept")], to: "ann")
            // Copy the database and its write-ahead log while the mailbox is still open: what a
            // process killed now would leave behind.
            let copy = files.newPath()
            for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: path + suffix) {
                try FileManager.default.copyItem(atPath: path + suffix, toPath: copy + suffix)
            }
            let recovered = try await files.open(path: copy)
            let page = try await recovered.read("ann", after: 0, limit: 10)
            #expect(MailboxConformance.texts(page) == ["kept"])
            #expect(page.epoch == appended.epoch)
        }
    }

    @Test("concurrent appends share transactions, and each returns once its own is committed")
    func groupCommit() async throws {
        try await withMailboxFiles { files in
            let mailbox = try await files.open()
            let before = mailbox.committedTransactions
            let appenders = 200
            let results = try await Self.appendConcurrently(appenders, users: 4, to: mailbox)
            let transactions = mailbox.committedTransactions - before
            #expect(results.allSatisfy { $0.visibleOnReturn }, "every append was committed when it returned")
            for user in Set(results.map { $0.user }) {
                let offsets = results.filter { $0.user == user }.map { $0.offset }.sorted()
                #expect(offsets == Array(1...UInt64(appenders / 4)), "\(user)'s offsets are contiguous")
            }
            #expect(transactions >= 1)
            #expect(transactions * 4 <= appenders, "\(appenders) appends took \(transactions) transactions")
        }
    }

    struct AppendSeen: Sendable {
        var user: String
        var offset: UInt64
        var visibleOnReturn: Bool
    }

    /// `count` appends at once, spread over `users` streams; each reads its message back as
    /// soon as its append returns.
    static func appendConcurrently(_ count: Int, users: Int, to mailbox: FerrySQLiteMailbox) async throws -> [AppendSeen] {
        try await withThrowingTaskGroup(of: AppendSeen.self) { group in
            for index in 0..<count {
                group.addTask {
                    let user = "user\(index % users)"
                    let result = try await mailbox.append([MailboxConformance.entry("m\(index)")], to: user)
                    let offset = result.offsets.lowerBound
                    // Reads see committed transactions only.
                    let visible = try await mailbox.read(user, after: offset - 1, limit: 1)
                    return AppendSeen(user: user, offset: offset, visibleOnReturn: visible.messages.first?.offset == offset)
                }
            }
            var seen: [AppendSeen] = []
            for try await result in group { seen.append(result) }
            return seen
        }
    }

    @Test("close commits the appends already queued, and later calls are refused")
    func closeDrainsQueuedAppends() async throws {
        try await withMailboxFiles { files in
            let path = files.newPath()
            let mailbox = try await files.open(path: path)
            let appended = try await withThrowingTaskGroup(of: UInt64?.self) { group in
                for index in 0..<50 {
                    group.addTask {
                        do {
                            return try await mailbox.append([MailboxConformance.entry("m\(index)")], to: "ann").offsets.lowerBound
                        } catch let error as FerrySQLiteMailboxError where error.code == .closed {
                            return nil
                        }
                    }
                }
                try await mailbox.close()
                return try await group.reduce(into: [UInt64]()) { if let offset = $1 { $0.append(offset) } }
            }
            await #expect(throws: FerrySQLiteMailboxError.self) {
                _ = try await mailbox.append([MailboxConformance.entry("late")], to: "ann")
            }
            let reopened = try await files.open(path: path)
            let page = try await reopened.read("ann", after: 0, limit: 100)
            #expect(page.messages.map(\.offset) == appended.sorted(), "every append that returned is stored, no other")
        }
    }

    @Test("removeExpired deletes the expired messages of streams nobody writes")
    func removeExpired() async throws {
        try await withMailboxFiles { files in
            let clock = ManualWallClock()
            let mailbox = try await files.open(limits: FerryMailboxLimits(timeToLive: .seconds(60)), now: { clock.now })
            _ = try await mailbox.append(["1", "2", "3"].map { MailboxConformance.entry($0) }, to: "idle")
            #expect(try await mailbox.removeExpired() == 0)
            clock.advance(by: 61)
            #expect(try await mailbox.removeExpired() == 3)
            #expect(try await mailbox.removeExpired() == 0, "nothing is left to delete")
            let page = try await mailbox.read("idle", after: 0, limit: 10)
            #expect(page.messages.isEmpty && page.lost == 3 && page.lastOffset == 3)
        }
    }

    @Test("expired messages a read skipped are deleted by the next transaction, whoever writes it")
    func readLeavesExpiredToNextTransaction() async throws {
        try await withMailboxFiles { files in
            let clock = ManualWallClock()
            let mailbox = try await files.open(limits: FerryMailboxLimits(timeToLive: .seconds(60)), now: { clock.now })
            _ = try await mailbox.append(["1", "2"].map { MailboxConformance.entry($0) }, to: "idle")
            clock.advance(by: 61)
            #expect(try await mailbox.read("idle", after: 0, limit: 10).lost == 2)
            _ = try await mailbox.append([MailboxConformance.entry("x")], to: "other")
            #expect(try await mailbox.removeExpired() == 0, "the append's transaction deleted them")
        }
    }

    @Test("an empty body round-trips")
    func emptyBody() async throws {
        try await withMailboxFiles { files in
            let mailbox = try await files.open()
            let entry = FerryMailboxEntry(route: "/ping", codec: .none, body: ByteBuffer())
            _ = try await mailbox.append([entry], to: "ann")
            #expect(try await mailbox.read("ann", after: 0, limit: 1).messages.map(\.entry) == [entry])
        }
    }

    @Test("a file that is not a database is refused at open and left as it was")
    func notADatabase() async throws {
        try await withMailboxFiles { files in
            let path = files.newPath()
            let text = Data(String(repeating: "not a database\n", count: 300).utf8)
            try text.write(to: URL(fileURLWithPath: path))
            let error = await #expect(throws: FerrySQLiteMailboxError.self) { _ = try await files.open(path: path) }
            #expect(error?.code == .unreadableFile)
            #expect(error.map { "\($0)".contains(path) } == true, "the error names the file: \(String(describing: error))")
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == text)
        }
    }

    @Test("a path in a missing directory is refused at open")
    func missingDirectory() async throws {
        try await withMailboxFiles { files in
            let error = await #expect(throws: FerrySQLiteMailboxError.self) {
                _ = try await files.open(path: files.newPath() + "/missing/mailbox.sqlite")
            }
            #expect(error?.code == .cannotOpen)
        }
    }
}

/// Mailbox files in a temporary directory, and every mailbox opened on them, closed at the end.
final class MailboxFiles: Sendable {
    let directory: TemporaryDirectory
    private let opened = Mutex<[FerrySQLiteMailbox]>([])

    init() throws { directory = try TemporaryDirectory() }

    func newPath() -> String { directory.path("mailbox-\(UUID().uuidString.prefix(8)).sqlite") }

    func open(
        path: String? = nil, limits: FerryMailboxLimits = FerryMailboxLimits(), now: @escaping @Sendable () -> Date = Date.init
    ) async throws -> FerrySQLiteMailbox {
        let mailbox = try await FerrySQLiteMailbox.open(path: path ?? newPath(), limits: limits, now: now)
        opened.withLock { $0.append(mailbox) }
        return mailbox
    }

    func closeAll() async throws {
        for mailbox in opened.withLock({ $0 }) { try await mailbox.close() }
    }
}

func withMailboxFiles(_ body: (MailboxFiles) async throws -> Void) async throws {
    let files = try MailboxFiles()
    defer { files.directory.remove() }
    do {
        try await body(files)
    } catch {
        try? await files.closeAll()
        throw error
    }
    try await files.closeAll()
}
