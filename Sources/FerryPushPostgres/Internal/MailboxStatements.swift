import Ferry
import FerryPush
import Foundation
import Logging
import NIOCore
import PostgresNIO

/// The statements of each call, on one leased connection.
struct MailboxStatements: Sendable {
    let limits: FerryMailboxLimits
    let logger: Logger

    /// Appends in one transaction. The first statement adds the count to the stream's
    /// `last_offset` (creating the row if it is new) and so locks that row until the commit:
    /// concurrent appends for the same user wait for each other there and get consecutive,
    /// gap-free ranges (a rolled back append gives its range back with the row). The second
    /// statement, whose snapshot is taken after the lock is held and so sees every message
    /// committed before, inserts the messages and deletes those over the cap or expired.
    func append(
        _ entries: [FerryMailboxEntry], to user: String, storedAt: Int64, expiry: Int64, on connection: PostgresConnection
    ) async throws -> FerryAppendResult {
        try await connection.withTransaction(logger: logger) { connection in
            let count = Int64(entries.count)
            let newEpoch = UUID().uuidString.lowercased()
            let rows = try await connection.query(
                """
                INSERT INTO ferry_mailbox_streams AS s (user_id, epoch, last_offset) VALUES (\(user), \(newEpoch), \(count))
                ON CONFLICT (user_id) DO UPDATE SET last_offset = s.last_offset + excluded.last_offset
                RETURNING s.epoch, s.last_offset
                """, logger: logger
            ).collect()
            guard let row = rows.first else { throw MailboxFormatError(what: "the stream row was not returned") }
            let (epoch, lastOffset) = try row.decode((String, Int64).self)
            let first = lastOffset - count + 1
            // Messages over the cap at once are never written.
            let capStart = lastOffset + 1 - min(Int64(max(0, limits.maximumMessages)), lastOffset)
            let skipped = Int(min(max(0, capStart - first), count))
            let kept = entries.dropFirst(skipped)
            // The oldest offset kept: past the cap, and not before the oldest live message
            // stored (streams lose a prefix, never a middle; new messages are live).
            try await connection.query(
                """
                WITH kept AS (
                    SELECT GREATEST(\(capStart)::int8, COALESCE(
                        (SELECT min("offset") FROM ferry_mailbox_messages
                            WHERE user_id = \(user) AND "offset" < \(first)::int8 AND stored_at_ms >= \(expiry)::int8),
                        \(first)::int8)) AS kept_from
                ),
                inserted AS (
                    INSERT INTO ferry_mailbox_messages (user_id, "offset", route, codec, body, stored_at_ms)
                    SELECT \(user), \(first + Int64(skipped))::int8 - 1 + m.n, m.route, m.codec, m.body, \(storedAt)::int8
                    FROM unnest(\(kept.map(\.route))::text[], \(kept.map { Int16($0.codec.rawValue) })::int2[],
                        \(kept.map(\.body))::bytea[]) WITH ORDINALITY AS m(route, codec, body, n)
                )
                DELETE FROM ferry_mailbox_messages USING kept
                WHERE user_id = \(user) AND "offset" < kept.kept_from
                """, logger: logger)
            return FerryAppendResult(epoch: epoch, offsets: UInt64(first)...UInt64(lastOffset))
        }
    }

    /// Up to `limit` live messages after `offset`, in one statement (one snapshot), or nil if
    /// the stream does not exist.
    func read(_ user: String, after offset: UInt64, limit: Int, expiry: Int64, on connection: PostgresConnection) async throws
        -> FerryStreamPage?
    {
        let after = Int64(min(offset, UInt64(Int64.max)))
        // The LEFT JOIN keeps the stream's row when no message matches; `live_from` skips an
        // expired prefix not deleted yet.
        let rows = try await connection.query(
            """
            WITH s AS (
                SELECT epoch, last_offset,
                    COALESCE((SELECT "offset" FROM ferry_mailbox_messages WHERE user_id = \(user) AND stored_at_ms >= \(expiry)::int8
                        ORDER BY "offset" LIMIT 1), last_offset + 1) AS live_from
                FROM ferry_mailbox_streams WHERE user_id = \(user))
            SELECT s.epoch, s.last_offset, m."offset", m.route, m.codec, m.body, m.stored_at_ms
            FROM s LEFT JOIN ferry_mailbox_messages m ON m.user_id = \(user) AND m."offset" > GREATEST(\(after)::int8, s.live_from - 1)
            ORDER BY m."offset" LIMIT \(Int64(max(1, limit)))
            """, logger: logger
        ).collect()
        guard let first = rows.first else { return nil }
        let (epoch, lastOffset) = try first.decode((String, Int64).self)
        var messages: [FerryStoredMessage] = []
        for row in rows.prefix(max(0, limit)) {
            let (_, _, messageOffset, route, codec, body, storedAt) = try row.decode(
                (String, Int64, Int64?, String?, Int16?, ByteBuffer?, Int64?).self)
            guard let messageOffset else { break }
            guard let route, let codec, let codecByte = UInt8(exactly: codec), let storedAt else {
                throw MailboxFormatError(what: "a message of \(FerryPostgresMailbox.shown(user)) has NULL or out of range columns")
            }
            let entry = FerryMailboxEntry(route: route, codec: FerryCodecID(rawValue: codecByte), body: body ?? ByteBuffer())
            messages.append(FerryStoredMessage(offset: UInt64(messageOffset), entry: entry, storedAt: StoredTime.date(storedAt)))
        }
        // As the in-memory mailbox counts: what is gone between the offset asked for and the
        // first message kept (or the end of the stream).
        let last = UInt64(lastOffset)
        let firstKept = messages.first?.offset ?? (last + 1)
        let lost = offset < last ? firstKept - min(offset + 1, firstKept) : 0
        return FerryStreamPage(epoch: epoch, messages: messages, lost: lost, lastOffset: last)
    }

    /// The stream's position, or nil if it does not exist.
    func position(of user: String, on connection: PostgresConnection) async throws -> FerryStreamPosition? {
        let rows = try await connection.query(
            "SELECT epoch, last_offset FROM ferry_mailbox_streams WHERE user_id = \(user)", logger: logger
        ).collect()
        guard let row = rows.first else { return nil }
        let (epoch, lastOffset) = try row.decode((String, Int64).self)
        return FerryStreamPosition(epoch: epoch, offset: UInt64(lastOffset))
    }

    /// Creates the stream with a new epoch unless it exists (another caller may create it at
    /// the same moment: the first insert wins and both then read its epoch).
    func createStream(_ user: String, on connection: PostgresConnection) async throws {
        let epoch = UUID().uuidString.lowercased()
        try await connection.query(
            """
            INSERT INTO ferry_mailbox_streams (user_id, epoch, last_offset) VALUES (\(user), \(epoch), 0)
            ON CONFLICT (user_id) DO NOTHING
            """, logger: logger)
    }

    /// Deletes every stream's expired prefix in one statement; returns how many messages it
    /// deleted. Appends committing meanwhile are safe: their messages are past the last offset
    /// this statement's snapshot saw, so never before a cut.
    func removeExpired(expiry: Int64, on connection: PostgresConnection) async throws -> Int {
        let rows = try await connection.query(
            """
            WITH stale AS (
                SELECT DISTINCT user_id FROM ferry_mailbox_messages WHERE stored_at_ms < \(expiry)::int8
            ),
            cuts AS (
                SELECT s.user_id, COALESCE(
                    (SELECT min("offset") FROM ferry_mailbox_messages m
                        WHERE m.user_id = s.user_id AND m.stored_at_ms >= \(expiry)::int8),
                    s.last_offset + 1) AS kept_from
                FROM ferry_mailbox_streams s JOIN stale USING (user_id)
            ),
            deleted AS (
                DELETE FROM ferry_mailbox_messages m USING cuts
                WHERE m.user_id = cuts.user_id AND m."offset" < cuts.kept_from
                RETURNING 1
            )
            SELECT count(*) FROM deleted
            """, logger: logger
        ).collect()
        return try rows.first.map { Int(try $0.decode(Int64.self)) } ?? 0
    }
}

/// A row whose columns do not hold what the schema says: the tables were changed by hand.
struct MailboxFormatError: Error, CustomStringConvertible {
    var what: String
    var description: String { "unexpected data in the mailbox tables: \(what)" }
}
