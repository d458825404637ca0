import NIOCore

/// Who writes the next transaction, what waits to be written, and whether the mailbox is open:
/// a value-type state machine kept under a lock, returning what the caller must do.
///
/// There is no writer task. The first caller that finds no transaction in progress becomes the
/// committer: it writes one transaction holding everything queued, then hands the role to the
/// first caller still waiting (who writes the next one), or leaves it if the queue is empty.
/// So every transaction is written by a caller that is itself waiting for it, and an `append`
/// that arrives while a transaction is being written rides in the next one.
struct GroupCommit {
    /// The most writes one transaction takes; the rest wait for the next.
    static let maximumBatch = 2000
    /// The most users a read may leave for the next transaction to clean.
    static let maximumStaleUsers = 10_000

    struct Activity {
        var pending: [PendingWrite] = []
        var committing = false
        var reads = 0
        var staleUsers: Set<String> = []

        var isIdle: Bool { !committing && pending.isEmpty && reads == 0 }
    }

    enum State {
        case open(Activity)
        /// No new calls; waits for the writes and reads in progress. `drained` is completed
        /// once they are done (nil if they already were), `finished` once the files are closed.
        case closing(Activity, drained: EventLoopPromise<Void>?, finished: EventLoopPromise<Void>)
        case closed
    }

    private(set) var state: State = .open(Activity())

    enum Enqueued {
        case rejected
        /// Wait on the future.
        case wait(EventLoopFuture<WriteOutcome>)
        /// Commit a batch first, then wait on the future.
        case commit(EventLoopFuture<WriteOutcome>)
    }

    /// Queues `operation`; the caller commits if no one else is.
    mutating func enqueue(_ operation: WriteOperation, on loop: any EventLoop) -> Enqueued {
        guard case .open(var activity) = state else { return .rejected }
        let waiter = loop.makePromise(of: WriteOutcome.self)
        activity.pending.append(PendingWrite(operation: operation, waiter: waiter))
        let leads = !activity.committing
        activity.committing = true
        state = .open(activity)
        return leads ? .commit(waiter.futureResult) : .wait(waiter.futureResult)
    }

    /// What the committer writes now: the oldest pending writes and the stale users.
    mutating func takeBatch() -> WriteBatch {
        modifyActivity { activity in
            precondition(activity.committing, "only the committer takes a batch")
            let count = min(activity.pending.count, Self.maximumBatch)
            let writes = Array(activity.pending.prefix(count))
            activity.pending.removeFirst(count)
            let stale = activity.staleUsers
            activity.staleUsers = []
            return WriteBatch(writes: writes, staleUsers: stale)
        } ?? WriteBatch(writes: [], staleUsers: [])
    }

    enum AfterBatch {
        case idle
        /// Tell `waiter` it commits next, then waits on `next`.
        case handOff(waiter: EventLoopPromise<WriteOutcome>, next: EventLoopFuture<WriteOutcome>)
        /// Everything is written and the mailbox is closing: complete this.
        case drained(EventLoopPromise<Void>)
    }

    /// The committer's transaction is done (committed or failed): who commits next.
    mutating func finishBatch(on loop: any EventLoop) -> AfterBatch {
        let handOff: AfterBatch? = modifyActivity { activity in
            guard !activity.pending.isEmpty else {
                activity.committing = false
                return nil
            }
            let waiter = activity.pending[0].waiter
            let replacement = loop.makePromise(of: WriteOutcome.self)
            activity.pending[0].waiter = replacement
            return .handOff(waiter: waiter, next: replacement.futureResult)
        } ?? nil
        return handOff ?? takeDrainedIfIdle().map(AfterBatch.drained) ?? .idle
    }

    /// A read may start (false once closing).
    mutating func beginRead() -> Bool {
        guard case .open(var activity) = state else { return false }
        activity.reads += 1
        state = .open(activity)
        return true
    }

    /// A read is done; if the mailbox waits to close and this was the last thing it waited
    /// for, the caller completes the promise returned.
    mutating func endRead() -> EventLoopPromise<Void>? {
        modifyActivity { $0.reads -= 1 }
        return takeDrainedIfIdle()
    }

    /// A read saw expired messages of `user` still on disk: the next transaction deletes them.
    mutating func noteStale(_ user: String) {
        guard case .open(var activity) = state, activity.staleUsers.count < Self.maximumStaleUsers else { return }
        activity.staleUsers.insert(user)
        state = .open(activity)
    }

    enum Closing {
        /// Nothing is in progress: close the files, then ``finishClose()``.
        case closeNow
        /// Wait on `drained`, close the files, then ``finishClose()``.
        case closeWhenDrained(EventLoopFuture<Void>)
        /// Another caller is closing: wait on this.
        case waitForOtherCloser(EventLoopFuture<Void>)
        case alreadyClosed
    }

    /// Stops taking calls; writes already queued are still committed.
    mutating func beginClose(on loop: any EventLoop) -> Closing {
        switch state {
        case .open(var activity):
            activity.staleUsers = []
            let finished = loop.makePromise(of: Void.self)
            if activity.isIdle {
                state = .closing(activity, drained: nil, finished: finished)
                return .closeNow
            }
            let drained = loop.makePromise(of: Void.self)
            state = .closing(activity, drained: drained, finished: finished)
            return .closeWhenDrained(drained.futureResult)
        case .closing(_, _, let finished):
            return .waitForOtherCloser(finished.futureResult)
        case .closed:
            return .alreadyClosed
        }
    }

    /// The files are closed: the caller completes the promise returned.
    mutating func finishClose() -> EventLoopPromise<Void>? {
        guard case .closing(_, _, let finished) = state else { return nil }
        state = .closed
        return finished
    }

    private mutating func modifyActivity<Result>(_ body: (inout Activity) -> Result) -> Result? {
        switch state {
        case .open(var activity):
            let result = body(&activity)
            state = .open(activity)
            return result
        case .closing(var activity, let drained, let finished):
            let result = body(&activity)
            state = .closing(activity, drained: drained, finished: finished)
            return result
        case .closed:
            return nil
        }
    }

    private mutating func takeDrainedIfIdle() -> EventLoopPromise<Void>? {
        guard case .closing(let activity, let drained?, let finished) = state, activity.isIdle else { return nil }
        state = .closing(activity, drained: nil, finished: finished)
        return drained
    }
}
