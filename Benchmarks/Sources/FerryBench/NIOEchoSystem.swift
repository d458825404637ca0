import BenchmarkProto
import NIOCore
import NIOPosix
import SwiftProtobuf

/// Frames of the ceiling and of the idle-connection client: a 4-byte big-endian size that counts
/// itself (as Ferry's raw proto does), then the payload. The frame is passed on whole, size
/// included, so the echo server writes back exactly what it read.
struct SizePrefixedFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    var maximumFrameSize = 16 << 20

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let size = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return .needMoreData }
        guard size >= 4, Int(size) <= maximumFrameSize else { throw BenchError.unexpectedReply("frame size \(size)") }
        guard let frame = buffer.readSlice(length: Int(size)) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }
}

/// A frame of the ceiling's workload: the 581 encoded bytes behind their size.
func echoFrame() -> ByteBuffer {
    var frame = ByteBuffer()
    frame.writeInteger(UInt32(4 + Workload.encodedSize))
    frame.writeBytes(Workload.encoded)
    return frame
}

/// Writes every frame back as it arrives and flushes once per read burst.
final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.write(data, promise: nil)
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension EchoHandler: Sendable {}

/// The ceiling: the least a server can do for the workload on SwiftNIO.
struct NIOEchoServer: BenchServer {
    let group: MultiThreadedEventLoopGroup
    /// Whether to decode each request, answer it with `Workload.answer` and encode the reply
    /// (`nio-protobuf`) instead of echoing the bytes (`nio`).
    var answersProtobuf = false

    func run(host: String, port: Int, onListening: @escaping @Sendable (Int) -> Void) async throws {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(SizePrefixedFrameDecoder()),
                        answersProtobuf ? ProtobufAnswerHandler() : EchoHandler(),
                    ])
                }
            }
            .bind(host: host, port: port).get()
        onListening(channel.localAddress?.port ?? port)
        try await waitForever()
    }
}

/// A region of a `ByteBuffer` as SwiftProtobuf's bytes, so that the protobuf ceiling decodes
/// from and encodes into NIO buffers without copies. Ferry's protobuf codec has the same adapter
/// internally; the ceiling keeps its own so that it runs no Ferry code.
struct BufferBytes: SwiftProtobufContiguousBytes {
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

/// Writes `message` as a size-prefixed frame.
func protobufFrame(_ message: Bench_BenchmarkMessage, allocator: ByteBufferAllocator) throws -> ByteBuffer {
    let body: BufferBytes = try message.serializedBytes()
    var frame = allocator.buffer(capacity: 4 + body.count)
    frame.writeInteger(UInt32(4 + body.count))
    frame.writeImmutableBuffer(body.buffer)
    return frame
}

/// The message in a size-prefixed frame.
func protobufMessage(in frame: ByteBuffer) throws -> Bench_BenchmarkMessage {
    var body = frame
    body.moveReaderIndex(forwardBy: 4)
    return try Bench_BenchmarkMessage(serializedBytes: BufferBytes(buffer: body))
}

/// The `nio-protobuf` server's handler: decodes each request, answers it as every RPC server
/// here does, encodes the reply, and flushes once per read burst.
final class ProtobufAnswerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            let request = try protobufMessage(in: unwrapInboundIn(data))
            let reply = try protobufFrame(Workload.answer(request), allocator: context.channel.allocator)
            context.write(wrapOutboundOut(reply), promise: nil)
        } catch {
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.flush()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension ProtobufAnswerHandler: Sendable {}

/// A request of the echo client: the frame to send and the promise its echo completes.
struct EchoRequest: Sendable {
    var frame: ByteBuffer
    var promise: EventLoopPromise<ByteBuffer>
}

/// The client end of a framed request/response connection: replies come back in request order,
/// so the waiting promises form a queue. Flushes are deferred to the end of the event-loop tick,
/// so that the requests of callers woken together leave in one system call (as Ferry's
/// sessions do): without this the ceiling's client made a `write(2)` per call.
final class EchoClientHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = EchoRequest
    typealias OutboundOut = ByteBuffer

    private var waiting = CircularBuffer<EventLoopPromise<ByteBuffer>>(initialCapacity: 64)
    private var flushScheduled = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        waiting.append(request.promise)
        context.write(wrapOutboundOut(request.frame), promise: promise)
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

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        // A frame nobody waits for (a Ferry server's heartbeat ping to an idle connection) is
        // dropped.
        guard let promise = waiting.popFirst() else { return }
        promise.succeed(frame)
    }

    func channelInactive(context: ChannelHandlerContext) {
        while let promise = waiting.popFirst() { promise.fail(BenchError.connectionClosed) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension EchoClientHandler: Sendable {}

/// A framed request/response connection used from async callers.
struct FramedConnection: Sendable {
    let channel: any Channel
    /// Runs callers on the connection's event loop.
    let executor: EventLoopExecutor

    static func connect(
        host: String, port: Int, group: any EventLoopGroup, bindTo source: SocketAddress? = nil
    ) async throws -> FramedConnection {
        var bootstrap = ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandlers([
                        ByteToMessageHandler(SizePrefixedFrameDecoder()), EchoClientHandler(),
                    ])
                }
            }
        if let source { bootstrap = bootstrap.bind(to: source) }
        let channel = try await bootstrap.connect(host: host, port: port).get()
        return FramedConnection(channel: channel, executor: EventLoopExecutor(channel.eventLoop))
    }

    /// Sends `frame` and returns the next frame that comes back.
    func exchange(_ frame: ByteBuffer) async throws -> ByteBuffer {
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        channel.writeAndFlush(EchoRequest(frame: frame, promise: promise)).whenFailure { error in
            promise.fail(error)
        }
        return try await promise.futureResult.get()
    }
}

/// Ceiling callers: the frame is sent as is and the echo is only checked for its size.
enum NIOEchoClient {
    struct Target: CallTarget {
        let connection: FramedConnection
        let frame = echoFrame()
        var eventLoopExecutor: (any TaskExecutor)? { connection.executor }

        func call() async throws {
            let reply = try await connection.exchange(frame)
            guard reply.readableBytes == frame.readableBytes else {
                throw BenchError.unexpectedReply("\(reply.readableBytes) bytes")
            }
        }
    }

    /// `nio-protobuf` callers: each call encodes the workload's message into a frame and
    /// decodes the reply's.
    struct ProtobufTarget: CallTarget {
        let connection: FramedConnection
        let request = Workload.message
        let allocator = ByteBufferAllocator()
        var eventLoopExecutor: (any TaskExecutor)? { connection.executor }

        func call() async throws {
            let reply = try await connection.exchange(try protobufFrame(request, allocator: allocator))
            guard try protobufMessage(in: reply).field1 == "OK" else { throw BenchError.unexpectedReply("field1 is not OK") }
        }
    }

    static func measure(
        host: String, port: Int, connections: Int, group: MultiThreadedEventLoopGroup, plan: LoadPlan, protobuf: Bool = false
    ) async throws -> LoadMeasurement {
        var targets: [any CallTarget] = []
        var channels: [any Channel] = []
        for _ in 0..<connections {
            let connection = try await FramedConnection.connect(host: host, port: port, group: group)
            channels.append(connection.channel)
            targets.append(protobuf ? ProtobufTarget(connection: connection) as any CallTarget : Target(connection: connection))
        }
        let measurement = await LoadGenerator.run(plan, targets: targets)
        for channel in channels { try? await channel.close() }
        return measurement
    }
}
