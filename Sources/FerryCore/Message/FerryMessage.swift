import NIOCore

/// One message as it travels between peers: a CALL, REPLY, PUSH, AUTH_CALL or AUTH_REPLY.
///
/// The body stays as bytes until a handler or caller asks for a typed value.
public struct FerryMessage: Equatable, Sendable {
    /// The kind of message.
    public var type: FerryMessageType
    /// The sequence number: the originator's counter; a reply carries the seq of its call.
    public var seq: Int32
    /// The route, e.g. `/math/add`; empty in a reply.
    public var serviceMethod: String
    /// The outcome; OK for calls and pushes.
    public var status: FerryStatus
    /// Ordered metadata.
    public var meta: FerryMeta
    /// The codec of ``body``; ``FerryCodecID/none`` for an empty body.
    public var bodyCodec: FerryCodecID
    /// The body bytes.
    public var body: ByteBuffer
    /// The transfer filters applied to the frame, outer-most first.
    public var filters: [FerryFilterID]

    /// Creates a message.
    public init(
        type: FerryMessageType,
        seq: Int32,
        serviceMethod: String = "",
        status: FerryStatus = .ok,
        meta: FerryMeta = FerryMeta(),
        bodyCodec: FerryCodecID = .none,
        body: ByteBuffer = ByteBuffer(),
        filters: [FerryFilterID] = []
    ) {
        self.type = type
        self.seq = seq
        self.serviceMethod = serviceMethod
        self.status = status
        self.meta = meta
        self.bodyCodec = bodyCodec
        self.body = body
        self.filters = filters
    }
}
