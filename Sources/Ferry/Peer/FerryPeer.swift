import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization
import UnixSignals

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `close(2)`, named apart from the many `close` methods in scope.
func systemClose(_ descriptor: CInt) -> CInt { close(descriptor) }

/// `listen(2)`, named apart from ``FerryPeer/listen(_:tls:)``.
func systemListen(_ descriptor: CInt, _ backlog: CInt) -> CInt { listen(descriptor, backlog) }

/// A peer: it listens and dials, and every session it has can CALL and PUSH the remote side,
/// which can do the same back.
///
/// ```swift
/// let peer = FerryPeer()
/// peer.router.call("/math/add") { (args: Add, ctx) in args.a + args.b }
/// let listener = try await peer.listen(.tcp(host: "127.0.0.1", port: 9090))
///
/// let client = FerryPeer()
/// let session = try await client.dial(.tcp(host: "127.0.0.1", port: 9090))
/// let sum: Int = try await session.call("/math/add", Add(a: 1, b: 2))
/// ```
///
/// A peer is a swift-service-lifecycle `Service`: run it in a `ServiceGroup` and a SIGTERM
/// drains it gracefully (see ``shutdown(drainTimeout:)``).
public final class FerryPeer: Sendable {
    /// The peer's settings.
    public let configuration: Configuration
    /// The routes this peer serves, to callers on any of its sessions.
    public let router: FerryRouter
    /// The peer's ready sessions by ID.
    public let hub: FerrySessionHub
    /// The logger; each session adds its remote address.
    public let logger: Logger
    let eventLoopGroup: any EventLoopGroup
    /// One task executor per event loop: for handler tasks (``Configuration/handlerExecution``)
    /// and for callers (``FerrySession/taskExecutor``).
    let eventLoopExecutors: EventLoopTaskExecutors
    let listeners = Mutex<[FerryListener]>([])
    /// Every connection's session, ready or not, so shutdown reaches them all.
    let connections = Mutex<[ObjectIdentifier: FerrySession]>([:])
    let acceptedConnections: ConnectionCount
    /// Accepted connections that have not authenticated yet, when the peer verifies credentials.
    let unauthenticatedConnections: ConnectionCount
    let runningHandlers = Atomic<Int>(0)
    let draining = Atomic<Bool>(false)
    let shutdownFinished = Mutex<ShutdownProgress>(.running)
    /// The routes, frozen when the peer first listens, dials or serves.
    let frozenRoutes = Mutex<FerryRouteTable?>(nil)
    /// Every background task of the peer and its sessions; shutdown cancels and awaits them.
    let tasks = OwnedTasks()
    /// Wakes a draining shutdown when a session may have become idle or has closed.
    let drainProgress = DrainProgress()
    /// SIGUSR2, trapped from the first listen until ``run()`` takes it.
    let restartSignals = Mutex<UnixSignalsSequence?>(nil)
    /// Metrics, statistics and tracing, as ``Configuration/observability`` asks.
    let instruments: PeerInstruments

    enum ShutdownProgress {
        case running
        case draining([CheckedContinuation<Void, Never>])
        case finished
    }

    /// Creates a peer.
    ///
    /// - Parameters:
    ///   - configuration: Settings shared by every session.
    ///   - eventLoopGroup: The event loops for its connections; the shared NIO singleton by default.
    ///   - logger: Where the peer logs; per-message lines are at debug level.
    public init(
        configuration: Configuration = Configuration(),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger = Logger(label: "ferry")
    ) {
        self.configuration = configuration
        self.eventLoopGroup = eventLoopGroup
        self.eventLoopExecutors = EventLoopTaskExecutors(eventLoopGroup)
        self.logger = logger
        self.router = FerryRouter()
        self.hub = FerrySessionHub()
        self.acceptedConnections = ConnectionCount(limit: configuration.limits.maximumConnections)
        self.unauthenticatedConnections = ConnectionCount(limit: configuration.limits.maximumUnauthenticatedConnections)
        self.instruments = PeerInstruments(configuration.observability)
    }

    /// The routes sessions dispatch to: the router, frozen at its first use with the routes the
    /// peer serves itself, so that no message takes a lock to find its handler. Routes
    /// registered later are a programmer error.
    var routeTable: FerryRouteTable {
        frozenRoutes.withLock { frozen in
            if let frozen { return frozen }
            let table = router.freeze(builtIns: builtInRoutes)
            frozen = table
            return table
        }
    }

    // MARK: Listening

    /// Listens on `address`, optionally with TLS. Use a TLS configuration with
    /// `certificateVerification` set and `trustRoots` to require client certificates.
    ///
    /// Accept errors such as running out of file descriptors pause accepting for a second instead
    /// of spinning.
    public func listen(_ address: FerryAddress, tls: TLSConfiguration? = nil) async throws -> FerryListener {
        guard !isDraining else {
            throw FerryLifecycleError.shuttingDown
        }
        await armRestartSignal()
        _ = routeTable
        let sslContext: NIOSSLContext?
        do {
            sslContext = try tls.map { try NIOSSLContext(configuration: $0) }
        } catch {
            throw FerryLifecycleError.listenFailed("\(address): TLS configuration: \(error)")
        }
        let isUnix = address.isUnixDomainSocket
        let unixCounter = Atomic<Int>(0)
        let bootstrap = ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.backlog, value: Self.acceptBacklog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            // Out of file descriptors, accept fails at once and would be retried in a busy loop:
            // pause accepting instead.
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AcceptPauseHandler())
                }
            }
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: waterMark)
            .childChannelInitializer { [self] channel in
                // Counted before it is checked, in one atomic step: accepts on other loops
                // cannot pass the limit together.
                guard admitConnection() else {
                    logger.warning("refusing a connection: at the connection limit", metadata: ["limit": "\(configuration.limits.maximumConnections ?? 0)"])
                    return channel.eventLoop.makeFailedFuture(FerryLifecycleError.connectionLimit)
                }
                var authSlot: UnauthenticatedSlot?
                if configuration.auth?.verify != nil {
                    guard let slot = UnauthenticatedSlot(in: unauthenticatedConnections) else {
                        acceptedConnections.release()
                        logger.warning(
                            "refusing a connection: at the limit of unauthenticated connections",
                            metadata: ["limit": "\(configuration.limits.maximumUnauthenticatedConnections ?? 0)"])
                        return channel.eventLoop.makeFailedFuture(FerryLifecycleError.connectionLimit)
                    }
                    channel.closeFuture.whenComplete { _ in slot.release() }
                    authSlot = slot
                }
                let remote = isUnix
                    ? "\(address)#\(unixCounter.wrappingAdd(1, ordering: .relaxed).newValue)"
                    : Self.describe(channel.remoteAddress)
                return channel.eventLoop.makeCompletedFuture {
                    if !isUnix { try channel.syncOptions?.setOption(.socketOption(.tcp_nodelay), value: 1) }
                    do {
                        try countWireBytes(of: channel)
                        if let sslContext {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                        }
                        if case .webSocket(_, _, let path) = address {
                            try acceptWebSocketConnection(on: channel, path: path, remoteAddress: remote, authSlot: authSlot)
                        } else {
                            _ = try acceptSession(on: channel, remoteAddress: remote, authSlot: authSlot)
                        }
                    } catch {
                        acceptedConnections.release()
                        authSlot?.release()
                        throw error
                    }
                }
            }
        // The socket is opened here rather than by the bootstrap so that a graceful restart can
        // hand it to a successor process; a successor adopts the one it inherited.
        let inherited = ListenerHandoff.adopt(address)
        let descriptor = try inherited ?? ListenerHandoff.openListeningSocket(address, backlog: Self.acceptBacklog)
        let channel: any Channel
        do {
            channel = try await bootstrap.withBoundSocket(descriptor).get()
            // Registering an adopted socket listens again with NIO's own backlog; ask once more
            // for ours (on Linux a second listen() only changes the queue length).
            _ = systemListen(descriptor, Self.acceptBacklog)
        } catch {
            if inherited == nil { _ = systemClose(descriptor) }
            throw FerryLifecycleError.listenFailed("\(address): \(error)")
        }
        let bound: FerryAddress
        switch address {
        case .tcp(let host, _): bound = .tcp(host: host, port: channel.localAddress?.port ?? 0)
        case .webSocket(let host, _, let path): bound = .webSocket(host: host, port: channel.localAddress?.port ?? 0, path: path)
        case .unix: bound = address
        }
        let listener = FerryListener(address: bound, requestedAddress: address, descriptor: descriptor, channel: channel)
        listeners.withLock { $0.append(listener) }
        logger.info("listening", metadata: ["address": "\(bound)", "tls": "\(tls != nil)", "inherited": "\(inherited != nil)"])
        return listener
    }

    /// Serves a connection opened elsewhere (by another bootstrap, a socket pair, an in-memory
    /// channel) as if this peer had accepted it, and returns its session, as erpc's `ServeConn`
    /// does. The session's handlers are added at the end of the channel's pipeline; TLS, if any,
    /// must already be in it. The accept hook, auth, heartbeats, limits and shutdown apply as for
    /// a listener's connections (`maximumConnections` only counts it).
    ///
    /// Call it on the channel's event loop, before the channel's first read. Throws
    /// ``FerryLifecycleError/shuttingDown`` once the peer is draining.
    public func serve(_ channel: any Channel, remoteAddress: String? = nil) throws -> FerrySession {
        channel.eventLoop.preconditionInEventLoop()
        guard !isDraining else { throw FerryLifecycleError.shuttingDown }
        acceptedConnections.add()
        do {
            return try acceptSession(on: channel, remoteAddress: remoteAddress ?? Self.describe(channel.remoteAddress))
        } catch {
            acceptedConnections.release()
            throw error
        }
    }

    /// Counts a new accepted connection; false (and not counted) when it would pass the limit.
    private func admitConnection() -> Bool {
        acceptedConnections.admit()
    }

    /// Makes the session of an accepted connection (already counted) and starts it. `authSlot`
    /// is its place among unauthenticated connections, given back when it authenticates.
    func acceptSession(
        on channel: any Channel, remoteAddress: String, overWebSocket: Bool = false, authSlot: UnauthenticatedSlot? = nil
    ) throws -> FerrySession {
        let session = FerrySession(
            channel: channel, peer: self, isDialled: false, remoteAddress: remoteAddress, dialTarget: nil, authSlot: authSlot)
        if overWebSocket {
            try addWebSocketSessionHandlers(to: channel, session: session, isClient: false)
        } else {
            try addSessionHandlers(to: channel, session: session)
        }
        track(session)
        startAccepted(session)
        return session
    }

    /// Runs the accept hook (if any) before the session's messages are handled, then lets the
    /// session in: into the hub, or to the auth handshake.
    private func startAccepted(_ session: FerrySession) {
        guard let hook = configuration.hooks.onAccept else {
            admitAccepted(session)
            return
        }
        let started = tasks.start { [self] in
            do {
                try await hook(session)
            } catch {
                logger.info("connection rejected by the accept hook", metadata: ["remote": "\(session.remoteAddress)", "error": "\(error)"])
                session.recordCloseReason("rejected by the accept hook: \(error)")
                try? await session.channel.close()
                return
            }
            admitAccepted(session)
        }
        if !started { session.closeConnection(session.channel, reason: "the peer has stopped") }
    }

    private func admitAccepted(_ session: FerrySession) {
        let requiresAuth = configuration.auth?.verify != nil
        if let auth = configuration.auth, requiresAuth {
            session.enforceAuthDeadline(auth.timeout)
        }
        session.admit(requiresAuth: requiresAuth)
        logger.debug("session accepted", metadata: ["remote": "\(session.remoteAddress)"])
    }

    // MARK: Internals

    var waterMark: ChannelOptions.Types.WriteBufferWaterMark {
        let high = max(configuration.limits.maximumQueuedOutboundBytes, 2)
        return .init(low: high / 2, high: high)
    }

    func addSessionHandlers(to channel: any Channel, session: FerrySession) throws {
        let proto = configuration.proto
        let clock = ConnectionClock()
        let timers = SessionTimerHandler.Settings(
            pingInterval: configuration.heartbeat.pingInterval,
            idleTimeout: configuration.idleTimeout,
            readTimeout: proto is FerryRawProto ? configuration.readTimeout : nil,
            maximumAge: configuration.maximumSessionAge)
        let encoder = MessageEncoderHandler(proto: proto) { count in session.repliesLeft(count) }
        let sessionHandler = SessionHandler(session: session, replies: encoder, clock: clock)
        let handlers: [any ChannelHandler] = [
            SessionTimerHandler(settings: timers, clock: clock),
            ByteToMessageHandler(FerryMessageDecoder(proto: proto) { sessionHandler.receive($0, context: $1) }),
            encoder,
            sessionHandler,
        ]
        try channel.pipeline.syncOperations.addHandlers(handlers)
    }

    /// Tracks a session whose connection exists, so shutdown reaches it. (A dial that never
    /// connects builds a pipeline too, but must leave no trace.)
    func track(_ session: FerrySession) {
        connections.withLock { $0[ObjectIdentifier(session)] = session }
    }

    /// The number of connections (ready or not) this peer holds.
    var connectionCount: Int { connections.withLock { $0.count } }

    /// Takes a handler slot; false when the peer is at its handler bound.
    func admitHandler() -> Bool {
        let limit = configuration.limits.maximumConcurrentHandlers
        let running = runningHandlers.wrappingAdd(1, ordering: .relaxed).newValue
        if running > limit {
            runningHandlers.wrappingSubtract(1, ordering: .relaxed)
            return false
        }
        instruments.metrics?.handlersRunning.increment()
        return true
    }

    func releaseHandler() {
        runningHandlers.wrappingSubtract(1, ordering: .relaxed)
        instruments.metrics?.handlersRunning.decrement()
        drainProgressMade()
    }

    /// A session is ready for use (hooks and auth passed): it joins the hub, and its
    /// disconnection will be reported.
    func sessionReady(_ session: FerrySession) {
        hub.add(session)
        instruments.metrics?.sessionOpened(dialled: session.isDialled)
    }

    func sessionClosed(_ session: FerrySession, wasReady: Bool, reason: String) {
        connections.withLock { $0[ObjectIdentifier(session)] = nil }
        if !session.isDialled { acceptedConnections.release() }
        hub.remove(session)
        if wasReady {
            instruments.metrics?.sessionClosed(reason: reason)
            configuration.hooks.onDisconnect?(session)
        }
        drainProgressMade()
    }

    /// Something a draining shutdown waits for may have happened.
    func drainProgressMade() {
        if isDraining { drainProgress.signal() }
    }

    static func describe(_ address: SocketAddress?) -> String {
        guard let address else { return "unknown" }
        switch address {
        case .v4: return "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
        case .v6: return "[\(address.ipAddress ?? "?")]:\(address.port ?? 0)"
        case .unixDomainSocket: return "unix:\(address.pathname ?? "")"
        }
    }

    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}
