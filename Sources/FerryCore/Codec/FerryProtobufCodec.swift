import NIOCore
import SwiftProtobuf

/// The protobuf codec (`p`): SwiftProtobuf messages in binary form.
///
/// Messages are decoded straight from the body's bytes and encoded straight into a body buffer,
/// with no intermediate array.
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
        let encoded = try Self.body(of: message)
        if buffer.readableBytes == 0 {
            buffer = encoded
        } else {
            buffer.writeImmutableBuffer(encoded)
        }
    }

    /// Decodes a value of `type` from the readable bytes of `buffer`.
    public func decode<Value>(_ type: Value.Type, from buffer: ByteBuffer) throws -> Value {
        guard let messageType = Value.self as? any SwiftProtobuf.Message.Type else {
            throw FerryCodecError.unsupportedType(String(describing: Value.self), codec: name)
        }
        return try Self.message(messageType, from: buffer) as! Value
    }

    /// `message` encoded in a buffer of its own.
    static func body<Message: SwiftProtobuf.Message>(of message: Message) throws -> ByteBuffer {
        do {
            let encoded: ProtobufBytes = try message.serializedBytes()
            return encoded.buffer
        } catch {
            throw FerryCodecError.encodingFailed(codec: "protobuf", reason: "\(error)")
        }
    }

    /// A `Message` decoded from the readable bytes of `buffer`.
    static func message<Message: SwiftProtobuf.Message>(_ type: Message.Type, from buffer: ByteBuffer) throws -> Message {
        do {
            return try Message(serializedBytes: ProtobufBytes(buffer: buffer))
        } catch {
            throw FerryCodecError.invalidBody(codec: "protobuf", reason: "\(error)")
        }
    }
}

/// A `ByteBuffer` as SwiftProtobuf's bag of bytes, so messages read from and write into NIO
/// buffers directly.
struct ProtobufBytes: SwiftProtobufContiguousBytes {
    var buffer: ByteBuffer

    init(buffer: ByteBuffer) { self.buffer = buffer }

    init(repeating byte: UInt8, count: Int) { buffer = ByteBuffer(repeating: byte, count: count) }

    init<S: Sequence>(_ sequence: S) where S.Element == UInt8 { buffer = ByteBuffer(bytes: sequence) }

    var count: Int { buffer.readableBytes }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeReadableBytes(body)
    }

    mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeMutableReadableBytes(body)
    }
}
