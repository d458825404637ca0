import Ferry
import FerryMicro
import FerryPush
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// The door to a Ferry system for clients outside it: HTTP requests, raw-socket and WebSocket
/// clients (browsers too) come in, are authenticated, and their calls go to the internal
/// services found through a registry; internal services reach connected users through the
/// gateway's inner listener.
///
/// ```swift
/// let registry = FerryStaticRegistry(nodes: [FerryNode(service: "math", address: .tcp(host: "127.0.0.1", port: 9090))])
/// let gateway = FerryGateway(
///     registry: registry, verifier: MyTokenVerifier(),
///     configuration: .init(
///         http: .init(port: 5000),
///         webSocket: .webSocket(host: "127.0.0.1", port: 5040, path: "/ws"),
///         inner: .tcp(host: "127.0.0.1", port: 5030)))
/// try await gateway.run()
/// ```
///
/// - **HTTP in**: `POST` or `GET /service/route` calls that route (see ``HTTP``); the Ferry
///   status maps to HTTP: below 200 → 500, 200…599 → itself, 600 and above → 299 with the
///   status as JSON. No service for the route → 404, the gateway's timeout → 504, a body over
///   the limit → 413, an unknown `Content-Type` → 415.
/// - **Long connections in** (``Configuration/socket``, ``Configuration/webSocket``): the
///   client's first message is an auth call whose token the ``FerryTokenVerifier`` turns into
///   a user ID; the session's ID becomes the user (see ``LoginPolicy``). A client that does not
///   authenticate within ``Configuration/authTimeout`` is closed. Calls and pushes to routes the
///   gateway does not serve (routes added to ``outerPeer``'s router are served by the gateway
///   itself) go to the service that serves them, with ``MetaKey/user``, ``MetaKey/session`` and
///   ``MetaKey/realIP`` in their meta; replies come back with their status intact.
/// - **Inner API** (``Configuration/inner``): ``InnerRoute``.
/// - **Cluster** (``Configuration/cluster``): presence in a shared registry; pushes accepted on
///   any gateway reach users on the others.
/// - **Rooms** (``Configuration/rooms``): clients join and leave (``RoomRoute``); services
///   broadcast and list members (``InnerRoomRoute``).
/// - **Dispatcher** (``Configuration/announcement``): the gateway registers with its load, and
///   `GET /gateways` lists the least loaded gateways for a new client.
///
/// ## Running
///
/// ``run()`` listens, serves and owns all of the gateway's work: its peers, its HTTP server and
/// its client. Cancelling it closes everything at once; a graceful shutdown of its
/// `ServiceGroup` drains (the peers finish the calls in flight). A gateway runs once.
public final class FerryGateway: Service, Sendable {
    /// The gateway's settings.
    public let configuration: Configuration
    /// The client that calls the internal services.
    public let client: FerryClient
    /// The peer that holds the outside clients' sessions; its hub is keyed by user (or
    /// `USER#N`).
    public let outerPeer: FerryPeer
    /// The peer of the inner listener; it also dials the services.
    public let innerPeer: FerryPeer
    /// At-least-once pushes, when ``Configuration/durablePush`` is set.
    public let pushService: FerryPushService?
    /// The rooms, when ``Configuration/rooms`` is set.
    public let rooms: FerryRooms?
    let users: UserDirectory
    let presence: Presence?
    let logger: Logger
    private let readiness = Mutex(Readiness.waiting([]))

    private enum Readiness {
        case waiting([CheckedContinuation<ListeningAddresses, any Error>])
        case ready(ListeningAddresses)
        case ended(any Error)
    }

    /// Where a running gateway listens (with the real ports when asked for port 0).
    public struct ListeningAddresses: Sendable, Hashable {
        /// The HTTP server, as `HOST:PORT`.
        public var http: FerryAddress?
        /// The raw-socket listener.
        public var socket: FerryAddress?
        /// The WebSocket listener.
        public var webSocket: FerryAddress?
        /// The inner listener.
        public var inner: FerryAddress?
    }

    /// Creates a gateway; it listens once ``run()`` runs.
    ///
    /// - Parameters:
    ///   - registry: Where the internal services are found.
    ///   - service: The one service every call goes to, where a node that lists no routes
    ///     serves them all (a gateway in front of one backend). Nil: each call goes to a node,
    ///     of any service, that lists the call's route, as nodes registered from their router
    ///     do.
    ///   - verifier: Turns an outside client's token into a user ID.
    ///   - configuration: Listeners, limits and policies.
    ///   - logger: Where the gateway and its peers log.
    public init(
        registry: any FerryRegistry, service: String? = nil, verifier: any FerryTokenVerifier, configuration: Configuration = Configuration(),
        logger: Logger = Logger(label: "ferry.gateway")
    ) {
        self.configuration = configuration
        self.logger = logger
        let directory = UserDirectory(policy: configuration.logins)
        let presence = configuration.cluster.map { Presence(registry: $0.registry, logger: logger) }
        self.presence = presence
        var outer = configuration.outerPeer
        outer.auth = FerryAuth(
            verify: { token, session in
                let user = try await verifier.userID(for: token)
                try await directory.admit(session, as: user)
                presence?.online(user)
                return user
            },
            timeout: configuration.authTimeout)
        let pushService = configuration.durablePush.map { durable in
            var delivery = durable.delivery
            // The deliveries are the outer peer's: they count where its metrics go, unless set apart.
            if delivery.metrics == nil { delivery.metrics = configuration.outerPeer.observability.metrics }
            return FerryPushService(mailbox: durable.mailbox, configuration: delivery, logger: logger) { session in
                directory.user(ofSessionID: session.id)
            }
        }
        self.pushService = pushService
        let rooms = configuration.rooms.map { FerryRooms(configuration: $0.configuration) }
        self.rooms = rooms
        let disconnected = outer.hooks.onDisconnect
        outer.hooks.onDisconnect = { session in
            pushService?.sessionClosed(session)
            rooms?.leaveAll(session)
            if let presence, let user = directory.user(ofSessionID: session.id) { presence.offline(user) }
            directory.remove(sessionID: session.id)
            disconnected?(session)
        }
        self.outerPeer = FerryPeer(configuration: outer, logger: logger)
        directory.attach(outerPeer.hub)
        self.users = directory
        self.innerPeer = FerryPeer(configuration: configuration.innerPeer, logger: logger)
        if let service {
            self.client = FerryClient(service: service, registry: registry, peer: innerPeer, configuration: configuration.client)
        } else {
            self.client = FerryClient(registry: registry, peer: innerPeer, configuration: configuration.client)
        }

        let proxy = InwardProxy(client: client, users: directory, callTimeout: configuration.callTimeout)
        outerPeer.router.unknownCall { message, context in try await proxy.call(message, context) }
        outerPeer.router.unknownPush { message, context in try await proxy.push(message, context) }
        InnerRoutes(
            users: directory, hub: outerPeer.hub, pushTimeout: configuration.pushTimeout, pushService: pushService,
            cluster: presence.map { ClusterForwarding(presence: $0, links: GatewayLinks(peer: innerPeer)) }
        ).register(on: innerPeer.router)
        if let pushService {
            pushService.install(on: outerPeer.router)
        } else {
            // Answered here rather than passed to a service that knows nothing of them.
            for route in [FerryPushProtocol.resumeRoute, FerryPushProtocol.ackRoute] {
                outerPeer.router.addRoute(.call, route) { _, _ in
                    throw FerryStatus.messageTypeNotAllowed("this gateway keeps no mailbox: at-least-once pushes are off")
                }
            }
        }
        if let rooms, let settings = configuration.rooms {
            let routes = RoomRoutes(rooms: rooms, users: directory, mayJoin: settings.mayJoin)
            routes.registerOuter(on: outerPeer.router)
            routes.registerInner(on: innerPeer.router)
        }
    }

    /// The connected sessions of `user`.
    public func sessions(of user: String) -> [FerrySession] {
        users.sessions(of: user)
    }

    /// Waits until ``run()`` listens everywhere it was asked to and returns the addresses;
    /// throws if `run()` failed or ended first.
    public func listeningAddresses() async throws -> ListeningAddresses {
        try await withCheckedThrowingContinuation { continuation in
            let settled: Result<ListeningAddresses, any Error>? = readiness.withLock { readiness in
                switch readiness {
                case .waiting(var waiters):
                    waiters.append(continuation)
                    readiness = .waiting(waiters)
                    return nil
                case .ready(let addresses): return .success(addresses)
                case .ended(let error): return .failure(error)
                }
            }
            if let settled { continuation.resume(with: settled) }
        }
    }

    /// Listens, serves until cancelled or gracefully shut down, and returns once everything the
    /// gateway started has stopped.
    public func run() async throws {
        do {
            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await self.client.run() }
                group.addTask { try await self.outerPeer.run() }
                group.addTask { try await self.innerPeer.run() }
                if let pushService { group.addTask { await pushService.run() } }
                var addresses = ListeningAddresses()
                if let address = configuration.socket {
                    addresses.socket = try await outerPeer.listen(address).address
                }
                if let address = configuration.webSocket {
                    addresses.webSocket = try await outerPeer.listen(address).address
                }
                if let address = configuration.inner {
                    addresses.inner = try await innerPeer.listen(address).address
                }
                if let presence {
                    guard let own = configuration.cluster?.innerAddress ?? addresses.inner else {
                        throw FerryLifecycleError.listenFailed("a gateway in a cluster needs an inner listener (or Cluster.innerAddress)")
                    }
                    group.addTask { [users] in
                        await presence.run(address: own) { user in !users.sessions(of: user).isEmpty }
                    }
                }
                if let http = configuration.http {
                    addresses.http = try await startHTTP(http, webSocket: addresses.webSocket, in: &group)
                }
                if let announcement = configuration.announcement {
                    let announcer = GatewayAnnouncer(announcement: announcement, addresses: addresses) { [outerPeer] in outerPeer.hub.count }
                    group.addTask { await announcer.run() }
                }
                settle(.ready(addresses))
                logger.info("gateway listening", metadata: ["addresses": "\(addresses)"])
            }
            settle(.ended(CancellationError()))
        } catch {
            settle(.ended(error))
            throw error
        }
    }

    /// Starts the HTTP server as a child task of `group` and returns its bound address.
    private func startHTTP(_ http: HTTP, webSocket: FerryAddress?, in group: inout ThrowingDiscardingTaskGroup<any Error>) async throws -> FerryAddress {
        let router = Router(context: GatewayRequestContext.self)
        if let cors = http.cors {
            router.add(middleware: OriginCheck(allowedOrigins: cors.allowedOrigins))
            router.add(
                middleware: CORSMiddleware(
                    allowOrigin: cors.allowedOrigins.isEmpty ? .all : .originBased,
                    allowHeaders: cors.allowedHeaders.compactMap { HTTPField.Name($0) },
                    allowMethods: [.get, .post, .options],
                    allowCredentials: cors.allowsCredentials,
                    maxAge: cors.maximumAge.map { TimeAmount($0) }))
        }
        Self.registerBrowserRoutes(on: router, webSocket: webSocket)
        if let announcement = configuration.announcement {
            router.get("/gateways") { _, _ -> Response in
                let entries = try await GatewayAnnouncer.leastLoaded(in: announcement)
                return Response(
                    status: .ok, headers: [.contentType: "application/json"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: try JSONEncoder().encode(entries))))
            }
        }
        let inbound = HTTPInbound(client: client, settings: http, callTimeout: configuration.callTimeout)
        for method in [HTTPRequest.Method.get, .post, .put, .delete, .patch] {
            router.on("**", method: method) { request, context in await inbound.respond(to: request, context: context) }
        }
        let (bound, boundContinuation) = AsyncStream.makeStream(of: Int.self)
        let application = Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(http.host, port: http.port)),
            onServerRunning: { channel in
                boundContinuation.yield(channel.localAddress?.port ?? http.port)
                boundContinuation.finish()
            },
            logger: logger)
        let (failure, failureContinuation) = AsyncStream.makeStream(of: (any Error).self)
        group.addTask {
            defer { boundContinuation.finish() }
            do {
                try await application.run()
            } catch {
                // Before it binds, a failure is the listener's, reported with its address.
                failureContinuation.yield(error)
                failureContinuation.finish()
                throw error
            }
        }
        for await port in bound {
            failureContinuation.finish()
            return .tcp(host: http.host, port: port)
        }
        var reason = "the server stopped"
        for await error in failure { reason = "\(error)" }
        throw FerryLifecycleError.listenFailed("http \(FerryAddress.tcp(host: http.host, port: http.port)): \(reason)")
    }

    private func settle(_ outcome: Readiness) {
        let waiters: [CheckedContinuation<ListeningAddresses, any Error>] = readiness.withLock { readiness in
            guard case .waiting(let waiters) = readiness else {
                if case .ready = readiness, case .ended = outcome { readiness = outcome }
                return []
            }
            readiness = outcome
            return waiters
        }
        for waiter in waiters {
            switch outcome {
            case .ready(let addresses): waiter.resume(returning: addresses)
            case .ended(let error): waiter.resume(throwing: error)
            case .waiting: break
            }
        }
    }
}
