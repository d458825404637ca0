import Logging
import NIOCore
import Synchronization

/// What a handler may see and do while it handles one inbound CALL or PUSH: the session (to call
/// or push back), the message, the reply meta and codec, and a logger.
public final class FerryContext: Sendable {
    /// The session the message arrived on.
    public let session: any FerrySessionProtocol
    /// The inbound message (route, seq, meta, codec, body).
    public let message: FerryMessage
    /// A logger with the session and route attached.
    public let logger: Logger
    /// When the caller stops waiting, from its `X-Ferry-Timeout` meta; nil if it sent none.
    /// Calls the handler makes inherit it (see ``FerryDeadline``).
    public let deadline: ContinuousClock.Instant?

    private struct ReplySettings {
        var meta = FerryMeta()
        var codec: FerryCodecID?
    }
    private let reply = Mutex(ReplySettings())

    /// When the message was read: its deadline and its handling time are measured from here.
    package let arrival: ContinuousClock.Instant
    /// The session's codecs, read once: a typed route decodes, chooses and encodes with them.
    package let codecs: FerryCodecRegistry

    /// Creates a context for `message` arriving on `session` now.
    public convenience init(session: any FerrySessionProtocol, message: FerryMessage, logger: Logger) {
        self.init(session: session, message: message, logger: logger, arrival: .now)
    }

    /// Creates a context for `message`, read from `session` at `arrival`.
    package init(session: any FerrySessionProtocol, message: FerryMessage, logger: Logger, arrival: ContinuousClock.Instant) {
        self.session = session
        self.message = message
        self.logger = logger
        self.arrival = arrival
        self.codecs = session.codecs
        self.deadline = FerryDeadline.deadline(from: message.meta, arrival: arrival)
    }

    /// The route of the inbound message.
    public var serviceMethod: String { message.serviceMethod }
    /// The seq of the inbound message.
    public var seq: Int32 { message.seq }
    /// The metadata of the inbound message.
    public var meta: FerryMeta { message.meta }

    /// Metadata to send with the reply.
    public var replyMeta: FerryMeta {
        get { reply.withLock { $0.meta } }
        set { reply.withLock { $0.meta = newValue } }
    }

    /// Adds one pair to the reply metadata.
    public func addReplyMeta(_ key: String, _ value: String) {
        reply.withLock { $0.meta.add(key, value) }
    }

    /// The codec the handler chose for the reply; takes priority over the caller's
    /// `X-Accept-Body-Codec` and the request's own codec.
    public var replyCodec: FerryCodecID? {
        get { reply.withLock { $0.codec } }
        set { reply.withLock { $0.codec = newValue } }
    }

    /// The codec a typed reply is encoded with: the handler's choice, else the caller's accepted
    /// codec (if this side knows it), else the request's codec, else the session default.
    public var resolvedReplyCodec: FerryCodecID {
        if let chosen = replyCodec { return chosen }
        if let accepted = message.meta[FerryCallOptions.acceptCodecMetaKey], let raw = UInt8(accepted),
            raw != 0, codecs.contains(FerryCodecID(rawValue: raw))
        {
            return FerryCodecID(rawValue: raw)
        }
        if message.bodyCodec != .none, codecs.contains(message.bodyCodec) {
            return message.bodyCodec
        }
        return session.defaultCodec
    }
}
