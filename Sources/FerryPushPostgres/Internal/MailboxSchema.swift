import Logging
import PostgresNIO

/// The tables, created on first use.
///
/// `ferry_mailbox_streams` holds one row per user: its epoch and the last offset given out.
/// `ferry_mailbox_messages`' primary key is the (user, offset) index every read and trim walks.
/// `ferry_mailbox_schema` holds the schema version, so a database written by a newer version is
/// refused rather than misread.
enum MailboxSchema {
    /// The version of the tables below; a database with a higher one is refused.
    static let version: Int32 = 1
    /// The advisory lock that serialises schema creation between processes ("FRYM").
    static let lockKey: Int64 = 0x4652_594D

    static let statements = [
        """
        CREATE TABLE IF NOT EXISTS ferry_mailbox_schema (
            version INTEGER NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS ferry_mailbox_streams (
            user_id TEXT PRIMARY KEY,
            epoch TEXT NOT NULL,
            last_offset BIGINT NOT NULL
        )
        """,
        """
        CREATE TABLE IF NOT EXISTS ferry_mailbox_messages (
            user_id TEXT NOT NULL,
            "offset" BIGINT NOT NULL,
            route TEXT NOT NULL,
            codec SMALLINT NOT NULL,
            body BYTEA NOT NULL,
            stored_at_ms BIGINT NOT NULL,
            PRIMARY KEY (user_id, "offset")
        )
        """,
    ]

    /// Creates the tables if they are missing, in one transaction under an advisory lock (two
    /// processes starting on an empty database at once would otherwise race in
    /// `CREATE TABLE IF NOT EXISTS`), and checks the version of tables already there.
    static func prepare(_ connection: PostgresConnection, logger: Logger, database: String) async throws {
        try await connection.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger)
            for statement in statements {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
            var found: Int32?
            for row in try await connection.query("SELECT max(version) FROM ferry_mailbox_schema", logger: logger).collect() {
                found = try row.decode(Int32?.self)
            }
            switch found {
            case nil:
                try await connection.query("INSERT INTO ferry_mailbox_schema (version) VALUES (\(version))", logger: logger)
            case let stored? where stored > version:
                throw FerryPostgresMailboxError(
                    .incompatibleSchema, "\(database) has mailbox schema version \(stored); this version reads version \(version)")
            default:
                break
            }
        }
    }
}
