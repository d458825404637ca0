import NIOCore

/// Turns typed values into body bytes and back, for one codec id.
///
/// A codec decides at run time which types it supports (JSON takes `Codable`, protobuf takes
/// SwiftProtobuf messages, …) and throws ``FerryCodecError/unsupportedType(_:codec:)`` for others.
/// Register your own in a ``FerryCodecRegistry``.
public protocol FerryCodec: Sendable {
    /// The id written on the wire.
    var id: FerryCodecID { get }
    /// A short name for logs and the command line, e.g. `json`.
    var name: String { get }
    /// Appends the encoding of `value` to `buffer`.
    func encode<Value>(_ value: Value, into buffer: inout ByteBuffer) throws
    /// Decodes a value of `type` from the readable bytes of `buffer`.
    func decode<Value>(_ type: Value.Type, from buffer: ByteBuffer) throws -> Value
}

/// Why a body could not be encoded or decoded.
public enum FerryCodecError: Error, Sendable, CustomStringConvertible {
    /// No codec is registered for the id.
    case unknownCodec(FerryCodecID)
    /// The codec does not handle the type.
    case unsupportedType(String, codec: String)
    /// The bytes are not a valid encoding.
    case invalidBody(codec: String, reason: String)
    /// The value could not be encoded.
    case encodingFailed(codec: String, reason: String)

    /// A readable form, for logs and error messages.
    public var description: String {
        switch self {
        case .unknownCodec(let id): "unknown body codec \(id)"
        case .unsupportedType(let type, let codec): "codec \(codec) cannot handle \(type)"
        case .invalidBody(let codec, let reason): "invalid \(codec) body: \(reason)"
        case .encodingFailed(let codec, let reason): "cannot encode \(codec) body: \(reason)"
        }
    }
}
