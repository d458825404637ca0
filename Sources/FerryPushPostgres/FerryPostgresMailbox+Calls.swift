import FerryPush
import Foundation
import NIOCore
import PostgresNIO
import Synchronization

extension FerryPostgresMailbox {
    /// Stores `messages` at the end of `user`'s stream in one transaction and returns once it
    /// has committed. Messages over the cap are dropped oldest first, as in every mailbox.
    public func append(_ messages: [FerryMailboxEntry], to user: String) async throws -> FerryAppendResult {
        precondition(!messages.isEmpty, "nothing to append")
        try Self.validate(user: user)
        for entry in messages where entry.route.utf8.contains(0) {
            throw FerryPostgresMailboxError(
                .invalidInput, "the route of a message for \(Self.shown(user)) holds a NUL character, which PostgreSQL text cannot store")
        }
        let time = now()
        let storedAt = StoredTime.milliseconds(time)
        let expiry = StoredTime.expiry(limits, at: time)
        return try await call("cannot append to the stream of \(Self.shown(user)) in") { connection in
            try await self.statements.append(messages, to: user, storedAt: storedAt, expiry: expiry, on: connection)
        }
    }

    /// Up to `limit` messages of `user`'s stream after `offset`, from one consistent snapshot;
    /// expired messages are skipped and counted as lost. A stream never seen before is created
    /// (its epoch committed) first, so the epoch a reader is told holds.
    public func read(_ user: String, after offset: UInt64, limit: Int) async throws -> FerryStreamPage {
        try Self.validate(user: user)
        let expiry = StoredTime.expiry(limits, at: now())
        return try await call("cannot read the stream of \(Self.shown(user)) in") { connection in
            if let page = try await self.statements.read(user, after: offset, limit: limit, expiry: expiry, on: connection) {
                return page
            }
            try await self.statements.createStream(user, on: connection)
            guard let page = try await self.statements.read(user, after: offset, limit: limit, expiry: expiry, on: connection) else {
                throw MailboxFormatError(what: "the stream of \(Self.shown(user)) is missing after it was created")
            }
            return page
        }
    }

    /// The epoch and last offset of `user`'s stream; a stream never seen before is created (its
    /// epoch committed) first.
    public func position(of user: String) async throws -> FerryStreamPosition {
        try Self.validate(user: user)
        return try await call("cannot read the position of \(Self.shown(user)) in") { connection in
            if let position = try await self.statements.position(of: user, on: connection) { return position }
            try await self.statements.createStream(user, on: connection)
            guard let position = try await self.statements.position(of: user, on: connection) else {
                throw MailboxFormatError(what: "the stream of \(Self.shown(user)) is missing after it was created")
            }
            return position
        }
    }

    /// Deletes every stream's expired messages, in one statement; returns how many it deleted.
    /// Appends do this for their own stream; ``run()`` calls it every
    /// ``Configuration/removeExpiredInterval``.
    @discardableResult
    public func removeExpired() async throws -> Int {
        let expiry = StoredTime.expiry(limits, at: now())
        return try await call("cannot remove expired messages from") { connection in
            try await self.statements.removeExpired(expiry: expiry, on: connection)
        }
    }

    private static func validate(user: String) throws {
        if user.utf8.contains(0) {
            throw FerryPostgresMailboxError(
                .invalidInput, "the user name \(shown(user)) holds a NUL character, which PostgreSQL text cannot store")
        }
        if user.utf8.count > maximumUserNameLength {
            throw FerryPostgresMailboxError(
                .invalidInput, "the user name \(shown(user)) is longer than \(maximumUserNameLength) bytes")
        }
    }

    /// Runs `body` on a pooled connection (creating the tables first if this mailbox has not
    /// yet), within the configured timeout, unless the mailbox is closing.
    ///
    /// PostgresNIO gives up waiting for a connection when its task is cancelled, but not a
    /// statement in progress: at the timeout the connection the call holds is closed, which
    /// fails its statement (and rolls back an uncommitted transaction), so the call returns.
    func call<Result: Sendable>(
        _ doing: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        guard lifecycle.withLock({ $0.beginCall() }) else {
            throw FerryPostgresMailboxError(.closed, "the mailbox in the \(databaseName) is closed")
        }
        defer { lifecycle.withLock { $0.endCall() }?.resume() }
        let held = HeldConnection()
        let client = self.client
        do {
            return try await withThrowingTaskGroup(of: Result?.self) { group in
                group.addTask {
                    try await client.withConnection { connection in
                        guard held.hold(connection) else { throw CancellationError() }
                        defer { held.release() }
                        try await self.prepareSchemaOnce(connection)
                        return try await body(connection)
                    }
                }
                group.addTask {
                    try? await Task.sleep(for: self.configuration.timeout)
                    return nil
                }
                defer { group.cancelAll() }
                if case let result?? = try await group.next() { return result }
                throw timedOut(doing, connected: held.timeOut())
            }
        } catch let error as FerryPostgresMailboxError {
            throw error
        } catch let error as PostgresTransactionError where error.closureError is FerryPostgresMailboxError {
            throw error.closureError!
        } catch {
            throw FerryPostgresMailboxError(FerryPostgresMailboxError.code(for: error), "\(doing) the \(databaseName)", cause: error)
        }
    }

    private func timedOut(_ doing: String, connected: Bool) -> FerryPostgresMailboxError {
        let what: String
        if lifecycle.withLock({ $0.phase }) == .idle {
            what = "no connection within \(configuration.timeout): run() has not started the mailbox"
        } else if connected {
            what = "no answer within \(configuration.timeout)"
        } else {
            what = "no connection within \(configuration.timeout) (is the server down or unreachable?)"
        }
        return FerryPostgresMailboxError(.timedOut, "\(doing) the \(databaseName): \(what)")
    }

    private func prepareSchemaOnce(_ connection: PostgresConnection) async throws {
        guard !schemaReady.load(ordering: .acquiring) else { return }
        try await MailboxSchema.prepare(connection, logger: logger, database: databaseName)
        schemaReady.store(true, ordering: .releasing)
    }
}

/// The connection a call holds, so that its timeout can close it.
final class HeldConnection: Sendable {
    private enum State {
        case waiting
        case holding(PostgresConnection)
        case released
        case timedOut
    }

    private let state = Mutex(State.waiting)

    /// The call got `connection`; false if it already timed out.
    func hold(_ connection: PostgresConnection) -> Bool {
        state.withLock { state in
            guard case .waiting = state else { return false }
            state = .holding(connection)
            return true
        }
    }

    func release() {
        state.withLock { state in
            if case .holding = state { state = .released }
        }
    }

    /// The call timed out: closes the connection it holds, if any, which fails the statement
    /// in progress; a connection leased later is refused. Returns whether the call had got a
    /// connection.
    func timeOut() -> Bool {
        var wasReleased = false
        let connection = state.withLock { state -> PostgresConnection? in
            defer { state = .timedOut }
            switch state {
            case .holding(let connection): return connection
            case .released: wasReleased = true
            case .waiting, .timedOut: break
            }
            return nil
        }
        // Closes without waiting; the pool drops the connection once it is closed.
        let _: EventLoopFuture<Void>? = connection?.close()
        return connection != nil || wasReleased
    }
}
