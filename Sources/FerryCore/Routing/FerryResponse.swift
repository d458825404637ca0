import NIOCore

/// What a route produces for a CALL: the reply status, meta and body. Middleware sees and may
/// change it on the way out.
public struct FerryResponse: Sendable {
    /// The reply status.
    public var status: FerryStatus
    /// The reply metadata.
    public var meta: FerryMeta
    /// The codec of ``body``.
    public var bodyCodec: FerryCodecID
    /// The encoded body.
    public var body: ByteBuffer

    /// Creates a response.
    public init(status: FerryStatus = .ok, meta: FerryMeta = FerryMeta(), bodyCodec: FerryCodecID = .none, body: ByteBuffer = ByteBuffer()) {
        self.status = status
        self.meta = meta
        self.bodyCodec = bodyCodec
        self.body = body
    }
}
