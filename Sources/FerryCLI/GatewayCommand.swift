import ArgumentParser
import Ferry
import FerryEtcd
import FerryGateway
import Foundation
import Logging
import ServiceLifecycle

struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Let outside clients in: HTTP, raw-socket and WebSocket clients call the services behind the gateway.",
        discussion: """
            Example, in front of a ferry serve on 127.0.0.1:9090:
              ferry gateway --http 127.0.0.1:5000 --socket 127.0.0.1:5020 \\
                --ws 127.0.0.1:5040 --inner 127.0.0.1:5030 \\
                --backend 127.0.0.1:9090 --dev-auth
              curl http://127.0.0.1:5000/math/add -d '{"a":1,"b":2}' \\
                -H 'Content-Type: application/json'
              ferry call 127.0.0.1:5020 /math/add '{"a":1,"b":2}' --token alice
            HTTP: POST or GET /route calls that route. Socket and WebSocket clients authenticate \
            with a token first (--dev-auth: the token is the user name). Services call the inner \
            listener's /gateway/push, /gateway/kick, /gateway/online and /gateway/count to reach \
            connected users. At-least-once pushes are off unless --data DIR (an SQLite mailbox in \
            DIR, kept across restarts) or --memory-mailbox keeps them: then /gateway/send stores \
            a message for offline users too, and clients receive it with ferry listen (without a \
            mailbox, /gateway/send is refused with 405). The services are the --backend addresses \
            (one service serving every route), or found in etcd by route with --etcd. SIGTERM or \
            Ctrl-C stops gracefully. With --metrics HOST:PORT, the Prometheus metrics of the \
            gateway's outer and inner peers are served at http://HOST:PORT/metrics.
            """
    )

    @Option(help: ArgumentHelp("Serve HTTP on this HOST:PORT.", valueName: "host:port"))
    var http: String?

    @Option(help: ArgumentHelp("Let raw-socket clients in on this HOST:PORT (or unix:PATH).", valueName: "address"))
    var socket: String?

    @Option(help: ArgumentHelp("Let WebSocket clients in on this HOST:PORT, at --ws-path.", valueName: "host:port"))
    var ws: String?

    @Option(help: "The path of the WebSocket endpoint (with --ws).")
    var wsPath: String = "/ws"

    @Option(help: "WebSocket sub-protocol (with --ws): json or pb (protobuf); clients must use the same.")
    var wsProto: WebSocketSubprotocolOption = .json

    @Option(help: ArgumentHelp(
        "The inner listener internal services call to push to users, kick them and count them, HOST:PORT (or unix:PATH). Keep it internal.",
        valueName: "address"))
    var inner: String?

    @Option(help: ArgumentHelp("A node of the service behind the gateway, serving every route; repeat for more.", valueName: "address"))
    var backend: [String] = []

    @Option(help: "The service name of the --backend nodes; with --etcd, send every call to this service's nodes instead of finding nodes by route.")
    var service: String?

    @OptionGroup var etcd: EtcdOptions

    @OptionGroup(title: "Token verification (socket and WebSocket clients)") var tokens: TokenVerifierOptions

    @Option(help: "How many sessions a user may hold at once: 1 (a new login closes the older session), or more (devices; logins beyond are refused).")
    var devices: Int = 1

    @Flag(help: "Rooms: clients join and leave them (/gateway/rooms/join, /gateway/rooms/leave); services broadcast through the inner listener (/gateway/room/broadcast) and list them (ferry rooms).")
    var rooms = false

    @Option(help: ArgumentHelp("With --rooms: the most broadcasts per second in one room; past it they are dropped with 429.", valueName: "n"))
    var roomRate: Double?

    @Option(help: "The largest HTTP request body accepted, in bytes; larger ones are answered 413.")
    var maxBody: Int = 4 << 20

    // Unconditional, so that `--timeout -1s` reaches the check below instead of reading as a flag.
    @Option(parsing: .unconditional, help: "How long a call through the gateway may take when the client sets no timeout, e.g. 10s, 500ms.")
    var timeout: String = "10s"

    @Option(help: "How long a socket or WebSocket client has to authenticate after it connects.")
    var authTimeout: String = "10s"

    @Option(help: ArgumentHelp("An origin browsers may call the HTTP listener from, e.g. https://app.example.com; repeat for more (none: any).", valueName: "origin"))
    var corsOrigin: [String] = []

    @Flag(help: "Take the client's IP from X-Forwarded-For (only behind a proxy that sets it).")
    var trustForwardedFor = false

    @Option(help: "How long a shutdown lets in-flight calls finish, e.g. 10s.")
    var drainTimeout: String = "10s"

    @OptionGroup(title: "At-least-once pushes (/gateway/send; off without --data or --memory-mailbox)") var mailbox: MailboxOptions

    @OptionGroup(title: "Metrics") var prometheus: MetricsOptions

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        _ = try listeners()
        if http == nil && socket == nil && ws == nil {
            throw ValidationError("give at least one listener for outside clients: --http, --socket or --ws")
        }
        if (socket != nil || ws != nil) && !tokens.isChosen {
            throw ValidationError("long connections need a token verifier: --jwt-secret-file PATH, or --dev-auth for development")
        }
        if backend.isEmpty && etcd.urls.isEmpty {
            throw ValidationError("name the services behind the gateway: --backend ADDRESS (repeatable), or --etcd URL to find them by discovery")
        }
        if !backend.isEmpty && !etcd.urls.isEmpty {
            throw ValidationError("--backend and --etcd do not go together: the services are either listed or discovered")
        }
        _ = try backendNodes()
        if devices < 1 { throw ValidationError("--devices must be 1 or more, got \(devices)") }
        if roomRate != nil && !rooms { throw ValidationError("--room-rate needs --rooms") }
        if let roomRate, roomRate <= 0 { throw ValidationError("--room-rate must be positive, got \(roomRate)") }
        if maxBody < 0 { throw ValidationError("--max-body must be zero or more bytes, got \(maxBody)") }
        _ = try durationOption(timeout, named: "--timeout")
        _ = try durationOption(authTimeout, named: "--auth-timeout")
        _ = try durationOption(drainTimeout, named: "--drain-timeout", zeroAllowed: true)
        if mailbox.isEnabled && inner == nil {
            throw ValidationError("services store at-least-once pushes through the inner listener: add --inner ADDRESS")
        }
        if mailbox.isEnabled && socket == nil && ws == nil {
            throw ValidationError("at-least-once pushes are delivered to socket and WebSocket clients: add --socket or --ws")
        }
    }

    func run() async throws {
        logging.bootstrap()
        let logger = Logger(label: "ferry.gateway")
        if let warning = tokens.warning {
            FileHandle.standardError.write(Data((warning + "\n").utf8))
        }
        let (registry, serviceName) = try registry(logger: logger)
        let verifier = try await tokens.verifier() ?? RefusingTokenVerifier()
        var configuration = try gatewayConfiguration()
        let metrics = try prometheus.endpoint(logger: logger)
        if let metrics {
            configuration.outerPeer.observability = metrics.observability
            configuration.innerPeer.observability = metrics.observability
        }
        // `ferry top` works on the gateway's listeners.
        configuration.outerPeer.observability.servesStats = true
        configuration.innerPeer.observability.servesStats = true
        // Opened last, so that nothing after it can fail before the close below is in place.
        let opened: OpenedMailbox?
        do {
            opened = try await mailbox.open(logger: logger)
        } catch let failure as MailboxFailure {
            FileHandle.standardError.write(Data("Error: ferry gateway: \(failure)\n".utf8))
            throw ExitCode.failure
        }
        configuration.durablePush = opened?.durablePush
        let gateway = FerryGateway(
            registry: registry, service: serviceName, verifier: verifier, configuration: configuration, logger: logger)
        // The metrics endpoint comes first, so that it still answers while the gateway drains.
        let group = ServiceGroup(configuration: .init(
            services: (metrics.map { [$0.serviceConfiguration] } ?? []) + [.init(service: gateway, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask {
                do {
                    try await group.run()
                } catch {
                    // Most often a listener that could not bind: say so plainly and exit 1.
                    let reason = String(describing: error).balancingErrnoBrackets
                    FileHandle.standardError.write(Data("Error: ferry gateway: \(reason)\n".utf8))
                    throw ExitCode.failure
                }
            }
            tasks.addTask {
                // Once run() listens everywhere; if it fails first, group.run() reports why.
                guard let addresses = try? await gateway.listeningAddresses() else { return }
                printNow("gateway listening: \(Self.describe(addresses)) (pid \(ProcessInfo.processInfo.processIdentifier))")
                printNow("gateway backend: \(backendDescription)")
                if let opened { printNow("gateway mailbox: \(opened.place) (\(mailbox.summary))") }
                printNow("Ctrl-C or SIGTERM stops gracefully")
            }
            try await closing({ await close(opened) }) { try await tasks.waitForAll() }
        }
        printNow("gateway stopped (pid \(ProcessInfo.processInfo.processIdentifier))")
    }

    /// Closes the mailbox once the gateway has stopped; a failure is reported, not thrown.
    private func close(_ opened: OpenedMailbox?) async {
        do {
            try await opened?.close()
        } catch {
            FileHandle.standardError.write(Data("Error: ferry gateway: closing the mailbox \(opened?.place ?? ""): \(error)\n".utf8))
        }
    }

    /// The listeners the options ask for, checked.
    private func listeners() throws -> (http: FerryGateway.HTTP?, socket: FerryAddress?, webSocket: FerryAddress?, inner: FerryAddress?) {
        var httpSettings: FerryGateway.HTTP?
        if let http {
            guard case .tcp(let host, let port) = FerryAddress(http) else { throw ValidationError("--http must be HOST:PORT, got \(http)") }
            httpSettings = FerryGateway.HTTP(
                host: host, port: port, maximumBodySize: maxBody, trustsForwardedFor: trustForwardedFor,
                cors: FerryGateway.CORS(allowedOrigins: corsOrigin))
        } else if !corsOrigin.isEmpty || trustForwardedFor {
            throw ValidationError("--cors-origin and --trust-forwarded-for apply to the HTTP listener: add --http HOST:PORT")
        }
        var webSocket: FerryAddress?
        if let ws {
            guard case .tcp(let host, let port) = FerryAddress(ws) else { throw ValidationError("--ws must be HOST:PORT, got \(ws)") }
            if !wsPath.hasPrefix("/") || wsPath.contains(where: { $0 == "?" || $0 == "#" || $0.isWhitespace }) {
                throw ValidationError("--ws-path must be a path starting with /, without a query, got \(wsPath)")
            }
            webSocket = .webSocket(host: host, port: port, path: wsPath)
        }
        return (httpSettings, try streamAddress(socket, named: "--socket"), webSocket, try streamAddress(inner, named: "--inner"))
    }

    /// A TCP or Unix socket address given as `HOST:PORT` or `unix:PATH`, or nil when not given.
    private func streamAddress(_ text: String?, named option: String) throws -> FerryAddress? {
        guard let text else { return nil }
        switch FerryAddress(text) {
        case .some(.webSocket), nil: throw ValidationError("\(option) must be HOST:PORT or unix:PATH, got \(text)")
        case .some(let address): return address
        }
    }

    /// The `--backend` nodes, all of one service and serving every route.
    private func backendNodes() throws -> [FerryNode] {
        try backend.map { text in
            guard let address = FerryAddress(text) else {
                throw ValidationError("--backend must be HOST:PORT, unix:PATH or ws://HOST:PORT/PATH, got \(text)")
            }
            return FerryNode(service: backendService, address: address)
        }
    }

    /// Where the calls go, as the start-up lines tell it.
    private var backendDescription: String {
        if !backend.isEmpty { return "service \(backendService) at \(backend.joined(separator: ", "))" }
        let place = "etcd at \(etcd.urls.joined(separator: ", "))"
        return service.map { "service \($0), nodes found in \(place)" } ?? "nodes found by route in \(place)"
    }

    /// The service name the `--backend` nodes are listed under.
    private var backendService: String { service ?? "backend" }

    /// Where the gateway finds the services, and the one service it calls, if any.
    private func registry(logger: Logger) throws -> (any FerryRegistry, String?) {
        if let registry = etcd.registry(logger: logger) {
            return (registry, service)
        }
        return (FerryStaticRegistry(nodes: try backendNodes()), backendService)
    }

    private func gatewayConfiguration() throws -> FerryGateway.Configuration {
        let places = try listeners()
        let drain = try durationOption(drainTimeout, named: "--drain-timeout", zeroAllowed: true)
        return FerryGateway.Configuration(
            http: places.http, socket: places.socket, webSocket: places.webSocket, inner: places.inner,
            outerPeer: .init(
                webSocket: .init(subprotocol: wsProto.subprotocol), limits: .init(maximumUnauthenticatedConnections: 1024),
                drainTimeout: drain),
            innerPeer: .init(drainTimeout: drain),
            authTimeout: try durationOption(authTimeout, named: "--auth-timeout"),
            logins: devices == 1 ? .single : .multipleDevices(maximum: devices),
            callTimeout: try durationOption(timeout, named: "--timeout"),
            rooms: rooms ? FerryGateway.Rooms(configuration: .init(maximumBroadcastsPerSecond: roomRate)) : nil)
    }

    /// `http 127.0.0.1:5000, socket 127.0.0.1:5020, ws ws://127.0.0.1:5040/ws, inner 127.0.0.1:5030`.
    private static func describe(_ addresses: FerryGateway.ListeningAddresses) -> String {
        let places: [(String, FerryAddress?)] = [
            ("http", addresses.http), ("socket", addresses.socket), ("ws", addresses.webSocket), ("inner", addresses.inner),
        ]
        return places.compactMap { name, address in address.map { "\(name) \($0)" } }.joined(separator: ", ")
    }
}

/// Prints `line` and flushes standard output at once, so that a reader of a file or a pipe
/// sees it while the gateway runs.
private func printNow(_ line: String) {
    print(line)
    fflush(nil)
}
