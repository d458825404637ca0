import BenchmarkProto
import Ferry
import Logging
import NIOCore
import NIOPosix

/// How the Ferry system's server listens and its callers dial.
enum FerryBenchTransport: Sendable {
    /// TCP, erpc's raw proto (`ferry`).
    case tcp
    /// WebSocket on ``FerryBenchTransport/webSocketPath``, erpc's mixer with the protobuf
    /// sub-protocol (`ferry-ws`).
    case webSocket

    /// The path of the WebSocket endpoint.
    static let webSocketPath = "/ws"

    func address(host: String, port: Int) -> FerryAddress {
        switch self {
        case .tcp: .tcp(host: host, port: port)
        case .webSocket: .webSocket(host: host, port: port, path: Self.webSocketPath)
        }
    }

    /// A peer configuration for this transport: the workload's body is binary, which only the
    /// mixer's protobuf sub-protocol carries.
    func configuration(observability: FerryObservability = FerryObservability()) -> FerryPeer.Configuration {
        var configuration = FerryPeer.Configuration(defaultCodec: .protobuf, observability: observability)
        configuration.webSocket.subprotocol = .protobuf
        return configuration
    }
}

/// The port of a listening address.
func boundPort(of address: FerryAddress) -> Int? {
    switch address {
    case .tcp(_, let port), .webSocket(_, let port, _): port
    case .unix: nil
    }
}

/// The Ferry server: one CALL route with the workload's handler, protobuf body codec. A second
/// route passes the body bytes through untouched (`--codec raw`), and a third echoes any body
/// in any codec (the gateway's HTTP benchmark).
struct FerryBenchServer: BenchServer {
    /// The route that echoes the body bytes without decoding them.
    static let rawRoute = "/bench/raw"
    /// The route that echoes any body with its codec (HTTP through the gateway).
    static let echoRoute = "/bench/echo"

    let group: MultiThreadedEventLoopGroup
    var transport: FerryBenchTransport = .tcp
    /// The heartbeat ping interval; nil: this side does not ping (the default).
    var heartbeat: Duration? = nil
    /// The share of replies delayed by ``slowDelay`` (a slow node); 0: none.
    var slowFraction: Double = 0
    var slowDelay: Duration = .milliseconds(50)
    /// Metrics, tracing and statistics (`--observe`, `--no-stats`); by default Ferry's defaults.
    var observability = FerryObservability()

    func run(host: String, port: Int, onListening: @escaping @Sendable (Int) -> Void) async throws {
        var logger = Logger(label: "ferry-bench")
        logger.logLevel = .warning
        var configuration = transport.configuration(observability: observability)
        configuration.heartbeat.pingInterval = heartbeat
        let peer = FerryPeer(configuration: configuration, eventLoopGroup: group, logger: logger)
        let slowFraction = slowFraction
        let slowDelay = slowDelay
        if slowFraction > 0 {
            // Only the slow-node experiment suspends: its handler is asynchronous.
            peer.router.call(Workload.route) { (request: Bench_BenchmarkMessage, _) in
                if Double.random(in: 0..<1) < slowFraction { try await Task.sleep(for: slowDelay) }
                return Workload.answer(request)
            }
        } else {
            // The workload's handler never suspends: Ferry runs it in place, with no task.
            peer.router.call(Workload.route) { (request: Bench_BenchmarkMessage, _) in Workload.answer(request) }
        }
        Self.addEchoRoutes(to: peer)
        let listener = try await peer.listen(transport.address(host: host, port: port))
        guard let port = boundPort(of: listener.address) else { return }
        onListening(port)
        try await waitForever()
    }

    /// The routes that pass bodies through: ``rawRoute`` and ``echoRoute``.
    static func addEchoRoutes(to peer: FerryPeer) {
        peer.router.call(rawRoute) { (body: ByteBuffer, _) in body }
        peer.router.addRoute(.call, echoRoute, synchronousHandler: { message, _ in
            FerryResponse(bodyCodec: message.bodyCodec, body: message.body)
        })
    }
}

/// Ferry callers: sessions dialled by one `FerryPeer`.
enum FerryBenchClient {
    struct Target: CallTarget {
        let session: FerrySession
        let codec: BodyCodec
        let request = Workload.message
        let rawRequest = ByteBuffer(bytes: Workload.encoded)
        let options = FerryCallOptions(codec: .protobuf)
        var eventLoopExecutor: (any TaskExecutor)? { session.taskExecutor }

        // One function per codec: a frame holds the locals of every branch of its function,
        // and the caller's frame is part of what a thousand waiting calls keep.
        func call() async throws {
            switch codec {
            case .protobuf: try await callWithMessage()
            case .raw: try await callWithRawBody()
            }
        }

        private func callWithMessage() async throws {
            let reply: Bench_BenchmarkMessage = try await session.call(Workload.route, request, options: options)
            guard reply.field1 == "OK" else { throw BenchError.unexpectedReply("field1 is \(reply.field1)") }
        }

        private func callWithRawBody() async throws {
            let reply = try await session.call(FerryBenchServer.rawRoute, body: rawRequest, codec: .protobuf, options: options)
            guard reply.status.isOK, reply.body.readableBytes == Workload.encodedSize else {
                throw BenchError.unexpectedReply("status \(reply.status), \(reply.body.readableBytes) bytes")
            }
        }
    }

    static func measure(
        host: String, port: Int, transport: FerryBenchTransport = .tcp, connections: Int, codec: BodyCodec,
        group: MultiThreadedEventLoopGroup, plan: LoadPlan, observability: FerryObservability = FerryObservability()
    ) async throws -> LoadMeasurement {
        var logger = Logger(label: "ferry-bench")
        logger.logLevel = .warning
        let peer = FerryPeer(
            configuration: transport.configuration(observability: observability), eventLoopGroup: group, logger: logger)
        var targets: [any CallTarget] = []
        for _ in 0..<connections {
            let session = try await peer.dial(transport.address(host: host, port: port))
            targets.append(Target(session: session, codec: codec))
        }
        let measurement = await LoadGenerator.run(plan, targets: targets)
        await peer.close()
        return measurement
    }
}

enum BenchError: Error, CustomStringConvertible {
    case unexpectedReply(String)
    case connectionClosed

    var description: String {
        switch self {
        case .unexpectedReply(let what): "unexpected reply: \(what)"
        case .connectionClosed: "connection closed"
        }
    }
}

/// Suspends until the task is cancelled (the process is stopped by a signal).
func waitForever() async throws {
    while true { try await Task.sleep(for: .seconds(3600)) }
}
