import NIOCore
import SwiftProtobuf

/// How values of one type, fixed when a route is registered, are decoded from and encoded to
/// bodies. When the type is a `SwiftProtobuf.Message`, that is found out once, here, and every
/// message then goes through the registry's message overloads, which skip the protobuf codec's
/// per-message search for the conformance; other types use the unconstrained registry calls.
struct TypedBody<Value>: Sendable {
    private typealias Decode = @Sendable (FerryCodecRegistry, ByteBuffer, FerryCodecID) throws -> Value
    private typealias Encode = @Sendable (FerryCodecRegistry, Value, FerryCodecID) throws -> ByteBuffer

    private let decodeMessage: Decode?
    private let encodeMessage: Encode?

    init() {
        if let messageType = Value.self as? any SwiftProtobuf.Message.Type {
            (decodeMessage, encodeMessage) = Self.messageCoding(messageType)
        } else {
            (decodeMessage, encodeMessage) = (nil, nil)
        }
    }

    /// Decodes a value from `body` with the codec `id` of `codecs`.
    func decode(from body: ByteBuffer, codec id: FerryCodecID, codecs: FerryCodecRegistry) throws -> Value {
        if let decodeMessage { return try decodeMessage(codecs, body, id) }
        return try codecs.decode(Value.self, from: body, codec: id)
    }

    /// Encodes `value` with the codec `id` of `codecs`.
    func encode(_ value: Value, codec id: FerryCodecID, codecs: FerryCodecRegistry) throws -> ByteBuffer {
        if let encodeMessage { return try encodeMessage(codecs, value, id) }
        return try codecs.encode(value, codec: id)
    }

    // `Message` is `Value`: the casts of the closures, made once, always succeed.
    private static func messageCoding<Message: SwiftProtobuf.Message>(_: Message.Type) -> (Decode, Encode) {
        let decode: @Sendable (FerryCodecRegistry, ByteBuffer, FerryCodecID) throws -> Message = { codecs, body, id in
            try codecs.decode(Message.self, from: body, codec: id)
        }
        let encode: @Sendable (FerryCodecRegistry, Message, FerryCodecID) throws -> ByteBuffer = { codecs, value, id in
            try codecs.encode(value, codec: id)
        }
        return (decode as! Decode, encode as! Encode)
    }
}
