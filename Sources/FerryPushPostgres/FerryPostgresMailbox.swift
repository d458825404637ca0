import FerryPush
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization

/// A mailbox in a PostgreSQL database: for several Ferry servers sharing one store of
/// pushes, or a host that already runs PostgreSQL. Streams, their epochs and their messages
/// survive restarts of the servers (and, as far as the database is durable, of the database).
///
/// ```swift
/// let mailbox = FerryPostgresMailbox(configuration: .init(
///     host: "db.internal", username: "ferry", password: secret, database: "ferry"))
/// // A Service: run it in the host's ServiceGroup, next to the push service that uses it…
/// let group = ServiceGroup(services: [mailbox, server], logger: logger)
/// // …or for a scope:
/// try await FerryPostgresMailbox.withMailbox(configuration: configuration) { mailbox in
///     let stored = try await mailbox.append([entry], to: "ann")  // committed when this returns
/// }
/// ```
///
/// **Offsets.** Each user has a row in `ferry_mailbox_streams` with its epoch and last offset.
/// An append runs in one transaction whose first statement is
/// `INSERT … ON CONFLICT (user_id) DO UPDATE SET last_offset = last_offset + n RETURNING …`:
/// it creates the row or advances it, and holds that row's lock until the commit, so
/// concurrent appends for one user (from any number of tasks or servers) take turns there and
/// get consecutive, gap-free ranges; appends for different users do not wait for each other.
///
/// **No group commit.** Each `append` is its own transaction on a pooled connection. PostgreSQL
/// already shares one WAL flush among the transactions that commit at the same moment, so
/// batching calls in the mailbox would save round trips but not syncs, and would make appends
/// of different users wait for each other.
///
/// **Limits.** An append deletes its stream's messages over the cap and those expired, in the
/// same transaction. Reads skip expired messages still stored. `run()` deletes every stream's
/// expired messages every ``Configuration/removeExpiredInterval``, and ``removeExpired()`` does
/// it on demand.
///
/// **Lifecycle.** The mailbox owns a `PostgresClient` (a connection pool), which works only
/// while ``run()`` runs. The tables are created on first use (`CREATE TABLE IF NOT EXISTS`, in a
/// transaction). Every call is bounded by ``Configuration/timeout``: a database that is down or
/// unreachable gives ``FerryPostgresMailboxError`` rather than a call that hangs. On graceful
/// shutdown (or ``close()``) the mailbox stops taking calls, waits for those in progress, then
/// closes its connections.
///
/// **Input.** Values are sent as bind parameters, never in the SQL text. PostgreSQL text cannot
/// hold a NUL character, so a user name or route with one is refused
/// (``FerryPostgresMailboxError/Code/invalidInput``), as is a user name longer than
/// ``maximumUserNameLength`` bytes (it is an index key); bodies are `bytea` and hold any bytes.
public final class FerryPostgresMailbox: FerryMailbox, Service {
    /// How to reach the database, and what the mailbox keeps.
    public struct Configuration: Sendable {
        /// The server, database and credentials; its `options` size the connection pool.
        public var postgres: PostgresClient.Configuration
        /// What each stream keeps.
        public var limits: FerryMailboxLimits
        /// The longest one call waits for the database: for a connection and its statements
        /// together. Past it the call throws ``FerryPostgresMailboxError/Code/timedOut``.
        public var timeout: Duration
        /// How often ``FerryPostgresMailbox/run()`` deletes the expired messages of every stream;
        /// nil: never (the host calls ``FerryPostgresMailbox/removeExpired()`` itself).
        public var removeExpiredInterval: Duration?

        /// Creates a configuration.
        public init(
            postgres: PostgresClient.Configuration,
            limits: FerryMailboxLimits = FerryMailboxLimits(),
            timeout: Duration = .seconds(10),
            removeExpiredInterval: Duration? = .seconds(600)
        ) {
            self.postgres = postgres
            self.limits = limits
            self.timeout = timeout
            self.removeExpiredInterval = removeExpiredInterval
        }

        /// Creates a configuration for a server reached over TCP.
        public init(
            host: String,
            port: Int = 5432,
            username: String,
            password: String?,
            database: String?,
            tls: PostgresClient.Configuration.TLS = .prefer(.makeClientConfiguration()),
            limits: FerryMailboxLimits = FerryMailboxLimits(),
            timeout: Duration = .seconds(10),
            removeExpiredInterval: Duration? = .seconds(600)
        ) {
            self.init(
                postgres: PostgresClient.Configuration(
                    host: host, port: port, username: username, password: password, database: database, tls: tls),
                limits: limits, timeout: timeout, removeExpiredInterval: removeExpiredInterval)
        }
    }

    /// The longest user name accepted, in UTF-8 bytes: it is a B-tree key, and PostgreSQL
    /// refuses index entries past about 2,700 bytes.
    public static let maximumUserNameLength = 2048

    /// How the mailbox was configured.
    public let configuration: Configuration
    /// What each stream keeps.
    public var limits: FerryMailboxLimits { configuration.limits }

    let client: PostgresClient
    let statements: MailboxStatements
    let now: @Sendable () -> Date
    let logger: Logger
    /// The database as error messages name it.
    let databaseName: String
    let schemaReady = Atomic<Bool>(false)
    let lifecycle = Mutex(Lifecycle())
    /// Opened by ``close()``, graceful shutdown or cancellation: `run()` begins to close.
    let stopRequested = Latch()
    /// Opened once `run()` has closed the connections (or `close()` closed an idle mailbox).
    let closed = Latch()

    /// Creates a mailbox; it reaches the database once ``run()`` runs.
    ///
    /// - Parameters:
    ///   - configuration: the database and what each stream keeps.
    ///   - now: the wall clock for the time to live (tests pass their own).
    ///   - logger: where the mailbox and its connections log.
    public init(
        configuration: Configuration,
        now: @escaping @Sendable () -> Date = Date.init,
        logger: Logger = Logger(label: "ferry.push.postgres")
    ) {
        self.configuration = configuration
        self.now = now
        self.logger = logger
        self.client = PostgresClient(configuration: configuration.postgres, backgroundLogger: logger)
        self.statements = MailboxStatements(limits: configuration.limits, logger: logger)
        let postgres = configuration.postgres
        let place =
            if let socket = postgres.unixSocketPath { "socket \(socket)" } else { "\(postgres.host ?? "?"):\(postgres.port ?? 5432)" }
        self.databaseName = "database \(postgres.database ?? postgres.username) at \(place)"
    }

    /// Runs the connection pool (and the periodic removal of expired messages) until graceful
    /// shutdown, ``close()`` or cancellation; then stops taking calls, waits for those in
    /// progress (each bounded by the timeout) and closes the connections. A mailbox runs once:
    /// a second `run()` throws ``FerryPostgresMailboxError/Code/closed``.
    public func run() async throws {
        guard lifecycle.withLock({ $0.beginRun() }) else {
            throw FerryPostgresMailboxError(.closed, "the mailbox in the \(databaseName) has already run or is closed")
        }
        // The pool runs outside this task's graceful-shutdown scope: PostgresClient would stop at
        // once on graceful shutdown, failing the calls the mailbox still lets finish. A child task
        // would inherit that scope, so it is a detached task, owned here all the same: every way
        // out of this function cancels it and awaits it below.
        let client = self.client
        let pool = Task.detached { await client.run() }
        let stopRequested = self.stopRequested
        await withTaskCancellationOrGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                if let interval = configuration.removeExpiredInterval {
                    group.addTask { await self.removeExpiredPeriodically(every: interval) }
                }
                await stopRequested.wait()
                group.cancelAll()
            }
        } onCancelOrGracefulShutdown: {
            stopRequested.open()
        }
        if Task.isCancelled { pool.cancel() }
        await waitForCalls()
        pool.cancel()
        await pool.value
        lifecycle.withLock { $0.finishClose() }
        closed.open()
    }

    /// Stops taking calls, waits for those in progress, closes the connections and returns once
    /// ``run()`` has returned. Later calls throw ``FerryPostgresMailboxError/Code/closed``.
    /// Closing twice, or closing a mailbox that never ran, is harmless.
    public func close() async {
        if lifecycle.withLock({ $0.closeIdle() }) {
            stopRequested.open()
            closed.open()
            return
        }
        stopRequested.open()
        await closed.wait()
    }

    /// Runs `body` with a running mailbox, and closes it when `body` returns or throws.
    public static func withMailbox<Result: Sendable>(
        configuration: Configuration,
        now: @escaping @Sendable () -> Date = Date.init,
        logger: Logger = Logger(label: "ferry.push.postgres"),
        _ body: (FerryPostgresMailbox) async throws -> Result
    ) async throws -> Result {
        let mailbox = FerryPostgresMailbox(configuration: configuration, now: now, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await mailbox.run() }
            let result: Swift.Result<Result, any Error>
            do {
                result = .success(try await body(mailbox))
            } catch {
                result = .failure(error)
            }
            await mailbox.close()
            try await group.waitForAll()
            return try result.get()
        }
    }

    private func waitForCalls() async {
        guard lifecycle.withLock({ $0.beginClosing() }) else { return }
        await withCheckedContinuation { continuation in
            lifecycle.withLock { $0.waitForCalls(continuation) }?.resume()
        }
    }

    private func removeExpiredPeriodically(every interval: Duration) async {
        while true {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return
            }
            do {
                let removed = try await removeExpired()
                if removed > 0 { logger.debug("removed expired messages", metadata: ["count": "\(removed)"]) }
            } catch {
                logger.warning("cannot remove expired messages", metadata: ["error": "\(error)"])
            }
        }
    }

    /// A user name as error messages show it: at most 64 characters, quoted.
    static func shown(_ user: String) -> String {
        let visible = String(user.prefix(64)).replacingOccurrences(of: "\0", with: "\\0")
        return user.count <= 64 ? "\"\(visible)\"" : "\"\(visible)…\" (\(user.utf8.count) bytes)"
    }
}
