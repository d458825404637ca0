import Ferry

/// The messages of at-least-once delivery between a server (``FerryPushService``) and a client
/// (``FerryPushReceiver``, or the gateway's `ferry.js`).
///
/// 1. The client calls ``resumeRoute`` with the last `(epoch, offset)` it processed (none the
///    first time) and gets a ``Resumed``. From then on the server sends the stream's messages
///    after that offset, in order, then new ones as they are stored.
/// 2. Each message comes as a PUSH to ``deliverRoute``: the body and codec are the message's;
///    the meta says its route (``MetaKey/route``), offset and epoch, and how many messages
///    before it were lost (``MetaKey/lost``), if any.
/// 3. The client calls ``ackRoute`` with an ``Ack``: everything through that offset is
///    processed. Acks are cumulative, so a client may ack every few messages. Messages not
///    acknowledged in time are sent again; the client drops those it has by offset.
public enum FerryPushProtocol {
    /// CALL: start or continue delivery from a position (body: ``Resume``; reply: ``Resumed``).
    public static let resumeRoute = "/ferry/push/resume"
    /// PUSH from the server: one stored message.
    public static let deliverRoute = "/ferry/push/deliver"
    /// CALL: acknowledge through an offset (body: ``Ack``); 400 for an offset never sent or
    /// another epoch.
    public static let ackRoute = "/ferry/push/ack"

    /// The meta keys of a delivery.
    public enum MetaKey {
        /// The route the message was pushed to.
        public static let route = "X-Ferry-Route"
        /// Its offset.
        public static let offset = "X-Ferry-Offset"
        /// Its stream's epoch.
        public static let epoch = "X-Ferry-Epoch"
        /// Messages before it that were lost (dropped by the mailbox's cap or time to live).
        public static let lost = "X-Ferry-Lost"
    }

    /// Where a client resumes: the last message it processed (nil epoch: it has none).
    public struct Resume: Codable, Sendable, Hashable {
        /// The epoch of the last message processed.
        public var epoch: String?
        /// The offset of the last message processed (0: none).
        public var offset: UInt64

        /// Creates a resume request.
        public init(epoch: String? = nil, offset: UInt64 = 0) {
            self.epoch = epoch
            self.offset = offset
        }
    }

    /// The server's answer to ``Resume``.
    public struct Resumed: Codable, Sendable, Hashable {
        /// The stream's epoch now.
        public var epoch: String
        /// The stream's last offset now.
        public var offset: UInt64
        /// Whether the client's epoch is not the stream's: its history is gone and delivery
        /// starts over from the oldest message kept.
        public var epochChanged: Bool
        /// Messages after the client's offset that are gone (cap or time to live).
        public var lost: UInt64

        /// Creates an answer.
        public init(epoch: String, offset: UInt64, epochChanged: Bool, lost: UInt64) {
            self.epoch = epoch
            self.offset = offset
            self.epochChanged = epochChanged
            self.lost = lost
        }
    }

    /// A cumulative acknowledgement.
    public struct Ack: Codable, Sendable, Hashable {
        /// The epoch of the messages acknowledged.
        public var epoch: String
        /// Everything through this offset is processed.
        public var offset: UInt64

        /// Creates an ack.
        public init(epoch: String, offset: UInt64) {
            self.epoch = epoch
            self.offset = offset
        }
    }
}
