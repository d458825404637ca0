import Ferry
import FerryPush
import SQLiteNIO

/// Reads streams on the reader connection, each with one statement (one consistent snapshot).
struct MailboxReader: Sendable {
    let connection: SQLiteConnection

    struct Page {
        var page: FerryStreamPage
        /// Expired messages of the stream are still on disk.
        var hasExpiredMessages: Bool
    }

    /// Up to `limit` live messages after `offset`, or nil if the stream does not exist.
    func read(_ user: String, after offset: UInt64, limit: Int, expiry: Int64) async throws -> Page? {
        // The LEFT JOIN keeps the stream's row when no message matches; `live_from` skips an
        // expired prefix the next transaction has not deleted yet.
        let rows = try await connection.rows(
            """
            WITH s AS (
                SELECT epoch, last_offset,
                    coalesce((SELECT "offset" FROM messages WHERE user = ?1 AND stored_at >= ?2
                        ORDER BY "offset" LIMIT 1), last_offset + 1) AS live_from,
                    (SELECT min("offset") FROM messages WHERE user = ?1) AS first_stored
                FROM streams WHERE user = ?1)
            SELECT s.epoch AS epoch, s.last_offset AS last_offset, s.live_from AS live_from,
                s.first_stored AS first_stored, m."offset" AS "offset", m.route AS route, m.codec AS codec,
                m.body AS body, m.stored_at AS stored_at
            FROM s LEFT JOIN messages m ON m.user = ?1 AND m."offset" > max(?3, s.live_from - 1)
            ORDER BY m."offset" LIMIT ?4
            """,
            [.text(user), .integer(SQLiteInt64(expiry)), .offset(min(offset, UInt64(Int64.max))), .integer(max(1, limit))])
        guard let first = rows.first else { return nil }
        let epoch = try first.text("epoch")
        let lastOffset = try first.offset("last_offset")
        var messages: [FerryStoredMessage] = []
        for row in rows.prefix(max(0, limit)) {
            guard let messageOffset = try row.optionalOffset("offset") else { break }
            guard case .integer(let codec)? = row.column("codec"), let codecByte = UInt8(exactly: codec),
                case .integer(let storedAt)? = row.column("stored_at")
            else { throw MailboxFormatError(column: "codec") }
            let entry = FerryMailboxEntry(route: try row.text("route"), codec: FerryCodecID(rawValue: codecByte), body: try row.blob("body"))
            messages.append(FerryStoredMessage(offset: messageOffset, entry: entry, storedAt: StoredTime.date(Int64(storedAt))))
        }
        // As the in-memory mailbox counts: what is gone between the offset asked for and the
        // first message kept (or the end of the stream).
        let firstKept = messages.first?.offset ?? (lastOffset + 1)
        let lost = offset < lastOffset ? firstKept - min(offset + 1, firstKept) : 0
        let firstStored = try first.optionalOffset("first_stored")
        let liveFrom = try first.offset("live_from")
        return Page(
            page: FerryStreamPage(epoch: epoch, messages: messages, lost: lost, lastOffset: lastOffset),
            hasExpiredMessages: firstStored.map { $0 < liveFrom } ?? false)
    }

    /// The stream's position, or nil if it does not exist.
    func position(of user: String) async throws -> FerryStreamPosition? {
        let rows = try await connection.rows("SELECT epoch, last_offset FROM streams WHERE user = ?1", [.text(user)])
        guard let row = rows.first else { return nil }
        return FerryStreamPosition(epoch: try row.text("epoch"), offset: try row.offset("last_offset"))
    }
}
