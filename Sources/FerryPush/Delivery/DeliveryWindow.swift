/// What one session has been sent of its user's stream and what it has acknowledged: a value
/// type, decided without I/O, that the session's ``DeliveryStream`` drives.
///
/// Messages go out in offset order, at most ``window`` unacknowledged at once. Acks are
/// cumulative ("processed everything through N"). When the oldest unacknowledged message has
/// waited ``resendAfter``, everything from it on is sent again (go-back-N): the client drops
/// what it already has by offset.
struct DeliveryWindow: Sendable {
    /// The stream's epoch this window counts in.
    private(set) var epoch: String
    /// The next offset to send.
    private(set) var next: UInt64
    /// Everything through this offset is acknowledged.
    private(set) var acknowledged: UInt64
    /// The last offset known to be stored.
    private(set) var known: UInt64
    /// Sent and not acknowledged, oldest first: offset and when it was sent.
    private(set) var inflight: [(offset: UInt64, sentAt: Duration)] = []
    /// Messages found lost (dropped by the cap or the time to live) not yet told to the client.
    private(set) var pendingLost: UInt64 = 0
    /// The highest offset ever sent in this epoch (a resend does not lower it).
    private(set) var highestSent: UInt64
    /// Go-back-N rounds so far.
    private(set) var resends = 0
    let window: Int
    let resendAfter: Duration

    /// A window that starts sending at `next`, with messages stored up to `known`.
    init(epoch: String, next: UInt64, known: UInt64, window: Int, resendAfter: Duration) {
        self.epoch = epoch
        self.next = max(next, 1)
        self.acknowledged = self.next - 1
        self.highestSent = self.next - 1
        self.known = known
        self.window = max(window, 1)
        self.resendAfter = resendAfter
    }

    /// What the stream should do now.
    enum Action: Equatable {
        /// Read up to `limit` messages after `offset` and send them.
        case read(after: UInt64, limit: Int)
        /// Nothing to send: wait for news, or until `deadline` (a resend is due then).
        case wait(deadline: Duration?)
    }

    /// The next step at time `now`: a resend that is due starts over from the oldest
    /// unacknowledged message.
    mutating func nextAction(now: Duration) -> Action {
        if let oldest = inflight.first, oldest.sentAt + resendAfter <= now {
            next = oldest.offset
            inflight.removeAll()
            resends += 1
        }
        let room = window - inflight.count
        if room > 0 && next <= known {
            return .read(after: next - 1, limit: room)
        }
        return .wait(deadline: inflight.first.map { $0.sentAt + resendAfter })
    }

    /// More messages were stored, up to `offset`.
    mutating func stored(through offset: UInt64) {
        known = max(known, offset)
    }

    /// A read found `lost` messages gone before what it returned, and the stream ending at
    /// `lastOffset`.
    mutating func read(lost: UInt64, lastOffset: UInt64, firstReturned: UInt64?) {
        known = max(known, lastOffset)
        guard lost > 0 else { return }
        pendingLost += lost
        // Skip the gap: the next message to send is the first one that is still there.
        let resumeAt = firstReturned ?? (lastOffset + 1)
        if resumeAt > next {
            acknowledged = max(acknowledged, resumeAt - 1)
            highestSent = max(highestSent, resumeAt - 1)
            next = resumeAt
            inflight.removeAll { $0.offset < resumeAt }
        }
    }

    /// The message at `offset` was written to the client at `now`; returns the lost count to
    /// tell the client with it (reset).
    mutating func sent(_ offset: UInt64, at now: Duration) -> UInt64 {
        inflight.append((offset, now))
        next = max(next, offset + 1)
        highestSent = max(highestSent, offset)
        defer { pendingLost = 0 }
        return pendingLost
    }

    /// Why an ack is refused.
    enum AckRefusal: Error, Equatable {
        case otherEpoch(String)
        case notSent(UInt64)
    }

    /// The client processed everything through `offset` of `epoch`.
    mutating func acknowledge(epoch: String, through offset: UInt64) -> Result<Void, AckRefusal> {
        guard epoch == self.epoch else { return .failure(.otherEpoch(epoch)) }
        guard offset <= highestSent else { return .failure(.notSent(offset)) }
        guard offset > acknowledged else { return .success(()) }
        acknowledged = offset
        inflight.removeAll { $0.offset <= offset }
        return .success(())
    }

    /// The stream's history was lost (a new epoch): start over from its first message.
    mutating func restart(epoch: String, known: UInt64) {
        self.epoch = epoch
        next = 1
        acknowledged = 0
        highestSent = 0
        self.known = known
        inflight.removeAll()
    }
}
