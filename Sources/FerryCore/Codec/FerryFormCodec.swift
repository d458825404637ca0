import NIOCore

/// The form codec (`f`): flat `Codable` structs as `application/x-www-form-urlencoded`.
///
/// Fields are leaf values (text, numbers, booleans, raw-value enums) or arrays of them, which
/// travel as repeated keys. Nested structures are refused rather than flattened silently.
public struct FerryFormCodec: FerryCodec {
    /// Creates the codec.
    public init() {}

    /// `f`.
    public var id: FerryCodecID { .form }
    /// `form`.
    public var name: String { "form" }

    public func encode<Value>(_ value: Value, into buffer: inout ByteBuffer) throws {
        guard let encodable = value as? any Encodable else {
            throw FerryCodecError.unsupportedType(String(describing: Value.self), codec: name)
        }
        do {
            buffer.writeString(try FormURLEncoder().encode(encodable))
        } catch {
            throw FerryCodecError.encodingFailed(codec: name, reason: "\(error)")
        }
    }

    public func decode<Value>(_ type: Value.Type, from buffer: ByteBuffer) throws -> Value {
        guard let decodable = Value.self as? any Decodable.Type else {
            throw FerryCodecError.unsupportedType(String(describing: Value.self), codec: name)
        }
        do {
            let text = String(buffer: buffer)
            return try FormURLDecoder().decode(decodable, from: text) as! Value
        } catch {
            throw FerryCodecError.invalidBody(codec: name, reason: "\(error)")
        }
    }
}
