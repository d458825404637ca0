import FerryCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOWebSocket

extension FerryPeer {
    /// How a peer speaks WebSocket (``FerryAddress/webSocket(host:port:path:)``): erpc v6's
    /// WebSocket mixer, one Ferry message per WebSocket message.
    ///
    /// There is no sub-protocol negotiation (as in erpc): both ends must be configured with the
    /// same ``subprotocol``.
    public struct WebSocket: Sendable {
        /// The format of each message: erpc's JSON (its default, what browsers use) or its
        /// protobuf payload. Default JSON.
        public var subprotocol: FerryWebSocketProto.Subprotocol
        /// The largest WebSocket message accepted, fragments joined; a larger one closes the
        /// connection (close code 1009). Default 16 MiB.
        public var maximumMessageSize: Int
        /// Decides, from its HTTP request, whether an upgrade on a listener's path may go ahead:
        /// false (or an error) answers 403 and closes, before any session exists. The place
        /// for an `Origin` check and for a token in a header or the query, as erpc's
        /// `PreWebsocketHandshakePlugin`. nil lets every upgrade on the path through.
        ///
        /// ```swift
        /// configuration.webSocket.shouldUpgrade = { request in
        ///     request.headers.first(name: "Origin") == "https://app.example.com" && request.query["token"] == expected
        /// }
        /// ```
        public var shouldUpgrade: (@Sendable (Request) async throws -> Bool)?

        /// Creates WebSocket settings; every argument has a default.
        public init(
            subprotocol: FerryWebSocketProto.Subprotocol = .json, maximumMessageSize: Int = 16 << 20,
            shouldUpgrade: (@Sendable (Request) async throws -> Bool)? = nil
        ) {
            self.subprotocol = subprotocol
            self.maximumMessageSize = maximumMessageSize
            self.shouldUpgrade = shouldUpgrade
        }

        /// The HTTP request that asks for a WebSocket upgrade.
        public struct Request: Sendable {
            /// The request target's path, without the query.
            public var path: String
            /// The query's parameters, decoded; the first value of a repeated name.
            public var query: [String: String]
            /// The request's headers; names match case-insensitively (`headers.first(name: "origin")`).
            public var headers: HTTPHeaders
            /// The remote's address, as the session would show it.
            public var remoteAddress: String
        }
    }

    /// The mixer codec for this peer's WebSocket sessions.
    var webSocketProto: FerryWebSocketProto {
        FerryWebSocketProto(
            subprotocol: configuration.webSocket.subprotocol, maximumMessageSize: configuration.webSocket.maximumMessageSize,
            filters: configuration.filters)
    }

    // MARK: Accepting

    /// Sets up a connection accepted by a WebSocket listener on `path`. It was counted at
    /// accept and becomes a session once the upgrade succeeds. A connection that ends before
    /// that releases its count here; one that has not upgraded within the read timeout (30 s
    /// when there is none) is closed, so silent or slow HTTP clients cannot pile up.
    func acceptWebSocketConnection(on channel: any Channel, path: String, remoteAddress: String, authSlot: UnauthenticatedSlot?) throws {
        let upgraded = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
        try addWebSocketServerHandlers(to: channel, path: path, remoteAddress: remoteAddress) { [self] channel in
            _ = try acceptSession(on: channel, remoteAddress: remoteAddress, overWebSocket: true, authSlot: authSlot)
            upgraded.value = true
        }
        let giveUp = channel.eventLoop.scheduleTask(in: TimeAmount(configuration.readTimeout ?? .seconds(30))) {
            if !upgraded.value { channel.close(promise: nil) }
        }
        channel.closeFuture.whenComplete { [self] _ in
            giveUp.cancel()
            if !upgraded.value { acceptedConnections.release() }
        }
    }

    /// Sets up an accepted connection for a WebSocket listener on `path`: HTTP/1.1 until a
    /// WebSocket upgrade on that path, then a session. A request that is not an upgrade to
    /// `path` gets an HTTP error and the connection closes. `onUpgrade` makes the session.
    func addWebSocketServerHandlers(
        to channel: any Channel, path: String, remoteAddress: String, onUpgrade: @escaping @Sendable (any Channel) throws -> Void
    ) throws {
        let refuser = NotAWebSocketUpgrade(path: path)
        let boundRefuser = NIOLoopBound(refuser, eventLoop: channel.eventLoop)
        let hook = configuration.webSocket.shouldUpgrade
        let upgrader = NIOWebSocketServerUpgrader(
            maxFrameSize: configuration.webSocket.maximumMessageSize,
            automaticErrorHandling: true,
            shouldUpgrade: { channel, head in
                guard Self.requestPath(head.uri) == path else { return channel.eventLoop.makeSucceededFuture(nil) }
                guard let hook else { return channel.eventLoop.makeSucceededFuture(HTTPHeaders()) }
                let request = WebSocket.Request(
                    path: path, query: Self.queryParameters(head.uri), headers: head.headers, remoteAddress: remoteAddress)
                let decided = channel.eventLoop.makePromise(of: HTTPHeaders?.self)
                decided.completeWithTask {
                    guard (try? await hook(request)) == true else { return nil }
                    return HTTPHeaders()
                }
                // A refusal reaches the refuser as a plain request on the path: it answers 403.
                return decided.futureResult.hop(to: channel.eventLoop).map { headers in
                    if headers == nil { boundRefuser.value.refusedByHook = true }
                    return headers
                }
            },
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    // The refuser speaks HTTP: it leaves before the first frame arrives.
                    channel.pipeline.syncOperations.removeHandler(boundRefuser.value, promise: nil)
                    try onUpgrade(channel)
                }
            })
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withServerUpgrade: (upgraders: [upgrader], completionHandler: { _ in }))
        try channel.pipeline.syncOperations.addHandler(refuser)
    }

    /// The path of a request target, without its query.
    static func requestPath(_ uri: String) -> Substring {
        uri.prefix { $0 != "?" && $0 != "#" }
    }

    /// The decoded query parameters of a request target; the first value of a repeated name.
    static func queryParameters(_ uri: String) -> [String: String] {
        guard let start = uri.firstIndex(of: "?") else { return [:] }
        let query = uri[uri.index(after: start)...].prefix { $0 != "#" }
        var parameters: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (text: Substring) in String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(text) }
            let name = decode(parts[0])
            if parameters[name] == nil { parameters[name] = parts.count > 1 ? decode(parts[1]) : "" }
        }
        return parameters
    }

    // MARK: Dialling

    /// Sets up a dialled connection to ask for a WebSocket upgrade of `path` on `host`; once the
    /// server agrees, `onUpgrade` makes the session and `upgraded` succeeds. A refusal, or a
    /// connection that closes first, fails `upgraded`.
    func addWebSocketClientHandlers(
        to channel: any Channel, host: String, port: Int, path: String, upgraded: EventLoopPromise<Void>,
        onUpgrade: @escaping @Sendable (any Channel) throws -> Void
    ) throws {
        let requester = WebSocketUpgradeRequester(host: host, port: port, path: path, upgraded: upgraded)
        let boundRequester = NIOLoopBound(requester, eventLoop: channel.eventLoop)
        let upgrader = NIOWebSocketClientUpgrader(
            maxFrameSize: configuration.webSocket.maximumMessageSize,
            automaticErrorHandling: true,
            upgradePipelineHandler: { channel, _ in
                channel.eventLoop.makeCompletedFuture {
                    // The requester speaks HTTP: it leaves before the first frame arrives.
                    channel.pipeline.syncOperations.removeHandler(boundRequester.value, promise: nil)
                    try onUpgrade(channel)
                }
            })
        try channel.pipeline.syncOperations.addHTTPClientHandlers(
            withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in upgraded.succeed() }))
        try channel.pipeline.syncOperations.addHandler(requester)
    }

    // MARK: The session over WebSocket

    /// Adds a session's handlers behind NIOWebSocket's frame codec, which the upgrade put at the
    /// end of the pipeline: the timers before the frame decoder (they watch bytes), then the
    /// fragment aggregator, the message bridge, the encoder and the session handler.
    func addWebSocketSessionHandlers(to channel: any Channel, session: FerrySession, isClient: Bool) throws {
        let clock = ConnectionClock()
        let timers = SessionTimerHandler.Settings(
            pingInterval: configuration.heartbeat.pingInterval,
            idleTimeout: configuration.idleTimeout,
            readTimeout: nil,
            maximumAge: configuration.maximumSessionAge)
        let encoder = MessageEncoderHandler(proto: WebSocketPipelineProto(webSocket: webSocketProto)) { count in session.repliesLeft(count) }
        let sessionHandler = SessionHandler(session: session, replies: encoder, clock: clock)
        let operations = channel.pipeline.syncOperations
        let frameDecoder = try operations.handler(type: ByteToMessageHandler<WebSocketFrameDecoder>.self)
        try operations.addHandler(SessionTimerHandler(settings: timers, clock: clock), position: .before(frameDecoder))
        try operations.addHandlers([
            NIOWebSocketFrameAggregator(
                minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 1 << 16,
                maxAccumulatedFrameSize: configuration.webSocket.maximumMessageSize),
            WebSocketMessageBridge(
                proto: webSocketProto, isClient: isClient, deliver: { sessionHandler.receive($0, context: $1) },
                remoteClosed: { session.recordCloseReason($0) }),
            encoder,
            sessionHandler,
        ])
    }
}

/// Answers an HTTP request that is not a WebSocket upgrade of the listener's path: 404 for
/// another path, 403 when the upgrade hook refused it, 426 (Upgrade Required) for the path
/// itself, then closes.
private final class NotAWebSocketUpgrade: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let path: String
    /// Set when ``FerryPeer/WebSocket/shouldUpgrade`` said no to the request now answered.
    var refusedByHook = false

    init(path: String) {
        self.path = path
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(let head) = unwrapInboundIn(data) else { return }
        let status: HTTPResponseStatus =
            refusedByHook ? .forbidden : FerryPeer.requestPath(head.uri) == path ? .upgradeRequired : .notFound
        let body =
            switch status {
            case .forbidden: "the WebSocket upgrade was refused\n"
            case .notFound: "no WebSocket endpoint here\n"
            default: "this endpoint speaks WebSocket only\n"
            }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.utf8.count))
        headers.add(name: "Connection", value: "close")
        if status == .upgradeRequired { headers.add(name: "Upgrade", value: "websocket") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in loopBound.value.close(promise: nil) }
    }
}

/// Sends the WebSocket upgrade request once the connection is up, and fails the dial when the
/// server answers anything but the upgrade, or the connection ends first.
private final class WebSocketUpgradeRequester: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    private let host: String
    private let port: Int
    private let path: String
    private let upgraded: EventLoopPromise<Void>

    init(host: String, port: Int, path: String, upgraded: EventLoopPromise<Void>) {
        self.host = host
        self.port = port
        self.path = path
        self.upgraded = upgraded
    }

    func channelActive(context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)")
        headers.add(name: "Content-Length", value: "0")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Only a refused upgrade reaches this handler: the upgrade handler takes the rest.
        if case .head(let head) = unwrapInboundIn(data) {
            upgraded.fail(FerryStatus.dialFailed("the server refused the WebSocket upgrade: HTTP \(head.status.code) \(head.status.reasonPhrase)"))
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        upgraded.fail(FerryStatus.dialFailed("WebSocket upgrade: \(error)", underlyingError: error))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        upgraded.fail(FerryStatus.dialFailed("the connection closed during the WebSocket upgrade"))
        context.fireChannelInactive()
    }
}
