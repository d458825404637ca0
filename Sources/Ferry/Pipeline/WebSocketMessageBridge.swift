import FerryCore
import NIOCore
import NIOWebSocket

/// Carries a session's messages over WebSocket, one message per WebSocket message, in erpc's
/// mixer format (``FerryWebSocketProto``). It sits between NIOWebSocket's frame codec (which
/// parses, masks and checks frames) and the session's encoder:
///
/// - inbound, each whole text or binary message (fragments already joined by
///   `NIOWebSocketFrameAggregator`) is decoded and handed to `deliver`; a text message must be
///   valid UTF-8 (close code 1007 otherwise); a ping is answered with a pong; a close is
///   answered with a close, then the connection closes;
/// - outbound, the encoder's batch holds each message's payload behind a 4-byte length (see
///   ``WebSocketPipelineProto``): each payload becomes one binary frame, as erpc sends, masked
///   when this side is the client.
final class WebSocketMessageBridge: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = WebSocketFrame

    private let proto: FerryWebSocketProto
    private let isClient: Bool
    private let deliver: (FerryMessage, ChannelHandlerContext) -> Void
    /// Told why the remote closed, in its own words (its close code and reason).
    private let remoteClosed: (String) -> Void
    private var closeSent = false

    init(
        proto: FerryWebSocketProto, isClient: Bool, deliver: @escaping (FerryMessage, ChannelHandlerContext) -> Void,
        remoteClosed: @escaping (String) -> Void
    ) {
        self.proto = proto
        self.isClient = isClient
        self.deliver = deliver
        self.remoteClosed = remoteClosed
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .text:
            let payload = frame.unmaskedData
            if frame.opcode == .text, !Self.isValidUTF8(payload) {
                close(context, code: .dataInconsistentWithMessage, reason: "a text message that is not UTF-8")
                return
            }
            do {
                deliver(try proto.decodeMessage(payload), context)
            } catch {
                close(context, code: .protocolError, reason: "\(error)")
                context.fireErrorCaught(error)
            }
        case .ping:
            guard !closeSent else { return }
            send(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData), context: context, promise: nil)
            context.flush()
        case .connectionClose:
            // The remote is done: answer with its code (erpc's peers and browsers expect the
            // echo), then close.
            var data = frame.unmaskedData
            let code = data.readWebSocketErrorCode() ?? .normalClosure
            let reason = data.readString(length: data.readableBytes).flatMap { $0.isEmpty ? nil : $0 }
            remoteClosed("the remote closed the WebSocket with \(UInt16(webSocketErrorCode: code))\(reason.map { ": \($0)" } ?? "")")
            close(context, code: code, reason: nil)
        default:
            break
        }
    }

    /// Sends a close frame with `code` (once), then closes the connection.
    private func close(_ context: ChannelHandlerContext, code: WebSocketErrorCode, reason: String?) {
        guard !closeSent else {
            context.close(promise: nil)
            return
        }
        closeSent = true
        var data = context.channel.allocator.buffer(capacity: 2 + (reason?.utf8.count ?? 0))
        data.write(webSocketErrorCode: code)
        if let reason { data.writeString(String(reason.prefix(120))) }
        let written = context.eventLoop.makePromise(of: Void.self)
        send(WebSocketFrame(fin: true, opcode: .connectionClose, data: data), context: context, promise: written)
        context.flush()
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        written.futureResult.whenComplete { _ in loopBound.value.close(promise: nil) }
    }

    private static func isValidUTF8(_ buffer: ByteBuffer) -> Bool {
        buffer.withUnsafeReadableBytes { String(validating: $0, as: UTF8.self) != nil }
    }

    // MARK: Outbound

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var batch = unwrapOutboundIn(data)
        guard !closeSent else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        // Each payload is a slice of the batch: no copy. The write's promise goes with the last.
        var previous: WebSocketFrame?
        while let length = batch.readInteger(as: UInt32.self), let payload = batch.readSlice(length: Int(length)) {
            if let previous { send(previous, context: context, promise: nil) }
            previous = WebSocketFrame(fin: true, opcode: .binary, data: payload)
        }
        guard let last = previous else {
            promise?.succeed()
            return
        }
        send(last, context: context, promise: promise)
    }

    private func send(_ frame: WebSocketFrame, context: ChannelHandlerContext, promise: EventLoopPromise<Void>?) {
        var frame = frame
        if isClient { frame.maskKey = .random() }
        context.write(wrapOutboundOut(frame), promise: promise)
    }

    /// A close from this side says goodbye first (1000, or 1001 when the peer shuts down).
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .all, !closeSent, context.channel.isActive else {
            context.close(mode: mode, promise: promise)
            return
        }
        closeSent = true
        var data = context.channel.allocator.buffer(capacity: 2)
        data.write(webSocketErrorCode: .normalClosure)
        send(WebSocketFrame(fin: true, opcode: .connectionClose, data: data), context: context, promise: nil)
        context.flush()
        context.close(mode: mode, promise: promise)
    }
}

@available(*, unavailable)
extension WebSocketMessageBridge: Sendable {}

/// The session encoder's framing inside a WebSocket pipeline: each message's mixer payload
/// behind a 4-byte length, which ``WebSocketMessageBridge`` turns into one WebSocket message
/// each. The length never reaches the wire.
struct WebSocketPipelineProto: FerryProto {
    let webSocket: FerryWebSocketProto

    var name: String { "websocket-\(webSocket.subprotocol.rawValue)" }

    func encodeMessage(_ message: FerryMessage, into buffer: inout ByteBuffer) throws {
        let start = buffer.writerIndex
        buffer.writeInteger(UInt32(0))
        do {
            try webSocket.encodeMessage(message, into: &buffer)
        } catch {
            buffer.moveWriterIndex(to: start)
            throw error
        }
        buffer.setInteger(UInt32(buffer.writerIndex - start - 4), at: start)
    }

    /// Inbound WebSocket messages are decoded by the bridge, never from a byte stream.
    func decodeMessage(from buffer: inout ByteBuffer) throws -> FerryMessage? {
        nil
    }
}
