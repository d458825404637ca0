import Foundation
import Synchronization

/// A mailbox in memory: fast, and gone with the process (each start is a new epoch for every
/// stream). For tests and for pushes that need not survive a restart.
public final class FerryMemoryMailbox: FerryMailbox {
    private struct Stream {
        var epoch = makeEpoch()
        var lastOffset: UInt64 = 0
        var messages: [FerryStoredMessage] = []

        /// Drops what is over the cap or expired.
        mutating func trim(_ limits: FerryMailboxLimits, now: Date) {
            let expiry = limits.expiry(at: now)
            var drop = max(0, messages.count - limits.maximumMessages)
            while drop < messages.count, messages[drop].storedAt < expiry { drop += 1 }
            if drop > 0 { messages.removeFirst(drop) }
        }
    }

    /// What each stream keeps.
    public let limits: FerryMailboxLimits
    private let now: @Sendable () -> Date
    private let streams = Mutex<[String: Stream]>([:])

    /// Creates a mailbox. `now` tells the time for the time to live (tests pass their own).
    public init(limits: FerryMailboxLimits = FerryMailboxLimits(), now: @escaping @Sendable () -> Date = Date.init) {
        self.limits = limits
        self.now = now
    }

    public func append(_ messages: [FerryMailboxEntry], to user: String) async throws -> FerryAppendResult {
        precondition(!messages.isEmpty, "nothing to append")
        let time = now()
        return streams.withLock { streams in
            var stream = streams[user] ?? Stream()
            let first = stream.lastOffset + 1
            for entry in messages {
                stream.lastOffset += 1
                stream.messages.append(FerryStoredMessage(offset: stream.lastOffset, entry: entry, storedAt: time))
            }
            stream.trim(limits, now: time)
            streams[user] = stream
            return FerryAppendResult(epoch: stream.epoch, offsets: first...stream.lastOffset)
        }
    }

    public func read(_ user: String, after offset: UInt64, limit: Int) async throws -> FerryStreamPage {
        let time = now()
        return streams.withLock { streams in
            var stream = streams[user] ?? Stream()
            stream.trim(limits, now: time)
            streams[user] = stream
            let start = stream.messages.firstIndex { $0.offset > offset } ?? stream.messages.endIndex
            let page = Array(stream.messages[start...].prefix(max(0, limit)))
            let firstKept = page.first?.offset ?? (stream.lastOffset + 1)
            let lost = offset < stream.lastOffset ? firstKept - min(offset + 1, firstKept) : 0
            return FerryStreamPage(epoch: stream.epoch, messages: page, lost: lost, lastOffset: stream.lastOffset)
        }
    }

    public func position(of user: String) async throws -> FerryStreamPosition {
        streams.withLock { streams in
            let stream = streams[user] ?? Stream()
            streams[user] = stream
            return FerryStreamPosition(epoch: stream.epoch, offset: stream.lastOffset)
        }
    }
}
