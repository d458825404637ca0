import NIOCore

/// Encodes outbound messages with the peer's proto. Unlike `MessageToByteHandler`, a message
/// that cannot be encoded fails only its own write; the session keeps working.
///
/// Flushes are coalesced: a flush is deferred to the end of the current event-loop tick, so the
/// replies that handlers finish together (each submitted as its own write-and-flush) leave in
/// one system call rather than one each.
final class MessageEncoderHandler: ChannelOutboundHandler {
    typealias OutboundIn = FerryMessage
    typealias OutboundOut = ByteBuffer

    private let proto: any FerryProto
    private var flushScheduled = false

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

    func flush(context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = loopBound.value
            handler.flushScheduled = false
            context.flush()
        }
    }
}

@available(*, unavailable)
extension MessageEncoderHandler: Sendable {}
