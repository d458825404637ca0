import FerryCore
import NIOCore
import SwiftProtobuf

/// A replacement for the protobuf codec under `p`: SwiftProtobuf's bytes behind a tag byte,
/// which it requires when decoding, so a body shows which codec made it.
public struct TaggedProtobufCodec: FerryCodec {
    /// The byte in front of every body.
    public static let tag: UInt8 = 0xEE

    public init() {}

    public var id: FerryCodecID { .protobuf }
    public var name: String { "tagged-protobuf" }

    public func encode<Value>(_ value: Value, into buffer: inout ByteBuffer) throws {
        guard let message = value as? any SwiftProtobuf.Message else {
            throw FerryCodecError.unsupportedType("\(Value.self)", codec: name)
        }
        buffer.writeInteger(Self.tag)
        buffer.writeBytes(try message.serializedBytes() as [UInt8])
    }

    public func decode<Value>(_ type: Value.Type, from buffer: ByteBuffer) throws -> Value {
        guard let messageType = Value.self as? any SwiftProtobuf.Message.Type else {
            throw FerryCodecError.unsupportedType("\(Value.self)", codec: name)
        }
        var body = buffer
        guard body.readInteger(as: UInt8.self) == Self.tag else {
            throw FerryCodecError.invalidBody(codec: name, reason: "no tag")
        }
        return try messageType.init(serializedBytes: Array(body.readableBytesView)) as! Value
    }

    /// The standard codecs with this one under `p`.
    public static var registry: FerryCodecRegistry {
        var codecs = FerryCodecRegistry.standard
        codecs.register(TaggedProtobufCodec())
        return codecs
    }
}
