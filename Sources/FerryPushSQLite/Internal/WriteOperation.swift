import FerryPush
import NIOCore

/// A change to the mailbox that goes through group commit.
enum WriteOperation: Sendable {
    /// Appends `entries` to `user`'s stream, stamped `storedAt` (milliseconds since 1970).
    case append(user: String, entries: [FerryMailboxEntry], storedAt: Int64)
    /// Creates `user`'s stream with a new epoch if it does not exist yet, so the epoch a reader
    /// is told is on disk before anyone sees it.
    case createStream(user: String)
    /// Deletes every stream's expired messages.
    case removeExpired
}

/// What a ``WriteOperation`` did, in the same order.
enum WriteResult: Sendable {
    case appended(FerryAppendResult)
    case position(FerryStreamPosition)
    case removed(Int)
}

/// What a caller waiting on group commit is told.
enum WriteOutcome: Sendable {
    /// Its operation committed (or failed: the future fails).
    case written(WriteResult)
    /// It is the next committer: it writes the next transaction, then waits on this future.
    case commitNext(EventLoopFuture<WriteOutcome>)
}

/// A write waiting for the next transaction, and who to tell.
struct PendingWrite {
    var operation: WriteOperation
    var waiter: EventLoopPromise<WriteOutcome>
}

/// What one transaction takes from the queue.
struct WriteBatch {
    /// The writes, in call order.
    var writes: [PendingWrite]
    /// Users whose expired messages a read saw and that no write has deleted yet.
    var staleUsers: Set<String>
}
