import Foundation
import NIOCore

/// The JSON codec (`j`): any `Encodable` value in, any `Decodable` value out.
public struct FerryJSONCodec: FerryCodec {
    /// Creates the codec.
    public init() {}

    /// `j`.
    public var id: FerryCodecID { .json }
    /// `json`.
    public var name: String { "json" }

    public func encode<Value>(_ value: Value, into buffer: inout ByteBuffer) throws {
        guard let encodable = value as? any Encodable else {
            throw FerryCodecError.unsupportedType(String(describing: Value.self), codec: name)
        }
        do {
            buffer.writeBytes(try JSONEncoder().encode(encodable))
        } catch {
            throw FerryCodecError.encodingFailed(codec: name, reason: "\(error)")
        }
    }

    public func decode<Value>(_ type: Value.Type, from buffer: ByteBuffer) throws -> Value {
        guard let decodable = Value.self as? any Decodable.Type else {
            throw FerryCodecError.unsupportedType(String(describing: Value.self), codec: name)
        }
        do {
            let data = Data(buffer.readableBytesView)
            return try JSONDecoder().decode(decodable, from: data) as! Value
        } catch {
            throw FerryCodecError.invalidBody(codec: name, reason: "\(error)")
        }
    }
}
