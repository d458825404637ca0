import FerryCore
import NIOCore
import NIOEmbedded
import Synchronization
import Testing

@testable import Ferry

/// The outbound end of a session's pipeline: frames written in one event-loop tick leave as one
/// buffer at the end of the tick, each write's promise tells its own outcome, and a close sends
/// what is batched before it.
@Suite struct MessageEncoderTests {
    /// Replies the encoder reported gone.
    final class Count: Sendable {
        private let count = Mutex(0)
        var value: Int { count.withLock { $0 } }
        func add(_ more: Int) { count.withLock { $0 += more } }
    }

    private static let proto = FerryRawProto(maximumFrameSize: 1024)

    private static func message(seq: Int32, bodySize: Int = 16) -> FerryMessage {
        FerryMessage(
            type: .reply, seq: seq, serviceMethod: "/echo", bodyCodec: .plain,
            body: ByteBuffer(repeating: UInt8(truncatingIfNeeded: seq), count: bodySize))
    }

    private static func decodeAll(_ buffer: ByteBuffer) throws -> [FerryMessage] {
        var buffer = buffer
        var messages: [FerryMessage] = []
        while let message = try proto.decodeMessage(from: &buffer) { messages.append(message) }
        #expect(buffer.readableBytes == 0)
        return messages
    }

    /// Whether `future` has succeeded (true), failed with `FerryProtocolError` (false); nil while pending.
    private static func outcome(_ future: EventLoopFuture<Void>) -> Bool? {
        var outcome: Bool?
        future.assumeIsolated().whenComplete { result in
            switch result {
            case .success: outcome = true
            case .failure(let error): outcome = error is FerryProtocolError ? false : nil
            }
        }
        return outcome
    }

    @Test func writesOfOneTickLeaveAsOneBufferWithEveryPromiseKept() throws {
        let channel = EmbeddedChannel(handler: MessageEncoderHandler(proto: Self.proto))
        defer { _ = try? channel.finish() }
        let first = channel.writeAndFlush(Self.message(seq: 1))
        let tooLarge = channel.writeAndFlush(Self.message(seq: 2, bodySize: 4096))
        let third = channel.writeAndFlush(Self.message(seq: 3))
        // Nothing leaves before the end of the tick.
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        channel.embeddedEventLoop.run()

        let written = try #require(try channel.readOutbound(as: ByteBuffer.self))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        #expect(try Self.decodeAll(written).map(\.seq) == [1, 3])
        #expect(try Self.decodeAll(written).map(\.body) == [Self.message(seq: 1).body, Self.message(seq: 3).body])

        #expect(Self.outcome(first) == true)
        #expect(Self.outcome(third) == true)
        #expect(Self.outcome(tooLarge) == false)
    }

    /// Records the writes (their sizes and how many frames they hold) and flushes that leave
    /// the encoder.
    final class WriteSpy: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var writes: [Int] = []
        var capacities: [Int] = []
        var frames = 0
        var flushes = 0

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            let buffer = unwrapOutboundIn(data)
            writes.append(buffer.readableBytes)
            capacities.append(buffer.capacity)
            frames += (try? MessageEncoderTests.decodeAll(buffer).count) ?? 0
            context.write(data, promise: promise)
        }

        func flush(context: ChannelHandlerContext) {
            flushes += 1
            context.flush()
        }
    }

    @Test func aLargeBatchIsHandedDownBeforeTheEndOfItsTick() throws {
        let spy = WriteSpy()
        let left = Count()
        let encoder = MessageEncoderHandler(proto: Self.proto) { left.add($0) }
        let channel = EmbeddedChannel(handlers: [spy, encoder])
        defer { _ = try? channel.finish() }
        let replies = 200
        // Frames differ by a few bytes (the sequence number is text in the header).
        let largestFrame = try Self.frameSize(Self.message(seq: Int32(replies), bodySize: 900))
        for seq in 1...replies {
            try encoder.enqueueReply(Self.message(seq: Int32(seq), bodySize: 900))
        }
        // Within the tick, the batch went down (so that the channel's outbound bound counts it)
        // each time it reached the threshold, unflushed; a batch as large as that threshold with
        // no room for the next frame went down just before, rather than double its buffer.
        let threshold = MessageEncoderHandler.batchWriteThreshold
        #expect(spy.writes.count == replies * largestFrame / threshold)
        #expect(spy.writes.allSatisfy { $0 > threshold - 2 * largestFrame && $0 < threshold + largestFrame }, "\(spy.writes)")
        #expect(spy.capacities.allSatisfy { $0 <= threshold }, "\(spy.capacities)")
        #expect(spy.flushes == 0)
        // The replies handed down count as gone (the channel now holds them); the rest do not.
        #expect(spy.frames > 0 && spy.frames < replies)
        #expect(left.value == spy.frames)

        channel.embeddedEventLoop.run()
        #expect(spy.flushes == 1)
        var seqs: [Int32] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { seqs += try Self.decodeAll(buffer).map(\.seq) }
        #expect(seqs == (1...Int32(replies)).map { $0 })
        #expect(left.value == replies)
    }

    /// The encoded size of `message`.
    private static func frameSize(_ message: FerryMessage) throws -> Int {
        var buffer = ByteBuffer()
        try proto.encodeMessage(message, into: &buffer)
        return buffer.readableBytes
    }

    @Test func aLaterTickStartsANewBuffer() throws {
        let channel = EmbeddedChannel(handler: MessageEncoderHandler(proto: Self.proto))
        defer { _ = try? channel.finish() }
        channel.writeAndFlush(Self.message(seq: 1), promise: nil)
        channel.embeddedEventLoop.run()
        channel.writeAndFlush(Self.message(seq: 2), promise: nil)
        channel.embeddedEventLoop.run()
        #expect(try Self.decodeAll(try #require(try channel.readOutbound(as: ByteBuffer.self))).map(\.seq) == [1])
        #expect(try Self.decodeAll(try #require(try channel.readOutbound(as: ByteBuffer.self))).map(\.seq) == [2])
    }

    @Test func aCloseSendsTheBatchFirst() throws {
        let channel = EmbeddedChannel(handler: MessageEncoderHandler(proto: Self.proto))
        let written = channel.writeAndFlush(Self.message(seq: 7))
        let closed = channel.close()
        channel.embeddedEventLoop.run()
        #expect(Self.outcome(closed) == true)
        #expect(Self.outcome(written) == true)
        #expect(try Self.decodeAll(try #require(try channel.readOutbound(as: ByteBuffer.self))).map(\.seq) == [7])
    }

    @Test func repliesQueuedDirectlyLeaveWithTheTickAndAreCountedOnceHandedDown() throws {
        let left = Count()
        let encoder = MessageEncoderHandler(proto: Self.proto) { count in left.add(count) }
        let channel = EmbeddedChannel(handler: encoder)
        defer { _ = try? channel.finish() }
        try encoder.enqueueReply(Self.message(seq: 1))
        #expect(throws: FerryProtocolError.self) { try encoder.enqueueReply(Self.message(seq: 2, bodySize: 4096)) }
        channel.writeAndFlush(Self.message(seq: 3), promise: nil)
        try encoder.enqueueReply(Self.message(seq: 4))
        #expect(left.value == 0)
        channel.embeddedEventLoop.run()
        #expect(try Self.decodeAll(try #require(try channel.readOutbound(as: ByteBuffer.self))).map(\.seq) == [1, 3, 4])
        #expect(left.value == 2)
    }

    @Test func repliesOfAConnectionThatGoesAwayAreCountedToo() throws {
        let left = Count()
        let encoder = MessageEncoderHandler(proto: Self.proto) { count in left.add(count) }
        let channel = EmbeddedChannel(handler: encoder)
        try encoder.enqueueReply(Self.message(seq: 1))
        _ = try? channel.finish()
        #expect(left.value == 1)
        #expect(throws: ChannelError.self) { try encoder.enqueueReply(Self.message(seq: 2)) }
    }

    @Test func writesWithoutAFlushWaitForOne() throws {
        let channel = EmbeddedChannel(handler: MessageEncoderHandler(proto: Self.proto))
        defer { _ = try? channel.finish() }
        let written = channel.write(Self.message(seq: 1))
        channel.embeddedEventLoop.run()
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        #expect(Self.outcome(written) == nil)
        channel.flush()
        channel.embeddedEventLoop.run()
        #expect(Self.outcome(written) == true)
        #expect(try Self.decodeAll(try #require(try channel.readOutbound(as: ByteBuffer.self))).map(\.seq) == [1])
    }
}
