import Ferry
import NIOCore
import NIOPosix
import Synchronization

/// A bare socket to a Ferry peer that writes hand-made bytes and collects what comes back,
/// without any Ferry framing on this side.
final class RawConnection: Sendable {
    private let channel: any Channel
    private let inbox: Inbox

    private init(channel: any Channel, inbox: Inbox) {
        self.channel = channel
        self.inbox = inbox
    }

    /// Connects to `address`.
    static func connect(to address: FerryAddress) async throws -> RawConnection {
        let inbox = Inbox()
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(InboxHandler(inbox: inbox))
                }
            }
        let channel: any Channel
        switch address {
        case .tcp(let host, let port), .webSocket(let host, let port, _): channel = try await bootstrap.connect(host: host, port: port).get()
        case .unix(let path): channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
        }
        return RawConnection(channel: channel, inbox: inbox)
    }

    /// Writes `bytes` as they are.
    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    /// Writes the raw-proto frame of `message`.
    func send(_ message: FerryMessage) async throws {
        try await send(Self.frame(message))
    }

    /// The raw-proto frame of `message`, as bytes.
    static func frame(_ message: FerryMessage, proto: FerryRawProto = FerryRawProto()) throws -> [UInt8] {
        var buffer = ByteBuffer()
        try proto.encodeMessage(message, into: &buffer)
        return Array(buffer.readableBytesView)
    }

    /// Every byte received so far.
    var receivedBytes: [UInt8] { inbox.received }

    /// Whether the connection is closed.
    var isClosed: Bool { inbox.isClosed }

    /// The next whole message from the peer; nil when the connection closes first. Throws
    /// ``TimeoutError`` when neither happens within `timeout`, and the proto's error for bytes
    /// that are not a frame.
    func nextMessage(timeout: Duration = .seconds(5), proto: FerryRawProto = FerryRawProto()) async throws -> FerryMessage? {
        let deadline = ContinuousClock.now + timeout
        while true {
            switch try inbox.take(with: proto) {
            case .message(let message): return message
            case .closed: return nil
            case .waiting:
                guard ContinuousClock.now < deadline else { throw TimeoutError(what: "no message within \(timeout)") }
                try await Task.sleep(for: .milliseconds(5))
            }
        }
    }

    /// Waits until the peer closes the connection; false when it is still open after `timeout`.
    func waitUntilClosed(timeout: Duration = .seconds(5)) async -> Bool {
        await eventually(timeout: timeout) { self.inbox.isClosed }
    }

    /// Closes the connection from this side.
    func close() async {
        try? await channel.close()
    }

    // MARK: Internals

    private final class Inbox: Sendable {
        enum Take { case message(FerryMessage), closed, waiting }

        private struct State {
            var unread = ByteBuffer()
            var received: [UInt8] = []
            var closed = false
        }
        private let state = Mutex(State())

        func append(_ buffer: ByteBuffer) {
            state.withLock { state in
                var buffer = buffer
                state.received.append(contentsOf: buffer.readableBytesView)
                state.unread.writeBuffer(&buffer)
            }
        }

        func markClosed() { state.withLock { $0.closed = true } }

        var isClosed: Bool { state.withLock { $0.closed } }
        var received: [UInt8] { state.withLock { $0.received } }

        func take(with proto: FerryRawProto) throws -> Take {
            try state.withLock { state in
                if let message = try proto.decodeMessage(from: &state.unread) { return .message(message) }
                return state.closed ? .closed : .waiting
            }
        }
    }

    private final class InboxHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let inbox: Inbox

        init(inbox: Inbox) { self.inbox = inbox }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            inbox.append(unwrapInboundIn(data))
        }

        func channelInactive(context: ChannelHandlerContext) {
            inbox.markClosed()
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            // A reset by the peer ends the connection like a close does.
            context.close(promise: nil)
        }
    }
}
