import NIOCore
import SwiftProtobuf

/// The protobuf codec (`p`): SwiftProtobuf messages in binary form.
public struct FerryProtobufCodec: FerryCodec {
    /// Creates the codec.
    public init() {}

    /// `p`.
    public var id: FerryCodecID { .protobuf }
    /// `protobuf`.
    public var name: String { "protobuf" }

    /// Appends the encoding of `value` to `buffer`.
    public func encode<Value>(_ value: Value, into buffer: inout ByteBuffer) throws {
        guard let message = value as? any SwiftProtobuf.Message else {
            throw FerryCodecError.unsupportedType(String(describing: Value.self), codec: name)
        }
        do {
            let bytes: [UInt8] = try message.serializedBytes()
            buffer.writeBytes(bytes)
        } catch {
            throw FerryCodecError.encodingFailed(codec: name, reason: "\(error)")
        }
    }

    /// Decodes a value of `type` from the readable bytes of `buffer`.
    public func decode<Value>(_ type: Value.Type, from buffer: ByteBuffer) throws -> Value {
        guard let messageType = Value.self as? any SwiftProtobuf.Message.Type else {
            throw FerryCodecError.unsupportedType(String(describing: Value.self), codec: name)
        }
        do {
            return try messageType.init(serializedBytes: Array(buffer.readableBytesView)) as! Value
        } catch {
            throw FerryCodecError.invalidBody(codec: name, reason: "\(error)")
        }
    }
}
