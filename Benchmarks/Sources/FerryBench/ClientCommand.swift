import ArgumentParser
import BenchmarkProto
import Foundation
import NIOPosix

/// `ferry-bench client`: C concurrent callers over K connections, after a warm-up, for a number
/// of calls or a duration; prints QPS and latency as a table or as JSON.
struct ClientCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Load a running server with concurrent callers and report QPS and latency."
    )

    @OptionGroup var endpoint: EndpointOptions

    @Option(name: .long, help: "Concurrent callers.")
    var concurrency: Int = 100

    @Option(name: .long, help: "Connections shared by the callers; 0 opens one connection per caller.")
    var connections: Int = 4

    @Option(name: .long, help: "Total measured calls (after the warm-up). Ignored when --duration is given.")
    var calls: Int = 100_000

    @Option(name: .long, help: "Measure for this many seconds instead of a number of calls.")
    var duration: Double?

    @Option(name: .long, help: "Seconds of load before measuring starts.")
    var warmup: Double = 2

    @Flag(name: .long, help: "Print the result as one JSON object instead of a table.")
    var json = false

    func validate() throws {
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard connections >= 0 else { throw ValidationError("--connections must be 0 or more") }
        guard calls >= 1 else { throw ValidationError("--calls must be at least 1") }
        if let duration, duration <= 0 { throw ValidationError("--duration must be positive") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be 0 or more") }
    }

    func run() async throws {
        Workload.checkEncodedSize()
        let connectionCount = connections == 0 ? concurrency : min(connections, concurrency)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: endpoint.threads)
        let plan = LoadPlan(
            concurrency: concurrency,
            calls: duration == nil ? calls : nil,
            duration: duration.map { .milliseconds(Int64($0 * 1000)) },
            warmup: .milliseconds(Int64(warmup * 1000))
        )
        let measurement: LoadMeasurement
        switch endpoint.system {
        case .ferry:
            measurement = try await FerryBenchClient.measure(
                host: endpoint.host, port: endpoint.port, connections: connectionCount,
                codec: endpoint.codec, group: group, plan: plan)
        case .nio:
            measurement = try await NIOEchoClient.measure(
                host: endpoint.host, port: endpoint.port, connections: connectionCount, group: group, plan: plan)
        case .grpc:
            measurement = try await GRPCBenchClient.measure(
                host: endpoint.host, port: endpoint.port, connections: connectionCount, group: group, plan: plan)
        }
        try? await group.shutdownGracefully()

        let report = BenchReport(
            system: endpoint.system.rawValue,
            codec: endpoint.codec.rawValue,
            concurrency: concurrency,
            connections: connectionCount,
            oneConnectionPerCaller: connections == 0,
            threads: endpoint.threads,
            payloadBytes: Workload.encodedSize,
            measurement: measurement
        )
        if json {
            print(try report.jsonString())
        } else {
            print(report.table())
        }
    }
}
