import NIOCore

/// Encodes outbound messages with the peer's proto. Unlike `MessageToByteHandler`, a message
/// that cannot be encoded fails only its own write; the session keeps working.
final class MessageEncoderHandler: ChannelOutboundHandler {
    typealias OutboundIn = FerryMessage
    typealias OutboundOut = ByteBuffer

    private let proto: any FerryProto

    init(proto: any FerryProto) { self.proto = proto }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let message = unwrapOutboundIn(data)
        var buffer = context.channel.allocator.buffer(capacity: 64 + message.body.readableBytes)
        do {
            try proto.encodeMessage(message, into: &buffer)
        } catch {
            promise?.fail(error)
            return
        }
        context.write(wrapOutboundOut(buffer), promise: promise)
    }
}

@available(*, unavailable)
extension MessageEncoderHandler: Sendable {}
