import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

extension FerryPeer {
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
        // Over WebSocket the session exists once the server agreed to the upgrade.
        let webSocketUpgrade = Mutex<EventLoopPromise<Void>?>(nil)
        var bootstrap = ClientBootstrap(group: eventLoopGroup)
            .connectTimeout(TimeAmount(configuration.dialTimeout))
            .channelOption(.writeBufferWaterMark, value: waterMark)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try countWireBytes(of: channel)
                    if let sslContext = target.tls {
                        var hostname = target.serverHostname
                        if hostname == nil, let host = address.host, !Self.isIPAddress(host) { hostname = host }
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: sslContext, serverHostname: hostname))
                    }
                    if case .webSocket(let host, let port, let path) = address {
                        let upgraded = channel.eventLoop.makePromise(of: Void.self)
                        webSocketUpgrade.withLock { $0 = upgraded }
                        try addWebSocketClientHandlers(to: channel, host: host, port: port, path: path, upgraded: upgraded) { [self] channel in
                            let session = existing ?? FerrySession(channel: channel, peer: self, isDialled: true, remoteAddress: address.description, dialTarget: target)
                            try addWebSocketSessionHandlers(to: channel, session: session, isClient: true)
                        }
                        return
                    }
                    let session = existing ?? FerrySession(channel: channel, peer: self, isDialled: true, remoteAddress: address.description, dialTarget: target)
                    try addSessionHandlers(to: channel, session: session)
                }
            }
        let channel: any Channel
        do {
            switch address {
            case .tcp(let host, let port), .webSocket(let host, let port, _):
                bootstrap = bootstrap.channelOption(.socketOption(.tcp_nodelay), value: 1)
                channel = try await bootstrap.connect(host: host, port: port).get()
            case .unix(let path):
                channel = try await bootstrap.connect(unixDomainSocketPath: path).get()
            }
        } catch {
            // A connection that never came up never asked for its upgrade: that ends here too.
            let status = FerryStatus.dialFailed("\(address): \(error)", underlyingError: error)
            webSocketUpgrade.withLock { $0 }?.fail(status)
            throw status
        }
        if let upgrade = webSocketUpgrade.withLock({ $0?.futureResult }) {
            // A server that never answers the upgrade is given the dial timeout.
            let giveUp = channel.eventLoop.scheduleTask(in: TimeAmount(configuration.dialTimeout)) { channel.close(promise: nil) }
            defer { giveUp.cancel() }
            do {
                try await upgrade.get()
            } catch {
                try? await channel.close()
                throw (error as? FerryStatus) ?? FerryStatus.dialFailed("\(address): \(error)", underlyingError: error)
            }
        }
        return channel
    }
}
