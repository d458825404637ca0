import NIOCore

/// The form codec (`f`): flat `Codable` structs as `application/x-www-form-urlencoded`.
///
/// Fields are leaf values (text, numbers, booleans, raw-value enums) or arrays of them, which
/// travel as repeated keys. Nested structures are refused rather than flattened silently.
public struct FerryFormCodec: FerryCodec, CodableBodyCodec {
    /// Creates the codec.
    public init() {}

    /// `f`.
    public var id: FerryCodecID { .form }
    /// `form`.
    public var name: String { "form" }

    /// Appends the encoding of `value` to `buffer`.
    public func encode<Value>(_ value: Value, into buffer: inout ByteBuffer) throws {
        try encodeThroughCodable(value, into: &buffer)
    }

    /// Decodes a value of `type` from the readable bytes of `buffer`.
    public func decode<Value>(_ type: Value.Type, from buffer: ByteBuffer) throws -> Value {
        try decodeThroughCodable(type, from: buffer)
    }

    func encodeCodable(_ value: any Encodable, into buffer: inout ByteBuffer) throws {
        buffer.writeString(try FormURLEncoder().encode(value))
    }

    func decodeCodable<Value: Decodable>(_ type: Value.Type, from buffer: ByteBuffer) throws -> Value {
        try FormURLDecoder().decode(type, from: String(buffer: buffer))
    }
}
