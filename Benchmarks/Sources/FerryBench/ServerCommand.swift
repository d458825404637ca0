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

    func validate() throws {
        if let heartbeat {
            guard endpoint.system == .ferry else { throw ValidationError("--heartbeat applies to --system ferry only") }
            guard heartbeat >= 1 else { throw ValidationError("--heartbeat must be at least 1 second") }
        }
    }

    func run() async throws {
        Workload.checkEncodedSize()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: endpoint.threads)
        let server: any BenchServer
        switch endpoint.system {
        case .ferry: server = FerryBenchServer(group: group, heartbeat: heartbeat.map { .seconds($0) })
        case .nio: server = NIOEchoServer(group: group)
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
