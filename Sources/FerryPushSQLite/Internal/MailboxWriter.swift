import FerryPush
import Foundation
import SQLiteNIO

/// Writes one group-commit batch as one transaction on the writer connection.
struct MailboxWriter: Sendable {
    let connection: SQLiteConnection
    let limits: FerryMailboxLimits

    /// A stream as the transaction sees it: as loaded, then as the batch changes it.
    private struct Stream {
        var epoch: String
        var lastOffset: UInt64
        /// As on disk when the transaction started (nil: the stream is new).
        var storedLastOffset: UInt64?
        /// The oldest message on disk.
        var firstStored: UInt64?
        /// The oldest message on disk that has not expired; with the ones before it, every
        /// message before it is expired too (streams lose a prefix, never a middle).
        var firstLive: UInt64?

        static func new() -> Stream {
            Stream(epoch: UUID().uuidString.lowercased(), lastOffset: 0, storedLastOffset: nil)
        }

        /// The oldest offset kept after the cap and the time to live.
        func keptFrom(_ limits: FerryMailboxLimits) -> UInt64 {
            let capStart = lastOffset + 1 - min(UInt64(max(0, limits.maximumMessages)), lastOffset)
            // Messages of this batch are new, so live; if none on disk is, the batch's first is.
            let liveStart = firstLive ?? ((storedLastOffset ?? 0) + 1)
            return max(capStart, liveStart)
        }
    }

    private struct NewMessage {
        var user: String
        var offset: UInt64
        var entry: FerryMailboxEntry
        var storedAt: Int64
    }

    /// Writes `operations` (in order) and trims `staleUsers`, in one transaction; returns one
    /// result per operation. Throws, with nothing written, if any statement fails.
    func write(_ operations: [WriteOperation], staleUsers: Set<String>, expiry: Int64) async throws -> [WriteResult] {
        _ = try await connection.rows("BEGIN IMMEDIATE")
        do {
            let results = try await writeInTransaction(operations, staleUsers: staleUsers, expiry: expiry)
            _ = try await connection.rows("COMMIT")
            return results
        } catch {
            // After a failed COMMIT SQLite may have rolled back already; this then fails harmlessly.
            _ = try? await connection.rows("ROLLBACK")
            throw error
        }
    }

    private func writeInTransaction(
        _ operations: [WriteOperation], staleUsers: Set<String>, expiry: Int64
    ) async throws -> [WriteResult] {
        var users = staleUsers
        var sweeps = false
        for operation in operations {
            switch operation {
            case .append(let user, _, _), .createStream(let user): users.insert(user)
            case .removeExpired: sweeps = true
            }
        }
        var streams = try await loadStreams(Array(users), expiry: expiry)
        if sweeps {
            for (user, stream) in try await loadStreamsWithExpiredMessages(expiry: expiry) where streams[user] == nil {
                streams[user] = stream
            }
        }

        var results: [WriteResult] = []
        var newMessages: [NewMessage] = []
        for operation in operations {
            switch operation {
            case .append(let user, let entries, let storedAt):
                var stream = streams[user] ?? .new()
                let first = stream.lastOffset + 1
                for entry in entries {
                    stream.lastOffset += 1
                    newMessages.append(NewMessage(user: user, offset: stream.lastOffset, entry: entry, storedAt: storedAt))
                }
                streams[user] = stream
                results.append(.appended(FerryAppendResult(epoch: stream.epoch, offsets: first...stream.lastOffset)))
            case .createStream(let user):
                let stream = streams[user] ?? .new()
                streams[user] = stream
                results.append(.position(FerryStreamPosition(epoch: stream.epoch, offset: stream.lastOffset)))
            case .removeExpired:
                results.append(.removed(0))
            }
        }

        let keptFrom = streams.mapValues { $0.keptFrom(limits) }
        var cuts: [(user: String, keptFrom: UInt64)] = []
        var removed = 0
        for (user, stream) in streams {
            guard let first = stream.firstStored, let stored = stream.storedLastOffset, first < keptFrom[user]! else { continue }
            cuts.append((user, keptFrom[user]!))
            removed += Int(min(keptFrom[user]!, stored + 1) - first)
        }
        // Messages over the cap at once are never written.
        newMessages.removeAll { $0.offset < keptFrom[$0.user]! }

        try await saveStreams(streams.filter { $0.value.storedLastOffset != $0.value.lastOffset })
        try await insert(newMessages)
        try await delete(cuts)
        return results.map { result in
            if case .removed = result { return .removed(removed) }
            return result
        }
    }

    private static let streamColumns = """
        SELECT s.user AS user, s.epoch AS epoch, s.last_offset AS last_offset,
            (SELECT min("offset") FROM messages m WHERE m.user = s.user) AS first_stored,
            (SELECT "offset" FROM messages m WHERE m.user = s.user AND m.stored_at >= ?1
                ORDER BY "offset" LIMIT 1) AS first_live
        FROM streams s
        """

    private func loadStreams(_ users: [String], expiry: Int64) async throws -> [String: Stream] {
        var streams: [String: Stream] = [:]
        for chunk in users.chunks(of: 1000) {
            let placeholders = (0..<chunk.count).map { "?\($0 + 2)" }.joined(separator: ", ")
            let rows = try await connection.rows(
                "\(Self.streamColumns) WHERE s.user IN (\(placeholders))", [.integer(SQLiteInt64(expiry))] + chunk.map { .text($0) })
            for row in rows { try streams[row.text("user")] = Self.stream(row) }
        }
        return streams
    }

    private func loadStreamsWithExpiredMessages(expiry: Int64) async throws -> [String: Stream] {
        let rows = try await connection.rows(
            "SELECT * FROM (\(Self.streamColumns)) WHERE first_stored < coalesce(first_live, last_offset + 1)",
            [.integer(SQLiteInt64(expiry))])
        var streams: [String: Stream] = [:]
        for row in rows { try streams[row.text("user")] = Self.stream(row) }
        return streams
    }

    private static func stream(_ row: SQLiteRow) throws -> Stream {
        let lastOffset = try row.offset("last_offset")
        return Stream(
            epoch: try row.text("epoch"), lastOffset: lastOffset, storedLastOffset: lastOffset,
            firstStored: try row.optionalOffset("first_stored"), firstLive: try row.optionalOffset("first_live"))
    }

    private func saveStreams(_ streams: [String: Stream]) async throws {
        for chunk in Array(streams).chunks(of: 1000) {
            let values = (0..<chunk.count).map { _ in "(?, ?, ?)" }.joined(separator: ", ")
            let binds = chunk.flatMap { user, stream -> [SQLiteData] in [.text(user), .text(stream.epoch), .offset(stream.lastOffset)] }
            _ = try await connection.rows(
                """
                INSERT INTO streams (user, epoch, last_offset) VALUES \(values)
                ON CONFLICT (user) DO UPDATE SET last_offset = excluded.last_offset
                """, binds)
        }
    }

    private func insert(_ messages: [NewMessage]) async throws {
        for chunk in messages.chunks(of: 500) {
            let values = (0..<chunk.count).map { _ in "(?, ?, ?, ?, ?, ?)" }.joined(separator: ", ")
            let binds = chunk.flatMap { message -> [SQLiteData] in
                [
                    .text(message.user), .offset(message.offset), .text(message.entry.route),
                    .integer(SQLiteInt64(message.entry.codec.rawValue)), .blob(message.entry.body),
                    .integer(SQLiteInt64(message.storedAt)),
                ]
            }
            _ = try await connection.rows(
                "INSERT INTO messages (user, \"offset\", route, codec, body, stored_at) VALUES \(values)", binds)
        }
    }

    /// Deletes each user's messages before its cut: one index range per user.
    private func delete(_ cuts: [(user: String, keptFrom: UInt64)]) async throws {
        for chunk in cuts.chunks(of: 200) {
            let terms = (0..<chunk.count).map { _ in "(user = ? AND \"offset\" < ?)" }.joined(separator: " OR ")
            let binds = chunk.flatMap { cut -> [SQLiteData] in [.text(cut.user), .offset(cut.keptFrom)] }
            _ = try await connection.rows("DELETE FROM messages WHERE \(terms)", binds)
        }
    }
}

extension Array {
    /// The array in consecutive slices of at most `size` elements.
    func chunks(of size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
