import NIOCore

/// The body codecs a peer knows, by id. JSON, protobuf, plain and form are registered by default.
///
/// ```swift
/// var codecs = FerryCodecRegistry.standard
/// codecs.register(MyXMLCodec())
/// ```
public struct FerryCodecRegistry: Sendable {
    private var codecs: [FerryCodecID: any FerryCodec]

    /// A registry with no codecs.
    public static var empty: FerryCodecRegistry { FerryCodecRegistry(codecs: [:]) }

    /// A registry with the json, protobuf, plain and form codecs.
    public static var standard: FerryCodecRegistry {
        var registry = FerryCodecRegistry.empty
        registry.register(FerryJSONCodec())
        registry.register(FerryProtobufCodec())
        registry.register(FerryPlainCodec())
        registry.register(FerryFormCodec())
        return registry
    }

    private init(codecs: [FerryCodecID: any FerryCodec]) { self.codecs = codecs }

    /// Adds `codec`, replacing any codec with the same id.
    public mutating func register(_ codec: any FerryCodec) {
        codecs[codec.id] = codec
    }

    /// The codec registered for `id`, if any.
    public func codec(for id: FerryCodecID) -> (any FerryCodec)? { codecs[id] }

    /// The codec whose ``FerryCodec/name`` is `name`, if any.
    public func codec(named name: String) -> (any FerryCodec)? {
        codecs.values.first { $0.name == name }
    }

    /// Encodes `value` with the codec `id`. A `ByteBuffer` passes through untouched with any id.
    public func encode<Value>(_ value: Value, codec id: FerryCodecID, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> ByteBuffer {
        if let raw = value as? ByteBuffer { return raw }
        guard let codec = codecs[id] else { throw FerryCodecError.unknownCodec(id) }
        // Empty until the codec writes: a codec that makes its own buffer (protobuf) replaces it.
        var buffer = allocator.buffer(capacity: 0)
        try codec.encode(value, into: &buffer)
        return buffer
    }

    /// Decodes a `Value` from `body` with the codec `id`. A `ByteBuffer` passes through untouched.
    public func decode<Value>(_ type: Value.Type, from body: ByteBuffer, codec id: FerryCodecID) throws -> Value {
        if Value.self == ByteBuffer.self { return body as! Value }
        guard let codec = codecs[id] else { throw FerryCodecError.unknownCodec(id) }
        return try codec.decode(type, from: body)
    }
}
