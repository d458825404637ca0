import NIOCore

/// Encodes outbound messages with the peer's proto. Unlike `MessageToByteHandler`, a message
/// that cannot be encoded fails only its own write; the session keeps working.
///
/// Writes are batched and flushes coalesced: the frames written since the last flush are encoded
/// one after another into one buffer, and a flush is deferred to the end of the current
/// event-loop tick. The replies that handlers finish together (each submitted as its own
/// write-and-flush) therefore leave in one buffer and one system call, rather than one of each
/// per reply. A close sends the batch down first.
final class MessageEncoderHandler: ChannelOutboundHandler {
    typealias OutboundIn = FerryMessage
    typealias OutboundOut = ByteBuffer

    private let proto: any FerryProto
    /// The frames encoded since the last flush went down, if any.
    private var batch: ByteBuffer?
    /// The promises of the writes in `batch`, completed when the batch is written.
    private var batchPromises: [EventLoopPromise<Void>] = []
    /// The capacity a new batch starts with: the size of the last one, within bounds.
    private var batchCapacity = 1024
    private var flushScheduled = false

    private static let largestStartingCapacity = 256 << 10

    init(proto: any FerryProto) { self.proto = proto }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let message = unwrapOutboundIn(data)
        // Taken out while it grows, so that the buffer stays uniquely referenced.
        var buffer = batch.take() ?? context.channel.allocator.buffer(capacity: max(batchCapacity, 64 + message.body.readableBytes))
        do {
            // On failure nothing is appended: the frames already in the batch are kept.
            try proto.encodeMessage(message, into: &buffer)
        } catch {
            if buffer.readableBytes > 0 { batch = buffer }
            promise?.fail(error)
            return
        }
        batch = buffer
        if let promise { batchPromises.append(promise) }
    }

    func flush(context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = loopBound.value
            handler.flushScheduled = false
            handler.writeBatch(context: context)
            context.flush()
        }
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if batch != nil {
            writeBatch(context: context)
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        batch = nil
        let waiting = batchPromises
        batchPromises = []
        for promise in waiting { promise.fail(ChannelError.ioOnClosedChannel) }
    }

    /// Hands the batch to the next handler as one write whose outcome completes every promise.
    private func writeBatch(context: ChannelHandlerContext) {
        guard let buffer = batch.take() else { return }
        batchCapacity = min(max(buffer.readableBytes, 1024), Self.largestStartingCapacity)
        let promise: EventLoopPromise<Void>?
        switch batchPromises.count {
        case 0:
            promise = nil
        case 1:
            promise = batchPromises[0]
        default:
            let waiting = batchPromises
            let combined = context.eventLoop.makePromise(of: Void.self)
            combined.futureResult.whenComplete { result in
                for promise in waiting { promise.completeWith(result) }
            }
            promise = combined
        }
        batchPromises.removeAll(keepingCapacity: true)
        context.write(wrapOutboundOut(buffer), promise: promise)
    }
}

@available(*, unavailable)
extension MessageEncoderHandler: Sendable {}
