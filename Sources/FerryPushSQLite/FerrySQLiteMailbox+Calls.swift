import FerryPush
import Foundation
import NIOCore
import SQLiteNIO

extension FerrySQLiteMailbox {
    /// Stores `messages` at the end of `user`'s stream and returns once the transaction holding
    /// them has committed (see group commit in ``FerrySQLiteMailbox``). Messages over the cap
    /// are dropped oldest first, as in every mailbox.
    ///
    /// A queued append is not abandoned when its task is cancelled: other callers may be
    /// waiting on the transaction it is in, so it is written and the call returns its result.
    public func append(_ messages: [FerryMailboxEntry], to user: String) async throws -> FerryAppendResult {
        precondition(!messages.isEmpty, "nothing to append")
        let operation = WriteOperation.append(user: user, entries: messages, storedAt: StoredTime.milliseconds(now()))
        guard case .appended(let result) = try await write(operation) else { preconditionFailure("an append appends") }
        return result
    }

    /// Up to `limit` messages of `user`'s stream after `offset`, read from the last committed
    /// state; expired messages are skipped and counted as lost. A stream never seen before is
    /// created (its epoch committed) first, so the epoch a reader is told holds.
    public func read(_ user: String, after offset: UInt64, limit: Int) async throws -> FerryStreamPage {
        if let page = try await readCommitted(user, after: offset, limit: limit) { return page }
        _ = try await write(.createStream(user: user))
        guard let page = try await readCommitted(user, after: offset, limit: limit) else {
            throw FerrySQLiteMailboxError(.storageFailed, "the stream of \(user) is missing from \(path) after it was created")
        }
        return page
    }

    /// The epoch and last offset of `user`'s stream; a stream never seen before is created (its
    /// epoch committed) first.
    public func position(of user: String) async throws -> FerryStreamPosition {
        if let position = try await reading({ try await reader.position(of: user) }) { return position }
        guard case .position(let position) = try await write(.createStream(user: user)) else {
            preconditionFailure("creating a stream tells its position")
        }
        return position
    }

    private func readCommitted(_ user: String, after offset: UInt64, limit: Int) async throws -> FerryStreamPage? {
        let expiry = StoredTime.expiry(limits, at: now())
        guard let found = try await reading({ try await reader.read(user, after: offset, limit: limit, expiry: expiry) }) else {
            return nil
        }
        if found.hasExpiredMessages { groupCommit.withLock { $0.noteStale(user) } }
        return found.page
    }

    /// Runs `body` on the reader connection unless the mailbox is closing; close waits for it.
    private func reading<Result>(_ body: () async throws -> Result) async throws -> Result {
        guard groupCommit.withLock({ $0.beginRead() }) else { throw closedError }
        defer { groupCommit.withLock { $0.endRead() }?.succeed() }
        do {
            return try await body()
        } catch {
            throw storageError(error, "cannot read from")
        }
    }

    /// Queues `operation` for the next transaction and waits until it committed, writing that
    /// transaction itself when it is this caller's turn.
    func write(_ operation: WriteOperation) async throws -> WriteResult {
        var outcome: EventLoopFuture<WriteOutcome>
        switch groupCommit.withLock({ $0.enqueue(operation, on: eventLoop) }) {
        case .rejected:
            throw closedError
        case .wait(let future):
            outcome = future
        case .commit(let future):
            outcome = future
            await commitBatch()
        }
        while true {
            switch try await outcome.get() {
            case .written(let result):
                return result
            case .commitNext(let next):
                outcome = next
                await commitBatch()
            }
        }
    }

    /// Writes everything queued as one transaction, tells every caller in it, and passes the
    /// committer's role on.
    private func commitBatch() async {
        let batch = groupCommit.withLock { $0.takeBatch() }
        do {
            let results = try await writer.write(
                batch.writes.map(\.operation), staleUsers: batch.staleUsers, expiry: StoredTime.expiry(limits, at: now()))
            transactions.add(1, ordering: .relaxed)
            for (write, result) in zip(batch.writes, results) { write.waiter.succeed(.written(result)) }
        } catch {
            let failure = storageError(error, "cannot write to")
            for write in batch.writes { write.waiter.fail(failure) }
        }
        switch groupCommit.withLock({ $0.finishBatch(on: eventLoop) }) {
        case .idle:
            break
        case .handOff(let waiter, let next):
            waiter.succeed(.commitNext(next))
        case .drained(let drained):
            drained.succeed()
        }
    }

    private var closedError: FerrySQLiteMailboxError {
        FerrySQLiteMailboxError(.closed, "the mailbox at \(path) is closed")
    }

    private func storageError(_ error: any Error, _ doing: String) -> any Error {
        if error is FerrySQLiteMailboxError { return error }
        return FerrySQLiteMailboxError(.storageFailed, "\(doing) the mailbox at \(path)", cause: error)
    }
}
