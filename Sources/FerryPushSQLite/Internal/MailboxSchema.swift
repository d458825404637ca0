import Logging
import SQLiteNIO

/// The tables, and how a file is opened and checked before the mailbox uses it.
enum MailboxSchema {
    /// `PRAGMA user_version` of the schema below; a file with a higher one is refused.
    static let version = 1
    /// `PRAGMA application_id` of a mailbox file ("FRYM"), so another program's database is
    /// refused rather than changed.
    static let applicationID = 0x4652_594D

    /// `messages`' primary key is the (user, offset) index every read and trim walks.
    static let statements = [
        """
        CREATE TABLE streams (
            user TEXT PRIMARY KEY NOT NULL,
            epoch TEXT NOT NULL,
            last_offset INTEGER NOT NULL
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE messages (
            user TEXT NOT NULL,
            "offset" INTEGER NOT NULL,
            route TEXT NOT NULL,
            codec INTEGER NOT NULL,
            body BLOB,
            stored_at INTEGER NOT NULL,
            PRIMARY KEY (user, "offset")
        )
        """,
        "PRAGMA application_id = \(applicationID)",
        "PRAGMA user_version = \(version)",
    ]

    /// Opens `path` (creating it if missing) for writing: WAL journal, a full sync at every
    /// commit, the schema in place. Throws ``FerrySQLiteMailboxError`` and leaves no connection
    /// open if the file cannot be used.
    static func openWriter(path: String, logger: Logger) async throws -> SQLiteConnection {
        let connection = try await open(path: path, logger: logger)
        do {
            try await configureWriter(connection, path: path)
            return connection
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// Opens a second connection to the same file for reads: in WAL mode it reads the last
    /// committed state while the writer's transaction is in progress.
    static func openReader(path: String, logger: Logger) async throws -> SQLiteConnection {
        let connection = try await open(path: path, logger: logger)
        do {
            _ = try await connection.rows("PRAGMA query_only = ON")
            return connection
        } catch {
            try? await connection.close()
            throw FerrySQLiteMailboxError(.unreadableFile, "cannot read the mailbox at \(path)", cause: error)
        }
    }

    private static func open(path: String, logger: Logger) async throws -> SQLiteConnection {
        do {
            return try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        } catch {
            throw FerrySQLiteMailboxError(.cannotOpen, "cannot open or create the mailbox file \(path)", cause: error)
        }
    }

    private static func configureWriter(_ connection: SQLiteConnection, path: String) async throws {
        // The first statement that reads the file is the one that finds it is not a database.
        let mode: String
        do {
            mode = try await connection.rows("PRAGMA journal_mode = WAL").first?.text("journal_mode") ?? ""
        } catch {
            throw FerrySQLiteMailboxError(.unreadableFile, "\(path) is not an SQLite database or cannot be read", cause: error)
        }
        guard mode == "wal" else {
            throw FerrySQLiteMailboxError(.cannotOpen, "\(path) cannot use write-ahead logging (journal mode \(mode))")
        }
        do {
            // FULL makes each commit sync the WAL, so a transaction that committed survives a
            // power loss, not only a killed process (NORMAL would sync only at checkpoints).
            // fullfsync asks macOS to flush the drive's cache too; elsewhere it does nothing.
            _ = try await connection.rows("PRAGMA synchronous = FULL")
            _ = try await connection.rows("PRAGMA fullfsync = ON")
            // A multi-row statement inside a transaction keeps a statement journal, a temporary
            // file by default; in memory it costs no write. A larger page cache keeps the index
            // pages of many streams between transactions.
            _ = try await connection.rows("PRAGMA temp_store = MEMORY")
            _ = try await connection.rows("PRAGMA cache_size = -16384")
        } catch {
            throw FerrySQLiteMailboxError(.cannotOpen, "cannot configure \(path)", cause: error)
        }
        try await checkIntegrity(connection, path: path)
        try await createOrCheckSchema(connection, path: path)
    }

    private static func checkIntegrity(_ connection: SQLiteConnection, path: String) async throws {
        let problems: [String]
        do {
            problems = try await connection.rows("PRAGMA quick_check").compactMap { row in
                guard case .text(let text)? = row.columns.first?.data else { return "?" }
                return text == "ok" ? nil : text
            }
        } catch {
            throw FerrySQLiteMailboxError(.unreadableFile, "\(path) is damaged or cannot be read", cause: error)
        }
        guard problems.isEmpty else {
            let sample = problems.prefix(3).joined(separator: "; ")
            throw FerrySQLiteMailboxError(.unreadableFile, "\(path) is damaged: \(sample)")
        }
    }

    private static func createOrCheckSchema(_ connection: SQLiteConnection, path: String) async throws {
        // Read and create under one write lock, so two processes opening a new file at once
        // do not both create the tables.
        do {
            _ = try await connection.rows("BEGIN IMMEDIATE")
        } catch {
            throw FerrySQLiteMailboxError(.cannotOpen, "cannot lock \(path) to check its schema", cause: error)
        }
        do {
            if try await needsSchema(connection, path: path) {
                for statement in statements { _ = try await connection.rows(statement) }
            }
            _ = try await connection.rows("COMMIT")
        } catch {
            _ = try? await connection.rows("ROLLBACK")
            if error is FerrySQLiteMailboxError { throw error }
            throw FerrySQLiteMailboxError(.cannotOpen, "cannot create the mailbox tables in \(path)", cause: error)
        }
    }

    /// Whether the file is new (no tables, no marks); throws if it is something else than a
    /// mailbox of this schema.
    private static func needsSchema(_ connection: SQLiteConnection, path: String) async throws -> Bool {
        let version = try await connection.rows("PRAGMA user_version").first?.column("user_version")?.integer ?? 0
        let application = try await connection.rows("PRAGMA application_id").first?.column("application_id")?.integer ?? 0
        let tables = try await connection.rows("SELECT count(*) AS tables FROM sqlite_schema").first?.column("tables")?.integer ?? 0
        if version == Self.version, application == applicationID { return false }
        if version == 0, application == 0, tables == 0 { return true }
        if application != applicationID {
            throw FerrySQLiteMailboxError(.unreadableFile, "\(path) is an SQLite database of another program, not a Ferry mailbox")
        }
        throw FerrySQLiteMailboxError(
            .unreadableFile, "\(path) has mailbox schema version \(version); this version reads version \(Self.version)")
    }
}
