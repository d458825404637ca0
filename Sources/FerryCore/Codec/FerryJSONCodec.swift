import Foundation
import NIOCore

/// The JSON codec (`j`): any `Encodable` value in, any `Decodable` value out.
public struct FerryJSONCodec: FerryCodec, CodableBodyCodec {
    /// Creates the codec.
    public init() {}

    /// `j`.
    public var id: FerryCodecID { .json }
    /// `json`.
    public var name: String { "json" }

    /// Appends the encoding of `value` to `buffer`.
    public func encode<Value>(_ value: Value, into buffer: inout ByteBuffer) throws {
        try encodeThroughCodable(value, into: &buffer)
    }

    /// Decodes a value of `type` from the readable bytes of `buffer`.
    public func decode<Value>(_ type: Value.Type, from buffer: ByteBuffer) throws -> Value {
        try decodeThroughCodable(type, from: buffer)
    }

    func encodeCodable(_ value: any Encodable, into buffer: inout ByteBuffer) throws {
        buffer.writeBytes(try JSONEncoder().encode(value))
    }

    func decodeCodable<Value: Decodable>(_ type: Value.Type, from buffer: ByteBuffer) throws -> Value {
        try JSONDecoder().decode(type, from: Data(buffer.readableBytesView))
    }
}
