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
    private let eventLoopGroup: any EventLoopGroup
    /// One task executor per event loop: for handler tasks (``Configuration/handlerExecution``)
    /// and for callers (``FerrySession/taskExecutor``).
    let eventLoopExecutors: EventLoopTaskExecutors
    private let listeners = Mutex<[FerryListener]>([])
    /// Every connection's session, ready or not, so shutdown reaches them all.
    private let connections = Mutex<[ObjectIdentifier: FerrySession]>([:])
    private let acceptedCount = Atomic<Int>(0)
    private let runningHandlers = Atomic<Int>(0)
    private let draining = Atomic<Bool>(false)
    private let shutdownFinished = Mutex<ShutdownProgress>(.running)
    /// The routes, frozen when the peer first listens, dials or serves.
    private let frozenRoutes = Mutex<FerryRouteTable?>(nil)
    /// Every background task of the peer and its sessions; shutdown cancels and awaits them.
    let tasks = OwnedTasks()
    /// Wakes a draining shutdown when a session may have become idle or has closed.
    let drainProgress = DrainProgress()

    private enum ShutdownProgress {
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
    }

    /// The routes sessions dispatch to: the router, frozen at its first use, so that no
    /// message takes a lock to find its handler. Routes registered later are a programmer error.
    var routeTable: FerryRouteTable {
        frozenRoutes.withLock { frozen in
            if let frozen { return frozen }
            let table = router.freeze()
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
        _ = routeTable
        let sslContext: NIOSSLContext?
        do {
            sslContext = try tls.map { try NIOSSLContext(configuration: $0) }
        } catch {
            throw FerryLifecycleError.listenFailed("\(address): TLS configuration: \(error)")
        }
        let isUnix: Bool
        if case .unix = address { isUnix = true } else { isUnix = false }
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
                let remote = isUnix
                    ? "\(address)#\(unixCounter.wrappingAdd(1, ordering: .relaxed).newValue)"
                    : Self.describe(channel.remoteAddress)
                return channel.eventLoop.makeCompletedFuture {
                    if !isUnix { try channel.syncOptions?.setOption(.socketOption(.tcp_nodelay), value: 1) }
                    do {
                        if let sslContext {
                            try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                        }
                        _ = try acceptSession(on: channel, remoteAddress: remote)
                    } catch {
                        acceptedCount.wrappingSubtract(1, ordering: .relaxed)
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
        acceptedCount.wrappingAdd(1, ordering: .relaxed)
        do {
            return try acceptSession(on: channel, remoteAddress: remoteAddress ?? Self.describe(channel.remoteAddress))
        } catch {
            acceptedCount.wrappingSubtract(1, ordering: .relaxed)
            throw error
        }
    }

    /// Counts a new accepted connection; false (and not counted) when it would pass the limit.
    private func admitConnection() -> Bool {
        let count = acceptedCount.wrappingAdd(1, ordering: .relaxed).newValue
        guard let limit = configuration.limits.maximumConnections, count > limit else { return true }
        acceptedCount.wrappingSubtract(1, ordering: .relaxed)
        return false
    }

    /// Makes the session of an accepted connection (already counted) and starts it.
    private func acceptSession(on channel: any Channel, remoteAddress: String) throws -> FerrySession {
        let session = FerrySession(channel: channel, peer: self, isDialled: false, remoteAddress: remoteAddress, dialTarget: nil)
        try addSessionHandlers(to: channel, session: session)
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

    // MARK: Dialling

    /// Dials `address`, optionally with TLS, runs the dial hook and the auth handshake, and
    /// returns the ready session. Failures throw ``FerryStatus`` 105 (dial failed) or the auth
    /// status.
    public func dial(_ address: FerryAddress, tls: TLSConfiguration? = nil, serverHostname: String? = nil) async throws -> FerrySession {
        let sslContext: NIOSSLContext?
        do {
            sslContext = try tls.map { try NIOSSLContext(configuration: $0) }
        } catch {
            throw FerryStatus.dialFailed("TLS configuration: \(error)", underlyingError: error)
        }
        return try await dial(address, sslContext: sslContext, serverHostname: serverHostname)
    }

    /// ``dial(_:tls:serverHostname:)`` with a TLS context made once for many dials.
    package func dial(_ address: FerryAddress, sslContext: NIOSSLContext?, serverHostname: String?) async throws -> FerrySession {
        _ = routeTable
        let target = DialTarget(address: address, tls: sslContext, serverHostname: serverHostname)
        let channel = try await connect(target, reusing: nil)
        let session: FerrySession
        do {
            session = try await channel.eventLoop.submit {
                try channel.pipeline.syncOperations.handler(type: SessionHandler.self).session
            }.get()
        } catch {
            // The remote closed at once (a connection limit, an accept hook): the pipeline is gone.
            throw FerryStatus.dialFailed("\(address): the connection closed while it was set up")
        }
        track(session)
        guard channel.isActive else {
            connections.withLock { $0[ObjectIdentifier(session)] = nil }
            throw FerryStatus.dialFailed("\(address): the connection closed while it was set up")
        }
        do {
            try await configuration.hooks.onDial?(session)
            if let auth = configuration.auth, let credential = auth.credential {
                try await session.authenticate(credential: try await credential(), timeout: auth.timeout, on: channel)
            }
        } catch {
            session.recordCloseReason("dial refused: \(error)")
            try? await channel.close()
            if let refused = error as? FerrySession.AuthRefused { throw refused.status }
            throw (error as? FerryStatus) ?? FerryStatus.dialFailed("\(error)", underlyingError: error)
        }
        guard session.state.withLock({ $0.handshakeFinished() }) else {
            throw FerryStatus.dialFailed("\(address): the connection closed while it was set up")
        }
        sessionReady(session)
        logger.debug("session dialled", metadata: ["remote": "\(address)"])
        return session
    }

    /// Opens a connection to `target` whose pipeline serves `existing` (a redial) or a new session.
    func connect(_ target: DialTarget, reusing existing: FerrySession?) async throws -> any Channel {
        let address = target.address
        var bootstrap = ClientBootstrap(group: eventLoopGroup)
            .connectTimeout(TimeAmount(configuration.dialTimeout))
            .channelOption(.writeBufferWaterMark, value: waterMark)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext = target.tls {
                        var hostname = target.serverHostname
                        if hostname == nil, case .tcp(let host, _) = address, !Self.isIPAddress(host) { hostname = host }
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: sslContext, serverHostname: hostname))
                    }
                    let session = existing ?? FerrySession(channel: channel, peer: self, isDialled: true, remoteAddress: address.description, dialTarget: target)
                    try addSessionHandlers(to: channel, session: session)
                }
            }
        do {
            switch address {
            case .tcp(let host, let port):
                bootstrap = bootstrap.channelOption(.socketOption(.tcp_nodelay), value: 1)
                return try await bootstrap.connect(host: host, port: port).get()
            case .unix(let path):
                return try await bootstrap.connect(unixDomainSocketPath: path).get()
            }
        } catch {
            throw FerryStatus.dialFailed("\(address): \(error)", underlyingError: error)
        }
    }

    // MARK: Lifecycle

    /// Whether a graceful shutdown has begun: inbound calls are refused with 106.
    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Shuts down gracefully: stops accepting, runs the `onShutdown` hook, asks every accepted
    /// session to go away (a `/ferry/goaway` push: redialling Ferry clients move to another
    /// connection), answers new inbound calls with 106 "Shutting Down" (not handled, safe to
    /// retry), lets running handlers finish and their replies go out, closes sessions once they
    /// are idle and quiet, and closes the rest when `drainTimeout` (default: the configured one)
    /// expires. Calling it again waits for the first call to finish.
    public func shutdown(drainTimeout: Duration? = nil) async {
        let first: Bool = shutdownFinished.withLock { progress in
            guard case .running = progress else { return false }
            progress = .draining([])
            return true
        }
        guard first else {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done: Bool = shutdownFinished.withLock { progress in
                    if case .draining(var waiters) = progress {
                        waiters.append(continuation)
                        progress = .draining(waiters)
                        return false
                    }
                    return true
                }
                if done { continuation.resume() }
            }
            return
        }
        draining.store(true, ordering: .relaxed)
        let timeout = drainTimeout ?? configuration.drainTimeout
        logger.info("shutting down", metadata: ["drain_timeout": "\(timeout)"])
        let listeners = self.listeners.withLock { listeners in
            defer { listeners = [] }
            return listeners
        }
        for listener in listeners { await listener.close() }
        await configuration.hooks.onShutdown?()

        // Tell every accepted session to go away: Ferry clients move to a new connection and
        // close this one themselves; calls that still arrive are answered 106 (not handled).
        for session in connections.withLock({ Array($0.values) }) where !session.isDialled {
            session.sendGoAway()
        }
        let deadline = ContinuousClock.now + timeout
        let quietPeriod = min(Self.goAwayQuietPeriod, timeout)
        while true {
            let open = connections.withLock { Array($0.values) }
            if open.isEmpty { break }
            let expired = ContinuousClock.now >= deadline
            for session in open where expired || session.isDrained(quietFor: quietPeriod) {
                // A drained session may still have replies in its channel's queue (a remote that
                // reads slowly): closing now would drop them.
                if !expired, await !session.outboundWritten() { continue }
                session.recordCloseReason(expired ? "shutdown: drain timeout expired" : "shutdown")
                await session.close()
            }
            if expired { break }
            // Woken when a handler ends, a reply is written, a queue drains or a session closes;
            // else when the quiet period of the latest arrival may have passed, or at the deadline.
            await drainProgress.wait(until: min(deadline, ContinuousClock.now + quietPeriod))
        }
        await tasks.cancelAllAndWait()
        let waiters: [CheckedContinuation<Void, Never>] = shutdownFinished.withLock { progress in
            defer { progress = .finished }
            if case .draining(let waiters) = progress { return waiters }
            return []
        }
        for waiter in waiters { waiter.resume() }
        logger.info("shut down")
    }

    /// Closes every listener and every session at once. Pending calls fail with status 102.
    public func close() async {
        await shutdown(drainTimeout: .zero)
    }

    /// How long a draining session must have been idle and silent (since the go-away was sent
    /// and since its last inbound message) before it is closed: long enough for calls the
    /// remote sent before it saw the go-away to arrive and be answered.
    static let goAwayQuietPeriod = Duration.milliseconds(250)

    /// The accept queue length asked of the kernel (capped by `net.core.somaxconn`): large, so a
    /// burst of connections waits to be accepted instead of having its SYNs dropped and retried
    /// a second later.
    static let acceptBacklog: Int32 = 4096

    /// The PUSH a draining peer sends to ask the remote to move to another connection.
    public static let goAwayRoute = "/ferry/goaway"

    /// Restarts without downtime: starts a copy of this process (same executable, arguments
    /// and environment) that inherits the listening sockets, waits until it listens on them,
    /// then shuts this peer down gracefully. If the copy does not come up, this peer keeps
    /// serving and the error is thrown.
    public func restart(readyTimeout: Duration = .seconds(30)) async throws {
        let listeners = self.listeners.withLock { $0 }
        try await ListenerHandoff.startSuccessor(
            listeners: listeners.map { ($0.requestedAddress, $0.descriptor) }, readyTimeout: readyTimeout, logger: logger)
        logger.info("successor is listening; draining this process")
        await shutdown()
    }

    // MARK: Internals

    private var waterMark: ChannelOptions.Types.WriteBufferWaterMark {
        let high = max(configuration.limits.maximumQueuedOutboundBytes, 2)
        return .init(low: high / 2, high: high)
    }

    private func addSessionHandlers(to channel: any Channel, session: FerrySession) throws {
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
    private func track(_ session: FerrySession) {
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
        return true
    }

    func releaseHandler() {
        runningHandlers.wrappingSubtract(1, ordering: .relaxed)
        drainProgressMade()
    }

    /// A session is ready for use (hooks and auth passed): it joins the hub, and its
    /// disconnection will be reported.
    func sessionReady(_ session: FerrySession) {
        hub.add(session)
    }

    func sessionClosed(_ session: FerrySession, wasReady: Bool) {
        connections.withLock { $0[ObjectIdentifier(session)] = nil }
        if !session.isDialled { acceptedCount.wrappingSubtract(1, ordering: .relaxed) }
        hub.remove(session)
        if wasReady { configuration.hooks.onDisconnect?(session) }
        drainProgressMade()
    }

    /// Something a draining shutdown waits for may have happened.
    func drainProgressMade() {
        if isDraining { drainProgress.signal() }
    }

    private static func describe(_ address: SocketAddress?) -> String {
        guard let address else { return "unknown" }
        switch address {
        case .v4: return "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
        case .v6: return "[\(address.ipAddress ?? "?")]:\(address.port ?? 0)"
        case .unixDomainSocket: return "unix:\(address.pathname ?? "")"
        }
    }

    private static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}

extension FerryPeer: Service {
    private enum Trigger: Sendable {
        case shutdown
        case restart
        case cancelled
    }

    /// Runs until a graceful shutdown is requested (SIGTERM or SIGINT in a `ServiceGroup`), then
    /// drains with ``Configuration/drainTimeout``. With ``Configuration/restartsOnSIGUSR2``,
    /// SIGUSR2 performs a ``restart(readyTimeout:)``. Cancellation closes at once.
    public func run() async throws {
        while true {
            let trigger = await withTaskGroup(of: Trigger.self) { group in
                group.addTask {
                    do {
                        try await gracefulShutdown()
                        return .shutdown
                    } catch {
                        return .cancelled
                    }
                }
                if configuration.restartsOnSIGUSR2 {
                    group.addTask {
                        for await _ in await UnixSignalsSequence(trapping: .sigusr2) { return .restart }
                        return .cancelled
                    }
                }
                let first = await group.next() ?? .cancelled
                group.cancelAll()
                return first
            }
            switch trigger {
            case .shutdown:
                await shutdown()
                return
            case .cancelled:
                await close()
                return
            case .restart:
                do {
                    try await restart()
                    return
                } catch {
                    logger.error("restart failed; still serving", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}

/// Why a peer cannot do what was asked of its lifecycle.
public enum FerryLifecycleError: Error, Sendable, CustomStringConvertible {
    /// The peer is shutting down and takes no new listeners or served channels.
    case shuttingDown
    /// An accepted connection was refused at ``FerryPeer/Limits/maximumConnections``.
    case connectionLimit
    /// A graceful restart could not start its successor.
    case restartFailed(String)
    /// A listener could not be opened: the address is taken (a live listener holds the Unix
    /// socket path, or the port), the path is not a socket, or the system refused.
    case listenFailed(String)

    /// A readable form, for logs and error messages.
    public var description: String {
        switch self {
        case .shuttingDown: "the peer is shutting down"
        case .connectionLimit: "the connection limit is reached"
        case .restartFailed(let reason): "restart failed: \(reason)"
        case .listenFailed(let reason): "cannot listen: \(reason)"
        }
    }
}
