import NIOCore
import SwiftProtobuf

/// A reply received for a CALL, with the time the call took.
public struct FerryReply: Sendable {
    /// The reply message: status, meta, body codec and body.
    public var message: FerryMessage
    /// The time from writing the call to receiving this reply.
    public var cost: Duration
    /// The codecs used by ``decode(_:)``.
    public var codecs: FerryCodecRegistry

    /// Creates a reply.
    public init(message: FerryMessage, cost: Duration, codecs: FerryCodecRegistry) {
        self.message = message
        self.cost = cost
        self.codecs = codecs
    }

    /// The reply status.
    public var status: FerryStatus { message.status }
    /// The reply metadata.
    public var meta: FerryMeta { message.meta }
    /// The reply body codec.
    public var bodyCodec: FerryCodecID { message.bodyCodec }
    /// The reply body bytes.
    public var body: ByteBuffer { message.body }

    /// Decodes the body as `Value` after checking the status. `Void` yields nothing and
    /// `ByteBuffer` yields the raw body.
    ///
    /// - Throws: The reply's own status when it is not OK (its ``FerryStatus/origin`` is
    ///   ``FerryStatus/Origin/remote``: the remote said it). A body this side cannot decode
    ///   throws ``FerryStatus/undecodableReply(_:origin:underlyingError:)``: 400 "Undecodable
    ///   Reply", raised here after the call ran (``FerryStatus/Origin/localAfterSending``), with
    ///   the decoding error as ``FerryStatus/underlyingError``.
    public func decode<Value>(_ type: Value.Type = Value.self) throws -> Value {
        if Value.self == Void.self, message.status.isOK { return () as! Value }
        return try decodeBody(type) { try codecs.decode(type, from: message.body, codec: message.bodyCodec) }
    }

    /// Decodes the body as the protobuf message `Value` after checking the status: the same as
    /// the unconstrained ``decode(_:)``, with no search for the type's conformance per reply
    /// when the body codec is ``FerryProtobufCodec``.
    public func decode<Value: SwiftProtobuf.Message>(_ type: Value.Type = Value.self) throws -> Value {
        try decodeBody(type) { try codecs.decode(type, from: message.body, codec: message.bodyCodec) }
    }

    private func decodeBody<Value>(_ type: Value.Type, _ decode: () throws -> Value) throws -> Value {
        guard message.status.isOK else { throw message.status }
        do {
            return try decode()
        } catch {
            throw FerryStatus.undecodableReply(
                "the reply body (codec \(message.bodyCodec), \(message.body.readableBytes) bytes) could not be decoded here as \(Value.self): \(error)",
                underlyingError: error)
        }
    }
}
