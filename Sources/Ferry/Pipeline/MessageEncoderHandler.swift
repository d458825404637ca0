import NIOCore

/// Encodes outbound messages with the peer's proto. Unlike `MessageToByteHandler`, a message
/// that cannot be encoded fails only its own write; the session keeps working.
///
/// Writes are batched and flushes coalesced: the frames written since the last flush are encoded
/// one after another into one buffer, and a flush is deferred to the end of the current
/// event-loop tick. The replies that handlers finish together therefore leave in one buffer and
/// one system call, rather than one of each per reply. A session hands its handlers' replies
/// (``enqueueReply(_:)``) and its CALLs (``enqueue(_:)``) to it directly; other messages come down
/// the pipeline as writes. A close sends the batch down first. A batch that reaches
/// ``batchWriteThreshold`` is handed down at once, unflushed, so that the channel's outbound bound
/// counts it.
final class MessageEncoderHandler: ChannelOutboundHandler {
    typealias OutboundIn = FerryMessage
    typealias OutboundOut = ByteBuffer

    private let proto: any FerryProto
    /// Told how many replies queued with ``enqueueReply(_:)`` have left: passed down to the
    /// channel with their batch, or dropped with the handler.
    private let repliesLeft: @Sendable (Int) -> Void
    /// This handler's place in the pipeline, while it is in one.
    private var context: ChannelHandlerContext?
    /// The frames encoded since the last flush went down, if any.
    private var batch: ByteBuffer?
    /// The promises of the writes in `batch`, completed when the batch is written.
    private var batchPromises: [EventLoopPromise<Void>] = []
    /// How many of the frames in `batch` are replies queued with ``enqueueReply(_:)``.
    private var batchReplies = 0
    /// The capacity a new batch starts with: the size of the last one, within bounds.
    private var batchCapacity = 1024
    private var flushScheduled = false
    /// The task that writes and flushes the batch at the end of a tick, made once per pipeline
    /// so that scheduling it allocates nothing.
    private var flushAtEndOfTick: (@Sendable () -> Void)?

    /// The most a new batch starts with. Batches stay below the allocator's threshold for
    /// mapping fresh pages (glibc's is 128 KiB at first), which would fault on every tick.
    private static let largestStartingCapacity = batchWriteThreshold
    /// The size at which a batch is handed down before the end of its tick.
    static let batchWriteThreshold = 64 << 10

    init(proto: any FerryProto, repliesLeft: @escaping @Sendable (Int) -> Void = { _ in }) {
        self.proto = proto
        self.repliesLeft = repliesLeft
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        flushAtEndOfTick = {
            let (handler, context) = loopBound.value
            handler.flushScheduled = false
            handler.writeBatch(context: context)
            context.flush()
        }
    }

    /// Queues a handler's reply, straight from its session on the event loop: it is encoded
    /// into the tick's batch and flushed with it, without a trip through the pipeline or a
    /// promise of its own; `repliesLeft` counts it once its batch goes down. Throws, queuing
    /// nothing, when the reply cannot be encoded or the connection is gone.
    func enqueueReply(_ reply: FerryMessage) throws {
        try enqueue(reply, isReply: true)
    }

    /// Queues a message straight from its session on the event loop, like ``enqueueReply(_:)``
    /// but uncounted: for CALLs, whose outcome is their reply (a connection that fails to write
    /// closes, and its pending calls fail with it).
    func enqueue(_ message: FerryMessage) throws {
        try enqueue(message, isReply: false)
    }

    private func enqueue(_ message: FerryMessage, isReply: Bool) throws {
        guard let context else { throw ChannelError.ioOnClosedChannel }
        try append(message, context: context)
        if isReply { batchReplies += 1 }
        writeDownIfLarge(context: context)
        flush(context: context)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        do {
            try append(unwrapOutboundIn(data), context: context)
        } catch {
            promise?.fail(error)
            return
        }
        if let promise { batchPromises.append(promise) }
        writeDownIfLarge(context: context)
    }

    /// Hands a batch that reached ``batchWriteThreshold`` down at once, unflushed: the channel
    /// then counts its bytes towards the outbound bound, so that its writability (and with it the
    /// slow-consumer policy) sees a flood of replies within one tick, not only at the flush.
    private func writeDownIfLarge(context: ChannelHandlerContext) {
        guard let batch, batch.readableBytes >= Self.batchWriteThreshold else { return }
        writeBatch(context: context)
    }

    /// Encodes `message` at the end of the batch; on failure the batch is as it was. A batch
    /// of ``largestStartingCapacity`` or more without room for the message goes down first
    /// rather than grow: a buffer doubles when it grows, which would take it past the threshold
    /// of fresh pages. Smaller batches grow.
    private func append(_ message: FerryMessage, context: ChannelHandlerContext) throws {
        if let batch, batch.capacity >= Self.largestStartingCapacity, batch.writableBytes < Self.frameEstimate(message) {
            writeBatch(context: context)
        }
        // Taken out while it grows, so that the buffer stays uniquely referenced. Only the
        // tick's first message asks the channel for its allocator.
        var buffer = batch.take() ?? context.channel.allocator.buffer(capacity: max(batchCapacity, 64 + message.body.readableBytes))
        defer { if buffer.readableBytes > 0 { batch = buffer } }
        try proto.encodeMessage(message, into: &buffer)
    }

    /// Room enough for the frame of `message` in the usual case: its body plus a header with
    /// a route and a little meta.
    private static func frameEstimate(_ message: FerryMessage) -> Int {
        256 + message.serviceMethod.utf8.count + message.body.readableBytes
    }

    func flush(context: ChannelHandlerContext) {
        guard !flushScheduled, let flushAtEndOfTick else { return }
        flushScheduled = true
        context.eventLoop.execute(flushAtEndOfTick)
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if batch != nil {
            writeBatch(context: context)
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        flushAtEndOfTick = nil
        batch = nil
        let waiting = batchPromises
        let replies = batchReplies
        batchPromises = []
        batchReplies = 0
        for promise in waiting { promise.fail(ChannelError.ioOnClosedChannel) }
        if replies > 0 { repliesLeft(replies) }
    }

    /// Hands the batch to the next handler as one write whose outcome completes every promise,
    /// and counts its replies as gone. (Whether the channel has written them is the channel's
    /// to say: a graceful shutdown asks it before closing.)
    private func writeBatch(context: ChannelHandlerContext) {
        guard let buffer = batch.take() else { return }
        batchCapacity = min(max(buffer.readableBytes, 1024), Self.largestStartingCapacity)
        let replies = batchReplies
        batchReplies = 0
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
        if replies > 0 { repliesLeft(replies) }
    }
}

@available(*, unavailable)
extension MessageEncoderHandler: Sendable {}
