import BenchmarkProto
import Ferry
import FerryGateway
import FerryMicro
import Logging
import NIOCore
import NIOPosix

/// A Ferry service and a `FerryGateway` in front of it, in one process: the service listens on
/// a free loopback port and serves the ``FerryBenchServer`` routes; the gateway finds it through
/// a static registry under ``service`` and proxies every outside call to it.
enum GatewayBench {
    /// The service name the gateway calls.
    static let service = "bench"

    /// A logger that keeps per-session and per-request chatter out of the measurement.
    static func quietLogger() -> Logger {
        var logger = Logger(label: "ferry-bench")
        logger.logLevel = .warning
        return logger
    }

    /// Starts the service on a free port of `host` and returns its address. It serves until the
    /// process ends.
    static func startService(host: String, group: any EventLoopGroup) async throws -> FerryAddress {
        let peer = FerryPeer(configuration: FerryPeer.Configuration(defaultCodec: .protobuf), eventLoopGroup: group, logger: quietLogger())
        peer.router.call(Workload.route) { (request: Bench_BenchmarkMessage, _) in Workload.answer(request) }
        FerryBenchServer.addEchoRoutes(to: peer)
        return try await peer.listen(.tcp(host: host, port: 0)).address
    }

    /// A gateway in front of the service at `serviceAddress`, with development tokens (the
    /// token is the user name) and the library's defaults for everything not given here.
    static func makeGateway(
        serviceAddress: FerryAddress, http: FerryGateway.HTTP? = nil, webSocket: FerryAddress? = nil, heartbeat: Duration? = nil
    ) -> FerryGateway {
        var configuration = FerryGateway.Configuration(http: http, webSocket: webSocket)
        configuration.outerPeer.heartbeat.pingInterval = heartbeat
        return FerryGateway(
            registry: FerryStaticRegistry(nodes: [FerryNode(service: service, address: serviceAddress)]),
            service: service,
            verifier: FerryDevelopmentTokenVerifier(),
            configuration: configuration,
            logger: quietLogger())
    }
}

/// `gateway-ws`: the service and a gateway whose WebSocket listener (`/ws`, the JSON
/// sub-protocol browsers use, token auth) is the server under test.
struct GatewayWebSocketServer: BenchServer {
    let group: MultiThreadedEventLoopGroup
    /// The gateway's ping interval to silent sessions; nil: no heartbeat.
    var heartbeat: Duration?

    func run(host: String, port: Int, onListening: @escaping @Sendable (Int) -> Void) async throws {
        let serviceAddress = try await GatewayBench.startService(host: host, group: group)
        let gateway = GatewayBench.makeGateway(
            serviceAddress: serviceAddress,
            webSocket: .webSocket(host: host, port: port, path: FerryBenchTransport.webSocketPath),
            heartbeat: heartbeat)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await gateway.run() }
            let addresses = try await gateway.listeningAddresses()
            guard let webSocket = addresses.webSocket, let boundPort = boundPort(of: webSocket) else {
                throw BenchError.unexpectedReply("the gateway has no WebSocket listener")
            }
            onListening(boundPort)
            try await tasks.next()
        }
    }
}
