import FerryPush
import Foundation
import Logging
import NIOCore
import SQLiteNIO
import Synchronization

/// A mailbox in one SQLite file: the embedded default for a single machine. Streams, their
/// epochs and their messages survive a restart, a killed process and a power loss.
///
/// ```swift
/// let mailbox = try await FerrySQLiteMailbox.open(path: "/var/lib/ferry/mailbox.sqlite")
/// let stored = try await mailbox.append([entry], to: "ann")  // on disk when this returns
/// let page = try await mailbox.read("ann", after: 0, limit: 100)
/// try await mailbox.close()
/// ```
///
/// **Durability.** The file uses SQLite's write-ahead log with `synchronous = FULL`: every commit
/// syncs the log, so an `append` that returned survives a process kill and, as far as the disk
/// honours syncs, a power loss (`NORMAL` would only survive the process). On macOS
/// `fullfsync` also flushes the drive's cache.
///
/// **Group commit.** Because a sync costs about as much for one message as for hundreds,
/// concurrent `append` calls share transactions: calls that arrive while a transaction is
/// being written wait, and the next transaction takes all of them (one sync). Each call returns
/// once the transaction holding its messages has committed. There is no writer task: the
/// caller that finds no transaction in progress writes the next one, then hands that role to
/// the first caller still waiting. Each call's messages get consecutive offsets, in the order
/// the calls were queued.
///
/// **Limits.** An append deletes its stream's messages over the cap and those expired. Reads
/// skip expired messages still on disk and leave them to the next transaction to delete; a
/// stream nobody writes keeps them until ``removeExpired()`` (called at ``open(path:limits:now:logger:)``,
/// and by the host as often as it likes).
///
/// **Lifecycle.** ``open(path:limits:now:logger:)`` opens the file and checks it (a file that is
/// not a mailbox is refused there); ``close()`` waits for the calls in progress and closes it.
/// Nothing runs in the background in between.
///
/// Built on sqlite-nio rather than GRDB: it carries its own copy of SQLite (nothing to install
/// on a fresh machine), it is asynchronous on SwiftNIO like the rest of Ferry, and it is small.
public final class FerrySQLiteMailbox: FerryMailbox {
    /// What each stream keeps.
    public let limits: FerryMailboxLimits
    /// The file.
    public let path: String
    let now: @Sendable () -> Date
    let writer: MailboxWriter
    let reader: MailboxReader
    let eventLoop: any EventLoop
    let groupCommit = Mutex(GroupCommit())
    let transactions = Atomic<Int>(0)

    private init(path: String, limits: FerryMailboxLimits, now: @escaping @Sendable () -> Date, writer: SQLiteConnection, reader: SQLiteConnection) {
        self.path = path
        self.limits = limits
        self.now = now
        self.writer = MailboxWriter(connection: writer, limits: limits)
        self.reader = MailboxReader(connection: reader)
        self.eventLoop = writer.eventLoop
    }

    /// Opens the mailbox in the file at `path`, creating the file if it is missing (its
    /// directory must exist), and deletes the messages that expired while it was closed.
    ///
    /// Throws ``FerrySQLiteMailboxError`` with ``FerrySQLiteMailboxError/Code/unreadableFile``
    /// for a file that is not an SQLite database, is damaged, or holds another program's data,
    /// and ``FerrySQLiteMailboxError/Code/cannotOpen`` for a path that cannot be opened.
    ///
    /// - Parameters:
    ///   - limits: what each stream keeps.
    ///   - now: the wall clock for the time to live (tests pass their own).
    ///   - logger: where SQLite's connections log.
    public static func open(
        path: String,
        limits: FerryMailboxLimits = FerryMailboxLimits(),
        now: @escaping @Sendable () -> Date = Date.init,
        logger: Logger = Logger(label: "ferry.push.sqlite")
    ) async throws -> FerrySQLiteMailbox {
        let writer = try await MailboxSchema.openWriter(path: path, logger: logger)
        let reader: SQLiteConnection
        do {
            reader = try await MailboxSchema.openReader(path: path, logger: logger)
        } catch {
            try? await writer.close()
            throw error
        }
        let mailbox = FerrySQLiteMailbox(path: path, limits: limits, now: now, writer: writer, reader: reader)
        do {
            try await mailbox.removeExpired()
        } catch {
            try? await mailbox.close()
            throw error
        }
        return mailbox
    }

    deinit {
        // A mailbox dropped without close() still releases its file; the futures keep the
        // connections alive until SQLite has closed them.
        if case .closed = groupCommit.withLock({ $0.state }) { return }
        _ = writer.connection.close()
        _ = reader.connection.close()
    }

    /// Waits for the calls in progress (queued appends are still committed), then closes the
    /// file. Later calls throw ``FerrySQLiteMailboxError/Code/closed``. Closing twice is harmless.
    public func close() async throws {
        switch groupCommit.withLock({ $0.beginClose(on: eventLoop) }) {
        case .alreadyClosed:
            return
        case .waitForOtherCloser(let finished):
            try await finished.get()
            return
        case .closeWhenDrained(let drained):
            try await drained.get()
        case .closeNow:
            break
        }
        let closing = writer.connection.close().and(reader.connection.close())
        let finished = groupCommit.withLock { $0.finishClose() }
        do {
            _ = try await closing.get()
            finished?.succeed()
        } catch {
            finished?.fail(error)
            throw FerrySQLiteMailboxError(.storageFailed, "cannot close \(path)", cause: error)
        }
    }

    /// Deletes every stream's expired messages, in one transaction; returns how many messages
    /// that transaction deleted. Appends and reads do this for the streams they touch; a host
    /// with many idle streams may call it now and then.
    @discardableResult
    public func removeExpired() async throws -> Int {
        guard case .removed(let count) = try await write(.removeExpired) else { preconditionFailure("a sweep removes") }
        return count
    }

    /// Transactions committed since the mailbox opened (one per group commit).
    package var committedTransactions: Int { transactions.load(ordering: .relaxed) }
}
