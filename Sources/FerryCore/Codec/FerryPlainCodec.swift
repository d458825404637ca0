import Foundation
import NIOCore

/// The plain codec (`s`): `String` as UTF-8, `[UInt8]` or `Data` as they are, and integers,
/// floating-point numbers and booleans as their decimal text (as erpc's plain codec does).
public struct FerryPlainCodec: FerryCodec {
    /// Creates the codec.
    public init() {}

    /// `s`.
    public var id: FerryCodecID { .plain }
    /// `plain`.
    public var name: String { "plain" }

    /// Appends the encoding of `value` to `buffer`.
    public func encode<Value>(_ value: Value, into buffer: inout ByteBuffer) throws {
        switch value {
        case let text as String: buffer.writeString(text)
        case let text as Substring: buffer.writeString(String(text))
        case let bytes as [UInt8]: buffer.writeBytes(bytes)
        case let data as Data: buffer.writeBytes(data)
        case let number as any BinaryInteger: buffer.writeString(String(describing: number))
        case let number as Double: buffer.writeString(String(number))
        case let number as Float: buffer.writeString(String(number))
        case let flag as Bool: buffer.writeString(flag ? "true" : "false")
        default:
            throw FerryCodecError.unsupportedType(String(describing: Value.self), codec: name)
        }
    }

    /// Decodes a value of `type` from the readable bytes of `buffer`.
    public func decode<Value>(_ type: Value.Type, from buffer: ByteBuffer) throws -> Value {
        if Value.self == String.self {
            guard let text = String(validating: buffer.readableBytesView, as: UTF8.self) else {
                throw FerryCodecError.invalidBody(codec: name, reason: "not UTF-8 text")
            }
            return text as! Value
        }
        if Value.self == [UInt8].self { return Array(buffer.readableBytesView) as! Value }
        if Value.self == Data.self { return Data(buffer.readableBytesView) as! Value }
        if let parsable = Value.self as? any LosslessStringConvertible.Type {
            let text = String(decoding: buffer.readableBytesView, as: UTF8.self)
            guard let value = parsable.init(text) else {
                throw FerryCodecError.invalidBody(codec: name, reason: "not a \(Value.self): \(text.prefix(32))")
            }
            return value as! Value
        }
        throw FerryCodecError.unsupportedType(String(describing: Value.self), codec: name)
    }
}
