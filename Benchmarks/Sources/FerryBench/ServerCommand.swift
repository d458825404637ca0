import ArgumentParser
import BenchmarkProto
import NIOPosix

/// `ferry-bench server`: serves the workload until the process is stopped.
struct ServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server",
        abstract: "Serve the benchmark workload with one system until stopped (SIGTERM / SIGINT)."
    )

    @OptionGroup var endpoint: EndpointOptions

    @Option(name: .long, help: "Ferry only: ping every session that has been silent this many seconds (heartbeats on).")
    var heartbeat: Int?

    @Option(name: .long, help: "Ferry only: the share of replies (0...1) delayed by --slow-delay-ms, to play a slow node.")
    var slowFraction: Double = 0

    @Option(name: .long, help: "Ferry only: how long a slow reply waits, in milliseconds.")
    var slowDelayMs: Int = 50

    @OptionGroup var observation: ObservabilityOptions

    func validate() throws {
        try observation.validate(for: endpoint.system)
        let isFerry = [.ferry, .ferryClient, .ferryWebSocket, .gatewayWebSocket].contains(endpoint.system)
        guard (0...1).contains(slowFraction) else { throw ValidationError("--slow-fraction must be 0...1") }
        guard slowDelayMs >= 0 else { throw ValidationError("--slow-delay-ms must be 0 or more") }
        if slowFraction > 0 && !isFerry { throw ValidationError("--slow-fraction applies to the Ferry systems only") }
        if slowFraction > 0 && endpoint.system == .gatewayWebSocket { throw ValidationError("--slow-fraction does not apply to gateway-ws") }
        if let heartbeat {
            guard isFerry else { throw ValidationError("--heartbeat applies to the Ferry systems only") }
            guard heartbeat >= 1 else { throw ValidationError("--heartbeat must be at least 1 second") }
        }
    }

    func run() async throws {
        Workload.checkEncodedSize()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: endpoint.threads)
        let server: any BenchServer
        let (observability, observers) = observation.make()
        if let observers {
            // What the backends hold, every 10 seconds, in the server's log.
            Task.detached {
                while true {
                    try await Task.sleep(for: .seconds(10))
                    observers.report()
                }
            }
        }
        switch endpoint.system {
        case .ferry, .ferryClient:
            server = FerryBenchServer(
                group: group, heartbeat: heartbeat.map { .seconds($0) },
                slowFraction: slowFraction, slowDelay: .milliseconds(slowDelayMs), observability: observability)
        case .ferryWebSocket:
            server = FerryBenchServer(
                group: group, transport: .webSocket, heartbeat: heartbeat.map { .seconds($0) },
                slowFraction: slowFraction, slowDelay: .milliseconds(slowDelayMs))
        case .gatewayWebSocket: server = GatewayWebSocketServer(group: group, heartbeat: heartbeat.map { .seconds($0) })
        case .nio: server = NIOEchoServer(group: group)
        case .nioProtobuf: server = NIOEchoServer(group: group, answersProtobuf: true)
        case .grpc: server = GRPCBenchServer(group: group)
        }
        try await server.run(host: endpoint.host, port: endpoint.port) { boundPort in
            // run.sh and idle.sh wait for this line.
            emitLine("listening \(endpoint.system.rawValue) \(endpoint.host):\(boundPort) pid \(getpid()) threads \(endpoint.threads)")
        }
    }
}

/// One system's server.
protocol BenchServer: Sendable {
    /// Binds, calls `onListening` with the bound port, and serves until the process ends.
    func run(host: String, port: Int, onListening: @escaping @Sendable (Int) -> Void) async throws
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
