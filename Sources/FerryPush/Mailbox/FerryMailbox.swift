import Ferry
import Foundation
import NIOCore

/// Where each user's stream of pushes is kept until it is delivered, or until the stream's cap
/// or time to live drops it.
///
/// A stream is a sequence of messages with offsets 1, 2, 3, … inside an *epoch*. The epoch is an
/// opaque ID that changes only when the stream's history is lost (an in-memory mailbox that
/// restarted, a store that was wiped), so a client that remembers `(epoch, offset)` can tell
/// "nothing missed" from "history gone". Messages dropped by the cap or the time to live do not
/// change the epoch: a read says how many were lost.
///
/// Every implementation passes the same conformance suite (`MailboxConformance` in the tests).
public protocol FerryMailbox: Sendable {
    /// Stores `messages` at the end of `user`'s stream, in order, and returns once they are
    /// stored (durably, for a store that keeps them across restarts). Returns the stream's epoch
    /// and the offsets the messages got.
    func append(_ messages: [FerryMailboxEntry], to user: String) async throws -> FerryAppendResult

    /// Up to `limit` messages of `user`'s stream with offsets above `offset`, oldest first.
    func read(_ user: String, after offset: UInt64, limit: Int) async throws -> FerryStreamPage

    /// The epoch and last offset of `user`'s stream (offset 0 for a stream never written).
    func position(of user: String) async throws -> FerryStreamPosition
}

/// A message to store: the route it is pushed to, and its encoded body.
public struct FerryMailboxEntry: Sendable, Hashable {
    /// The route the client receives it on.
    public var route: String
    /// The body's codec.
    public var codec: FerryCodecID
    /// The encoded body.
    public var body: ByteBuffer

    /// Creates an entry.
    public init(route: String, codec: FerryCodecID, body: ByteBuffer) {
        self.route = route
        self.codec = codec
        self.body = body
    }
}

/// A stored message.
public struct FerryStoredMessage: Sendable, Hashable {
    /// Its offset in the stream's epoch (from 1).
    public var offset: UInt64
    /// The route, codec and body.
    public var entry: FerryMailboxEntry
    /// When it was stored.
    public var storedAt: Date

    /// Creates a stored message.
    public init(offset: UInt64, entry: FerryMailboxEntry, storedAt: Date) {
        self.offset = offset
        self.entry = entry
        self.storedAt = storedAt
    }
}

/// Where a stream stands.
public struct FerryStreamPosition: Sendable, Hashable, Codable {
    /// The stream's epoch.
    public var epoch: String
    /// Its last offset; 0 before its first message.
    public var offset: UInt64

    /// Creates a position.
    public init(epoch: String, offset: UInt64) {
        self.epoch = epoch
        self.offset = offset
    }
}

/// What ``FerryMailbox/append(_:to:)`` stored.
public struct FerryAppendResult: Sendable, Hashable {
    /// The stream's epoch.
    public var epoch: String
    /// The offsets of the messages appended, in order.
    public var offsets: ClosedRange<UInt64>

    /// Creates a result.
    public init(epoch: String, offsets: ClosedRange<UInt64>) {
        self.epoch = epoch
        self.offsets = offsets
    }
}

/// What ``FerryMailbox/read(_:after:limit:)`` found.
public struct FerryStreamPage: Sendable, Hashable {
    /// The stream's epoch.
    public var epoch: String
    /// The messages, oldest first.
    public var messages: [FerryStoredMessage]
    /// Messages after the offset asked for that are gone (dropped by the cap or the time to
    /// live) before the first one returned, or before the end of the stream.
    public var lost: UInt64
    /// The stream's last offset.
    public var lastOffset: UInt64

    /// Creates a page.
    public init(epoch: String, messages: [FerryStoredMessage], lost: UInt64, lastOffset: UInt64) {
        self.epoch = epoch
        self.messages = messages
        self.lost = lost
        self.lastOffset = lastOffset
    }
}

/// How much of each user's stream a mailbox keeps.
public struct FerryMailboxLimits: Sendable, Hashable {
    /// The most messages kept per user; past it the oldest are dropped.
    public var maximumMessages: Int
    /// How long a message is kept.
    public var timeToLive: Duration

    /// Creates limits; by default 1,000 messages for 7 days.
    public init(maximumMessages: Int = 1000, timeToLive: Duration = .seconds(7 * 24 * 3600)) {
        self.maximumMessages = maximumMessages
        self.timeToLive = timeToLive
    }
}

extension FerryMailboxLimits {
    /// The time before which messages have expired, at `now`.
    func expiry(at now: Date) -> Date {
        let (seconds, attoseconds) = timeToLive.components
        return now.addingTimeInterval(-(Double(seconds) + Double(attoseconds) / 1e18))
    }
}

/// A new random epoch ID.
func makeEpoch() -> String {
    UUID().uuidString.lowercased()
}
