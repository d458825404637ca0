import ArgumentParser
import Ferry
import Logging
import FerryEtcd
import Foundation
import ServiceLifecycle
import Synchronization

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the demo server peer until interrupted.",
        discussion: """
            Routes: CALL /echo (same body, codec and meta back), CALL /math/add ({"a":1,"b":2}), \
            CALL /fail (status 1234), CALL /slow (milliseconds to sleep), CALL /process (the server's \
            process id), PUSH /chat/say (logged). SIGTERM or Ctrl-C drains in-flight calls and stops; \
            SIGUSR2 restarts without downtime (a new process takes over the listening socket).
            With TLS: ferry serve --tls-cert server.pem --tls-key server.key [--tls-ca ca.pem to \
            require client certificates] [--token SECRET to require the auth handshake].
            Over WebSocket as well: ferry serve --ws 127.0.0.1:9091 [--ws-path /ws] [--ws-proto json|pb] \
            serves the same routes at ws://127.0.0.1:9091/ws (wss:// with the TLS options).
            With --metrics 127.0.0.1:9464, Prometheus metrics (ferry_calls_total, \
            ferry_call_duration_seconds, …) are served at http://127.0.0.1:9464/metrics.
            """
    )

    @Option(help: "TCP address to listen on, HOST:PORT.")
    var listen: String = "127.0.0.1:9090"

    @Option(help: "Listen on this Unix domain socket path instead of TCP.")
    var unix: String?

    @Option(help: "Serve over WebSocket as well, on this HOST:PORT (wss with the TLS options).")
    var ws: String?

    @Option(help: "The path of the WebSocket endpoint (with --ws).")
    var wsPath: String = "/ws"

    @Option(help: "WebSocket sub-protocol (with --ws): json or pb (protobuf); callers must use the same.")
    var wsProto: WebSocketSubprotocolOption = .json

    @Option(help: "How long a shutdown or restart lets in-flight calls finish, e.g. 10s.")
    var drainTimeout: String = "10s"

    @Option(help: "Register in etcd as a node of this service (needs --etcd).")
    var service: String?

    @OptionGroup(title: "TLS") var tls: TLSOptions

    @OptionGroup var auth: AuthOptions

    @OptionGroup var etcd: EtcdOptions

    @OptionGroup(title: "Metrics") var prometheus: MetricsOptions

    @Flag(help: "Keep no per-route statistics: \(FerryPeer.statsRoute) (what ferry top shows) answers 404.")
    var noStats = false

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if unix == nil, FerryAddress(listen) == nil {
            throw ValidationError("--listen must be HOST:PORT, got \(listen)")
        }
        if let ws {
            guard case .tcp = FerryAddress(ws) else { throw ValidationError("--ws must be HOST:PORT, got \(ws)") }
        }
        if !wsPath.hasPrefix("/") || wsPath.contains(where: { $0 == "?" || $0 == "#" || $0.isWhitespace }) {
            throw ValidationError("--ws-path must be a path starting with /, without a query, got \(wsPath)")
        }
        _ = try durationOption(drainTimeout, named: "--drain-timeout", zeroAllowed: true)
        if service != nil && etcd.urls.isEmpty { throw ValidationError("--service needs --etcd") }
        if service == nil && !etcd.urls.isEmpty {
            throw ValidationError("--etcd needs --service NAME: the service to register this node as")
        }
        _ = try tls.serverConfiguration()
    }

    func run() async throws {
        logging.bootstrap()
        // Rehearses a failed graceful restart: while the named file exists, a starting server
        // gives up before it listens, as a successor with a broken configuration would.
        if let path = ProcessInfo.processInfo.environment["FERRY_SERVE_FAIL_START_IF_EXISTS"], FileManager.default.fileExists(atPath: path) {
            throw ExitCode(3)
        }
        let address = unix.map { FerryAddress.unix(path: $0) } ?? FerryAddress(listen)!
        let drain = try durationOption(drainTimeout, named: "--drain-timeout", zeroAllowed: true)
        let logger = Logger(label: "ferry.serve")
        let registry = etcd.registry(logger: logger)
        // Filled in once the listener is up; the shutdown hook deregisters before draining.
        let registration = Registration()
        // The successor of a graceful restart (it inherits the listening sockets) waits for its
        // predecessor to drain and let go of the metrics port.
        let isSuccessor = ProcessInfo.processInfo.environment["FERRY_INHERITED_LISTENERS"] != nil
        let metrics = try prometheus.endpoint(logger: logger, patience: isSuccessor ? drain + .seconds(30) : nil)
        var observability = metrics?.observability ?? FerryObservability()
        observability.servesStats = !noStats
        let hooks = FerryPeer.Hooks(onShutdown: {
            guard let (registry, nodes) = registration.current else { return }
            for node in nodes {
                do {
                    try await registry.deregister(node)
                    printNow("ferry serve: deregistered \(node.service) at \(node.address)")
                } catch {
                    logger.warning("could not deregister", metadata: ["error": "\(error)"])
                }
            }
        })
        let peer = FerryPeer(
            configuration: .init(
                webSocket: .init(subprotocol: wsProto.subprotocol), auth: auth.listening, hooks: hooks, drainTimeout: drain,
                restartsOnSIGUSR2: true, observability: observability),
            logger: logger)
        DemoRoutes.install(on: peer.router)
        let tlsConfiguration = try tls.serverConfiguration()
        let listener = try await peer.listen(address, tls: tlsConfiguration)
        var places = listener.address.description
        var addresses = [listener.address]
        if let ws, case .tcp(let host, let port) = FerryAddress(ws) {
            let webSocketListener = try await peer.listen(.webSocket(host: host, port: port, path: wsPath), tls: tlsConfiguration)
            places += " and \(webSocketListener.address.displayed(tls: tlsConfiguration != nil))"
            addresses.append(webSocketListener.address)
        }
        let webSocketNote = ws == nil ? "" : ", WebSocket sub-protocol \(wsProto.rawValue)"
        printNow("ferry serve: listening on \(places) (pid \(ProcessInfo.processInfo.processIdentifier)\(webSocketNote)); routes: \(peer.router.routes.map(\.description).joined(separator: ", "))")
        if let registry, let service {
            // One node per listener: clients of the service reach it over TCP and WebSocket.
            let nodes = addresses.map { FerryNode(service: service, address: $0, router: peer.router) }
            for node in nodes {
                try await registry.register(node)
                printNow("ferry serve: registered as \(service) in etcd (\(registry.key(of: node)))")
            }
            registration.current = (registry, nodes)
        }
        printNow("Ctrl-C or SIGTERM stops gracefully; SIGUSR2 restarts without downtime")
        // The registry comes first: a graceful shutdown stops the services in reverse order, so
        // the peer's shutdown hook deregisters while the registry still runs.
        // The metrics endpoint comes before the peer, so that it still answers while the peer drains.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let metrics { services.append(metrics.serviceConfiguration) }
        if let registry { services.append(.init(service: registry, successTerminationBehavior: .gracefullyShutdownGroup)) }
        services.append(.init(service: peer, successTerminationBehavior: .gracefullyShutdownGroup))
        let group = ServiceGroup(configuration: .init(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        printNow("ferry serve: stopped (pid \(ProcessInfo.processInfo.processIdentifier))")
    }
}

/// The registry entry of the serving node, once there is one.
private final class Registration: Sendable {
    private let storage = Mutex<(FerryEtcdRegistry, [FerryNode])?>(nil)
    var current: (FerryEtcdRegistry, [FerryNode])? {
        get { storage.withLock { $0 } }
        set { storage.withLock { $0 = newValue } }
    }
}

/// Prints `line` and flushes standard output at once, so that a reader of a file or a pipe
/// sees it while the server runs, and a killed server does not take it along.
private func printNow(_ line: String) {
    print(line)
    fflush(nil)
}
