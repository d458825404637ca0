import FerryPush
import Foundation
import NIOCore
import SQLiteNIO
import Synchronization

extension SQLiteConnection {
    /// Runs one statement and returns its rows.
    ///
    /// It goes through the futures API on purpose: the async one gives up a statement whose
    /// calling task was cancelled before the thread pool ran it, and a committer that is
    /// cancelled must still write (and end) the transaction other callers wait on.
    func rows(_ sql: String, _ binds: [SQLiteData] = []) async throws -> [SQLiteRow] {
        let collected = RowCollector()
        try await query(sql, binds, logger: logger) { collected.add($0) }.get()
        return collected.rows
    }
}

/// Rows handed over one by one from the thread pool.
private final class RowCollector: Sendable {
    private let collected = Mutex<[SQLiteRow]>([])

    func add(_ row: SQLiteRow) { collected.withLock { $0.append(row) } }

    var rows: [SQLiteRow] { collected.withLock { $0 } }
}

extension SQLiteRow {
    func text(_ column: String) throws -> String {
        guard case .text(let value)? = self.column(column) else { throw MailboxFormatError(column: column) }
        return value
    }

    func offset(_ column: String) throws -> UInt64 {
        guard let value = try optionalOffset(column) else { throw MailboxFormatError(column: column) }
        return value
    }

    /// A non-negative integer column that may be NULL.
    func optionalOffset(_ column: String) throws -> UInt64? {
        switch self.column(column) {
        case .integer(let value)? where value >= 0: UInt64(value)
        case .null?: nil
        default: throw MailboxFormatError(column: column)
        }
    }

    func blob(_ column: String) throws -> ByteBuffer {
        switch self.column(column) {
        case .blob(let value)?: value
        // SQLite stores an empty blob bound from an empty buffer as NULL.
        case .null?: ByteBuffer()
        default: throw MailboxFormatError(column: column)
        }
    }
}

/// A row whose column does not hold what the schema says: the file was changed by hand.
struct MailboxFormatError: Error, CustomStringConvertible {
    var column: String
    var description: String { "unexpected value in column \(column)" }
}

extension SQLiteData {
    static func offset(_ value: UInt64) -> SQLiteData { .integer(SQLiteInt64(value)) }
}
