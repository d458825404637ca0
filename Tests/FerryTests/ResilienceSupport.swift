import Ferry
import NIOCore
import NIOPosix
import Synchronization
import Testing

// MARK: A bare listening socket

/// A listening socket with no Ferry logic: it decodes the raw-proto frames each accepted
/// connection sends, records them with their arrival time, and answers CALLs with whatever
/// reply the test's responder returns (nil: no answer).
final class RawServer: Sendable {
    /// One decoded inbound message and when it arrived.
    struct Received: Sendable {
        var at: ContinuousClock.Instant
        var message: FerryMessage
    }

    typealias Responder = @Sendable (FerryMessage) -> FerryMessage?

    /// The bound address (127.0.0.1 and the port picked by the system).
    let address: FerryAddress
    private let channel: any Channel
    private let state: State

    final class State: Sendable {
        let received = Recorder<Received>()
        let children = Mutex<[any Channel]>([])
        let closedChildren = Atomic<Int>(0)
    }

    private init(address: FerryAddress, channel: any Channel, state: State) {
        self.address = address
        self.channel = channel
        self.state = state
    }

    /// Answers every CALL with an OK reply carrying its seq and an empty body.
    static let replyOK: Responder = { message in
        FerryMessage(type: .reply, seq: message.seq, filters: message.filters)
    }

    /// Starts listening on 127.0.0.1, port 0.
    static func start(responder: @escaping Responder = RawServer.replyOK) async throws -> RawServer {
        let state = State()
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                state.children.withLock { $0.append(channel) }
                channel.closeFuture.whenComplete { _ in state.closedChildren.wrappingAdd(1, ordering: .relaxed) }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(FrameCollector(state: state, responder: responder))
                }
            }
        let channel = try await bootstrap.bind(host: "127.0.0.1", port: 0).get()
        guard let port = channel.localAddress?.port else {
            try? await channel.close()
            throw SetupError(what: "no bound port")
        }
        return RawServer(address: .tcp(host: "127.0.0.1", port: port), channel: channel, state: state)
    }

    /// Every message received so far, on any connection, in arrival order.
    var received: [Received] { state.received.all }

    /// The messages received for `route` of `type`.
    func messages(to route: String, type: FerryMessageType? = nil) -> [Received] {
        received.filter { $0.message.serviceMethod == route && (type == nil || $0.message.type == type) }
    }

    /// Connections accepted so far.
    var acceptedCount: Int { state.children.withLock { $0.count } }

    /// Accepted connections that have closed.
    var closedCount: Int { state.closedChildren.load(ordering: .relaxed) }

    /// Stops listening and closes every accepted connection.
    func close() async {
        try? await channel.close()
        let children = state.children.withLock { $0 }
        for child in children { try? await child.close() }
    }

    private final class FrameCollector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let state: State
        let responder: Responder
        let proto = FerryRawProto()
        var unread = ByteBuffer()

        init(state: State, responder: @escaping Responder) {
            self.state = state
            self.responder = responder
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            unread.writeBuffer(&bytes)
            do {
                while let message = try proto.decodeMessage(from: &unread) {
                    state.received.append(Received(at: .now, message: message))
                    if message.type == .call, let reply = responder(message) {
                        var out = context.channel.allocator.buffer(capacity: 64)
                        try proto.encodeMessage(reply, into: &out)
                        context.writeAndFlush(NIOAny(out), promise: nil)
                    }
                }
            } catch {
                context.close(promise: nil)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}

// MARK: A client that never reads

/// A bare connection that does not read what the peer sends (until told to), with a tiny
/// receive buffer, so the peer's outbound queue fills up.
final class NonReadingConnection: Sendable {
    private let channel: any Channel
    private let collector: NIOLoopBound<ByteCollector>

    private init(channel: any Channel, collector: NIOLoopBound<ByteCollector>) {
        self.channel = channel
        self.collector = collector
    }

    static func connect(to address: FerryAddress) async throws -> NonReadingConnection {
        guard case .tcp(let host, let port) = address else { throw SetupError(what: "a TCP address is required") }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: false)
            .channelOption(.socketOption(.so_rcvbuf), value: 4096)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(ByteCollector()) }
            }
            .connect(host: host, port: port).get()
        let collector = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: ByteCollector.self), eventLoop: channel.eventLoop)
        }.get()
        return NonReadingConnection(channel: channel, collector: collector)
    }

    /// Writes `bytes` as they are.
    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    /// Starts reading at last, and returns every byte the peer sent once it closes the
    /// connection.
    func readUntilClosed() async throws -> ByteBuffer {
        try await channel.setOption(.autoRead, value: true).get()
        channel.read()
        try await channel.closeFuture.get()
        return try await channel.eventLoop.submit { [collector] in collector.value.bytes }.get()
    }

    private final class ByteCollector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        var bytes = ByteBuffer()

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var chunk = unwrapInboundIn(data)
            bytes.writeBuffer(&chunk)
        }
    }

    func close() async { try? await channel.close() }
}

/// A test could not set up what it needs.
struct SetupError: Error, CustomStringConvertible {
    var what: String
    var description: String { "setup failed: \(what)" }
}

// MARK: Counting

/// Counts how many holders are inside a section at once, and the most there ever were.
final class ConcurrencyGauge: Sendable {
    private let state = Mutex<(current: Int, peak: Int, total: Int)>((0, 0, 0))

    init() {}

    func enter() {
        state.withLock { state in
            state.current += 1
            state.total += 1
            state.peak = max(state.peak, state.current)
        }
    }

    func leave() { state.withLock { $0.current -= 1 } }

    /// The most holders that were ever inside at once.
    var peak: Int { state.withLock { $0.peak } }
    /// How many holders are inside now.
    var current: Int { state.withLock { $0.current } }
    /// How many entered in all.
    var total: Int { state.withLock { $0.total } }
}

/// A thread-safe counter.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    init() {}
    func increment() { value.wrappingAdd(1, ordering: .relaxed) }
    var count: Int { value.load(ordering: .relaxed) }
}

/// How long `body` takes, with its result.
func timed<T>(_ body: () async throws -> T) async rethrows -> (T, Duration) {
    let start = ContinuousClock.now
    let value = try await body()
    return (value, start.duration(to: .now))
}

/// The raw-proto bytes of `message`.
func frameBytes(_ message: FerryMessage) throws -> [UInt8] {
    try RawConnection.frame(message)
}
