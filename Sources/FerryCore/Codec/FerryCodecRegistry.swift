import NIOCore
import SwiftProtobuf

/// The body codecs a peer knows, by id. JSON, protobuf, plain and form are registered by default.
///
/// ```swift
/// var codecs = FerryCodecRegistry.standard
/// codecs.register(MyXMLCodec())
/// ```
public struct FerryCodecRegistry: Sendable {
    // A handful of codecs: a scan of their ids is cheaper than hashing one. The ids have an
    // array of their own, so that a lookup compares bytes and copies no existential until it
    // returns one. `codecs[i]` has the id `ids[i]`. Both sit in one immutable object, replaced
    // when a codec is registered: a copy of the registry (one per call made or handled) then
    // counts one reference, not one per array.
    private final class Entries: Sendable {
        let ids: [FerryCodecID]
        let codecs: [any FerryCodec]
        // Whether `p` is Ferry's own protobuf codec, whose work on a message type known at
        // compile time needs no dynamic cast (see the `SwiftProtobuf.Message` overloads below).
        let protobufIsStandard: Bool

        init(ids: [FerryCodecID], codecs: [any FerryCodec]) {
            self.ids = ids
            self.codecs = codecs
            protobufIsStandard = ids.firstIndex(of: .protobuf).map { codecs[$0] is FerryProtobufCodec } ?? false
        }
    }
    private var entries = Entries(ids: [], codecs: [])
    private var ids: [FerryCodecID] { entries.ids }
    private var codecs: [any FerryCodec] { entries.codecs }
    private var protobufIsStandard: Bool { entries.protobufIsStandard }

    /// A registry with no codecs.
    public static var empty: FerryCodecRegistry { FerryCodecRegistry() }

    /// A registry with the json, protobuf, plain and form codecs.
    public static var standard: FerryCodecRegistry {
        var registry = FerryCodecRegistry.empty
        registry.register(FerryJSONCodec())
        registry.register(FerryProtobufCodec())
        registry.register(FerryPlainCodec())
        registry.register(FerryFormCodec())
        return registry
    }

    private init() {}

    /// Adds `codec`, replacing any codec with the same id.
    public mutating func register(_ codec: any FerryCodec) {
        var ids = ids
        var codecs = codecs
        if let index = ids.firstIndex(of: codec.id) {
            codecs[index] = codec
        } else {
            ids.append(codec.id)
            codecs.append(codec)
        }
        entries = Entries(ids: ids, codecs: codecs)
    }

    /// The codec registered for `id`, if any.
    public func codec(for id: FerryCodecID) -> (any FerryCodec)? {
        ids.firstIndex(of: id).map { codecs[$0] }
    }

    /// Whether a codec is registered for `id`.
    public func contains(_ id: FerryCodecID) -> Bool {
        ids.contains(id)
    }

    /// The codec whose ``FerryCodec/name`` is `name`, if any.
    public func codec(named name: String) -> (any FerryCodec)? {
        codecs.first { $0.name == name }
    }

    /// Encodes `value` with the codec `id`. A value of type `ByteBuffer` passes through untouched
    /// with any id.
    public func encode<Value>(_ value: Value, codec id: FerryCodecID, allocator: ByteBufferAllocator = ByteBufferAllocator()) throws -> ByteBuffer {
        try encodeValue(value, codec: id, allocator: allocator)
    }

    // The unconstrained encoding, which the `SwiftProtobuf.Message` overload falls back to.
    private func encodeValue<Value>(_ value: Value, codec id: FerryCodecID, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        // A metadata comparison, where a cast would search for a conversion on every call.
        if Value.self == ByteBuffer.self { return value as! ByteBuffer }
        guard let codec = codec(for: id) else { throw FerryCodecError.unknownCodec(id) }
        // Empty until the codec writes: a codec that makes its own buffer (protobuf) replaces it.
        var buffer = allocator.buffer(capacity: 0)
        try codec.encode(value, into: &buffer)
        return buffer
    }

    /// Decodes a `Value` from `body` with the codec `id`. A `ByteBuffer` passes through untouched.
    public func decode<Value>(_ type: Value.Type, from body: ByteBuffer, codec id: FerryCodecID) throws -> Value {
        try decodeValue(type, from: body, codec: id)
    }

    // The unconstrained decoding, which the `SwiftProtobuf.Message` overload falls back to.
    private func decodeValue<Value>(_ type: Value.Type, from body: ByteBuffer, codec id: FerryCodecID) throws -> Value {
        if Value.self == ByteBuffer.self { return body as! Value }
        guard let codec = codec(for: id) else { throw FerryCodecError.unknownCodec(id) }
        return try codec.decode(type, from: body)
    }
}

extension FerryCodecRegistry {
    /// Encodes a protobuf message with the codec `id`.
    ///
    /// Does what the unconstrained ``encode(_:codec:allocator:)`` does; when `id` is `p` and
    /// the registered protobuf codec is ``FerryProtobufCodec``, the message type is known here and
    /// the codec's search for the value's `SwiftProtobuf.Message` conformance is skipped.
    public func encode<Value: SwiftProtobuf.Message>(
        _ value: Value, codec id: FerryCodecID, allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) throws -> ByteBuffer {
        if id == .protobuf, protobufIsStandard { return try FerryProtobufCodec.body(of: value) }
        return try encodeValue(value, codec: id, allocator: allocator)
    }

    /// Decodes a protobuf message with the codec `id`; when `id` is `p` and the
    /// registered protobuf codec is ``FerryProtobufCodec``, the conformance search is skipped.
    public func decode<Value: SwiftProtobuf.Message>(
        _ type: Value.Type, from body: ByteBuffer, codec id: FerryCodecID
    ) throws -> Value {
        if id == .protobuf, protobufIsStandard { return try FerryProtobufCodec.message(type, from: body) }
        return try decodeValue(type, from: body, codec: id)
    }
}
