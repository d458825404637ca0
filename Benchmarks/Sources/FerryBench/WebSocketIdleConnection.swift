import NIOCore
import NIOPosix

/// The smallest WebSocket client the idle measurement needs, so that tens of thousands of
/// client sessions cost the client process little: it sends the upgrade request, waits for
/// `101`, then sends whole binary messages (masked, as RFC 6455 asks of clients) and reads whole
/// unfragmented messages. Pings are answered with pongs.
final class MinimalWebSocketClientHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Messages kept for a reader that has not asked yet (a heartbeat between two reads); older
    /// ones are dropped, so an idle connection keeps at most this many.
    private static let keptMessages = 4

    private let host: String
    private let port: Int
    private let path: String
    private let upgraded: UpgradeSignal
    private var received: ByteBuffer?
    private var isUpgraded = false
    private var messages = CircularBuffer<ByteBuffer>(initialCapacity: 4)
    private var readers = CircularBuffer<EventLoopPromise<ByteBuffer>>(initialCapacity: 1)

    init(host: String, port: Int, path: String, upgraded: UpgradeSignal) {
        self.host = host
        self.port = port
        self.path = path
        self.upgraded = upgraded
    }

    func channelActive(context: ChannelHandlerContext) {
        let request =
            "GET \(path) HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: request)), promise: nil)
        context.fireChannelActive()
    }

    /// Sends one binary message.
    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        context.write(wrapOutboundOut(Self.frame(opcode: 0x2, payload: unwrapOutboundIn(data), allocator: context.channel.allocator)), promise: promise)
    }

    /// The next whole message, once it arrives.
    func nextMessage(on eventLoop: any EventLoop) -> EventLoopFuture<ByteBuffer> {
        if let message = messages.popFirst() { return eventLoop.makeSucceededFuture(message) }
        let promise = eventLoop.makePromise(of: ByteBuffer.self)
        readers.append(promise)
        return promise.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if received == nil { received = bytes } else { received!.writeBuffer(&bytes) }
        if !isUpgraded {
            guard let view = received?.readableBytesView, let end = view.firstRange(of: [13, 10, 13, 10]) else { return }
            let head = String(decoding: view[view.startIndex..<end.lowerBound], as: UTF8.self)
            received!.moveReaderIndex(to: end.upperBound)
            guard head.hasPrefix("HTTP/1.1 101") else {
                upgraded.settle(.failure(BenchError.unexpectedReply("upgrade refused: \(head.prefix { $0 != "\r" })")))
                context.close(promise: nil)
                return
            }
            isUpgraded = true
            upgraded.settle(.success(()))
        }
        while let (opcode, payload) = nextFrame() {
            switch opcode {
            case 0x1, 0x2: deliver(payload)
            case 0x8: context.close(promise: nil)
            case 0x9:
                context.writeAndFlush(wrapOutboundOut(Self.frame(opcode: 0xA, payload: payload, allocator: context.channel.allocator)), promise: nil)
            default: break
            }
        }
        if received?.readableBytes == 0 { received = nil }
    }

    func channelInactive(context: ChannelHandlerContext) {
        upgraded.settle(.failure(BenchError.connectionClosed))
        while let reader = readers.popFirst() { reader.fail(BenchError.connectionClosed) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func deliver(_ payload: ByteBuffer) {
        if let reader = readers.popFirst() {
            reader.succeed(payload)
            return
        }
        if messages.count == Self.keptMessages { messages.removeFirst() }
        messages.append(payload)
    }

    /// Takes one whole frame off the received bytes: its opcode and unmasked payload.
    private func nextFrame() -> (UInt8, ByteBuffer)? {
        guard var buffer = received, let first = buffer.readInteger(as: UInt8.self), let second = buffer.readInteger(as: UInt8.self) else {
            return nil
        }
        var length = Int(second & 0x7F)
        if length == 126 {
            guard let extended = buffer.readInteger(as: UInt16.self) else { return nil }
            length = Int(extended)
        } else if length == 127 {
            guard let extended = buffer.readInteger(as: UInt64.self) else { return nil }
            length = Int(extended)
        }
        var mask: [UInt8]?
        if second & 0x80 != 0 {
            guard let key = buffer.readBytes(length: 4) else { return nil }
            mask = key
        }
        guard var payload = buffer.readSlice(length: length) else { return nil }
        if let mask {
            payload = ByteBuffer(bytes: payload.readableBytesView.enumerated().map { $1 ^ mask[$0 % 4] })
        }
        received = buffer
        return (first & 0x0F, payload)
    }

    /// A final, masked frame.
    static func frame(opcode: UInt8, payload: ByteBuffer, allocator: ByteBufferAllocator) -> ByteBuffer {
        var frame = allocator.buffer(capacity: payload.readableBytes + 14)
        frame.writeInteger(0x80 | opcode)
        let length = payload.readableBytes
        if length < 126 {
            frame.writeInteger(UInt8(0x80 | length))
        } else if length <= 0xFFFF {
            frame.writeInteger(UInt8(0x80 | 126))
            frame.writeInteger(UInt16(length))
        } else {
            frame.writeInteger(UInt8(0x80 | 127))
            frame.writeInteger(UInt64(length))
        }
        let mask = (0..<4).map { _ in UInt8.random(in: 0...255) }
        frame.writeBytes(mask)
        frame.writeBytes(payload.readableBytesView.enumerated().map { $1 ^ mask[$0 % 4] })
        return frame
    }
}

@available(*, unavailable)
extension MinimalWebSocketClientHandler: Sendable {}

/// The outcome of the upgrade, settled once: by the handler, or by a connection that never came
/// up. Touched only on the connection's event loop.
final class UpgradeSignal: @unchecked Sendable {
    let promise: EventLoopPromise<Void>
    private var isSettled = false

    init(eventLoop: any EventLoop) {
        promise = eventLoop.makePromise()
    }

    func settle(_ result: Result<Void, any Error>) {
        guard !isSettled else { return }
        isSettled = true
        promise.completeWith(result)
    }
}

/// A WebSocket connection of the idle measurement, used from async code.
struct WebSocketIdleConnection: Sendable {
    let channel: any Channel

    /// Connects from `source`, asks for the upgrade of `path` and returns once it is agreed.
    static func connect(
        host: String, port: Int, path: String, group: any EventLoopGroup, bindTo source: SocketAddress? = nil
    ) async throws -> WebSocketIdleConnection {
        let eventLoop = group.next()
        let upgraded = UpgradeSignal(eventLoop: eventLoop)
        var bootstrap = ClientBootstrap(group: eventLoop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        MinimalWebSocketClientHandler(host: host, port: port, path: path, upgraded: upgraded))
                }
            }
        if let source { bootstrap = bootstrap.bind(to: source) }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: host, port: port).get()
        } catch {
            eventLoop.execute { upgraded.settle(.failure(error)) }
            throw error
        }
        try await upgraded.promise.futureResult.get()
        return WebSocketIdleConnection(channel: channel)
    }

    /// Sends `payload` as one message and returns the next message that arrives.
    func exchange(_ payload: ByteBuffer) async throws -> ByteBuffer {
        let channel = self.channel
        return try await channel.eventLoop.flatSubmit {
            do {
                let handler = try channel.pipeline.syncOperations.handler(type: MinimalWebSocketClientHandler.self)
                let reply = handler.nextMessage(on: channel.eventLoop)
                channel.writeAndFlush(payload, promise: nil)
                return reply
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
        }.get()
    }

    /// The next message that arrives (or one kept since the last read).
    func nextMessage() async throws -> ByteBuffer {
        let channel = self.channel
        return try await channel.eventLoop.flatSubmit {
            do {
                return try channel.pipeline.syncOperations.handler(type: MinimalWebSocketClientHandler.self).nextMessage(on: channel.eventLoop)
            } catch {
                return channel.eventLoop.makeFailedFuture(error)
            }
        }.get()
    }
}
