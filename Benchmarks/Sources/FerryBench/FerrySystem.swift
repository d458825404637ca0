import BenchmarkProto
import Ferry
import Logging
import NIOCore
import NIOPosix

/// The Ferry server: one CALL route with the workload's handler, protobuf body codec. A second
/// route passes the body bytes through untouched (`--codec raw`).
struct FerryBenchServer: BenchServer {
    /// The route that echoes the body bytes without decoding them.
    static let rawRoute = "/bench/raw"

    let group: MultiThreadedEventLoopGroup
    /// The heartbeat ping interval; nil: this side does not ping (the default).
    var heartbeat: Duration? = nil
    /// The share of replies delayed by ``slowDelay`` (a slow node); 0: none.
    var slowFraction: Double = 0
    var slowDelay: Duration = .milliseconds(50)

    func run(host: String, port: Int, onListening: @escaping @Sendable (Int) -> Void) async throws {
        var logger = Logger(label: "ferry-bench")
        logger.logLevel = .warning
        var configuration = FerryPeer.Configuration(defaultCodec: .protobuf)
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
        peer.router.call(Self.rawRoute) { (body: ByteBuffer, _) in body }
        let listener = try await peer.listen(.tcp(host: host, port: port))
        guard case .tcp(_, let boundPort) = listener.address else { return }
        onListening(boundPort)
        try await waitForever()
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
        host: String, port: Int, connections: Int, codec: BodyCodec, group: MultiThreadedEventLoopGroup, plan: LoadPlan
    ) async throws -> LoadMeasurement {
        var logger = Logger(label: "ferry-bench")
        logger.logLevel = .warning
        let peer = FerryPeer(configuration: .init(defaultCodec: .protobuf), eventLoopGroup: group, logger: logger)
        var targets: [any CallTarget] = []
        for _ in 0..<connections {
            let session = try await peer.dial(.tcp(host: host, port: port))
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
