/// Per-call settings for a CALL or PUSH.
///
/// ```swift
/// let sum: Int = try await session.call("/math/add", args, options: .timeout(.seconds(1)))
/// var options = FerryCallOptions(meta: ["trace": "abc"], filters: [.gzip])
/// ```
public struct FerryCallOptions: Sendable {
    /// How long to wait for the reply; nil uses the peer's default call timeout.
    public var timeout: Duration?
    /// Metadata sent with the message.
    public var meta: FerryMeta
    /// The body codec; nil uses the peer's default codec.
    public var codec: FerryCodecID?
    /// The codec the reply should use (sent as `X-Accept-Body-Codec`); nil leaves it to the peer.
    public var acceptCodec: FerryCodecID?
    /// Transfer filters for the frame, outer-most first; the reply uses the same ones.
    public var filters: [FerryFilterID]

    /// Creates options; every field defaults to "use the peer's setting".
    public init(
        timeout: Duration? = nil,
        meta: FerryMeta = FerryMeta(),
        codec: FerryCodecID? = nil,
        acceptCodec: FerryCodecID? = nil,
        filters: [FerryFilterID] = []
    ) {
        self.timeout = timeout
        self.meta = meta
        self.codec = codec
        self.acceptCodec = acceptCodec
        self.filters = filters
    }

    /// Options with only a timeout.
    public static func timeout(_ timeout: Duration) -> FerryCallOptions {
        FerryCallOptions(timeout: timeout)
    }

    /// The meta key that carries the accepted reply codec as a decimal id.
    public static let acceptCodecMetaKey = "X-Accept-Body-Codec"
}
