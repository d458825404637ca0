import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

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
public final class FerryPeer: Sendable {
    /// The peer's settings.
    public let configuration: Configuration
    /// The routes this peer serves, to callers on any of its sessions.
    public let router: FerryRouter
    /// The peer's sessions by ID.
    public let hub: FerrySessionHub
    /// The logger; each session adds its remote address.
    public let logger: Logger
    private let eventLoopGroup: any EventLoopGroup
    private let listeners = Mutex<[FerryListener]>([])

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
        self.logger = logger
        self.router = FerryRouter()
        self.hub = FerrySessionHub()
    }

    // MARK: Listening

    /// Listens on `address`, optionally with TLS. Use a TLS configuration with
    /// `certificateVerification` set and `trustRoots` to require client certificates.
    public func listen(_ address: FerryAddress, tls: TLSConfiguration? = nil) async throws -> FerryListener {
        let sslContext = try tls.map { try NIOSSLContext(configuration: $0) }
        let isUnix: Bool
        if case .unix = address { isUnix = true } else { isUnix = false }
        let unixCounter = Atomic<Int>(0)
        let bootstrap = ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.so_keepalive), value: 1)
            .childChannelOption(.autoRead, value: false)
            .childChannelInitializer { [self] channel in
                let remote: String
                if isUnix {
                    remote = "\(address)#\(unixCounter.wrappingAdd(1, ordering: .relaxed).newValue)"
                } else {
                    remote = Self.describe(channel.remoteAddress)
                }
                return channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: sslContext))
                    }
                    let session = try addSessionHandlers(to: channel, isDialled: false, remoteAddress: remote)
                    self.startAccepted(session)
                }
            }
        if !isUnix, case .tcp(_, _) = address {
            _ = bootstrap.childChannelOption(.socketOption(.tcp_nodelay), value: 1)
        }
        let channel: any Channel
        switch address {
        case .tcp(let host, let port):
            channel = try await bootstrap.bind(host: host, port: port).get()
        case .unix(let path):
            channel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        }
        let bound: FerryAddress
        switch address {
        case .tcp(let host, _): bound = .tcp(host: host, port: channel.localAddress?.port ?? 0)
        case .unix: bound = address
        }
        let listener = FerryListener(address: bound, channel: channel)
        listeners.withLock { $0.append(listener) }
        logger.info("listening", metadata: ["address": "\(bound)", "tls": "\(tls != nil)"])
        return listener
    }

    private func startAccepted(_ session: FerrySession) {
        Task {
            do {
                try await configuration.hooks.onAccept?(session)
            } catch {
                logger.info("connection rejected by the accept hook", metadata: ["remote": "\(session.remoteAddress)", "error": "\(error)"])
                session.recordCloseReason("rejected by the accept hook: \(error)")
                try? await session.channel.close()
                return
            }
            if let auth = configuration.auth, auth.verify != nil {
                session.enforceAuthDeadline(auth.timeout)
            } else {
                sessionReady(session)
            }
            logger.debug("session accepted", metadata: ["remote": "\(session.remoteAddress)"])
            session.channel.setOption(.autoRead, value: true).whenFailure { _ in }
        }
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
            throw FerryStatus(.dialFailed, "Dial Failed", cause: "TLS configuration: \(error)")
        }
        let remote = address.description
        let bootstrap = ClientBootstrap(group: eventLoopGroup)
            .connectTimeout(TimeAmount(configuration.dialTimeout))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        var hostname = serverHostname
                        if hostname == nil, case .tcp(let host, _) = address, !Self.isIPAddress(host) { hostname = host }
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: sslContext, serverHostname: hostname))
                    }
                    _ = try addSessionHandlers(to: channel, isDialled: true, remoteAddress: remote)
                }
            }
        let channel: any Channel
        do {
            switch address {
            case .tcp(let host, let port):
                channel = try await bootstrap.channelOption(.socketOption(.tcp_nodelay), value: 1).connect(host: host, port: port).get()
            case .unix(let path):
                channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            }
        } catch {
            throw FerryStatus(.dialFailed, "Dial Failed", cause: "\(address): \(error)")
        }
        let session = try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: SessionHandler.self).session
        }.get()
        do {
            try await configuration.hooks.onDial?(session)
            if let credential = configuration.auth?.credential {
                try await session.authenticate(credential: try await credential(), timeout: configuration.auth?.timeout ?? .seconds(10))
            }
        } catch {
            session.recordCloseReason("dial refused: \(error)")
            try? await channel.close()
            throw (error as? FerryStatus) ?? FerryStatus(.dialFailed, "Dial Failed", cause: "\(error)")
        }
        sessionReady(session)
        logger.debug("session dialled", metadata: ["remote": "\(remote)"])
        return session
    }

    // MARK: Lifecycle

    /// Closes every listener and every session. Pending calls fail with status 102.
    public func close() async {
        let listeners = self.listeners.withLock { listeners in
            defer { listeners = [] }
            return listeners
        }
        for listener in listeners { await listener.close() }
        for session in hub.all { await session.close() }
    }

    // MARK: Internals

    private func addSessionHandlers(to channel: any Channel, isDialled: Bool, remoteAddress: String) throws -> FerrySession {
        let session = FerrySession(channel: channel, peer: self, isDialled: isDialled, remoteAddress: remoteAddress)
        let proto = configuration.proto
        let handlers: [any ChannelHandler] = [
            ByteToMessageHandler(FerryMessageDecoder(proto: proto)),
            MessageEncoderHandler(proto: proto),
            SessionHandler(session: session),
        ]
        try channel.pipeline.syncOperations.addHandlers(handlers)
        return session
    }

    /// A session is ready for use (hooks and auth passed): it joins the hub, and its
    /// disconnection will be reported.
    func sessionReady(_ session: FerrySession) {
        session.markReady()
        hub.add(session)
    }

    func sessionClosed(_ session: FerrySession, wasReady: Bool) {
        hub.remove(session)
        if wasReady { configuration.hooks.onDisconnect?(session) }
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
