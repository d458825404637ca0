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

    @Option(name: .long, help: "ferry-client only: the server ports, comma-separated (one node each); default --port.")
    var ports: String?

    @Option(name: .long, help: "ferry-client only: the balancer, p2c (the default) or round-robin.")
    var balancer: String = "p2c"

    @Option(name: .long, help: "ferry-client only: send a backup request after this many milliseconds without a reply.")
    var backupDelayMs: Int?

    @Option(name: .long, help: "Where the callers run: loop (each on its connection's event loop; grpc and ferry-client callers stay on the pool) or pool (Swift's global concurrent executor).")
    var callers: CallerPlacement = .loop

    @Flag(name: .long, help: "Print the result as one JSON object instead of a table.")
    var json = false

    @OptionGroup var observation: ObservabilityOptions

    func validate() throws {
        try observation.validate(for: endpoint.system)
        guard endpoint.system != .gatewayWebSocket else {
            throw ValidationError("--system gateway-ws has a server and idle connections only")
        }
        guard concurrency >= 1 else { throw ValidationError("--concurrency must be at least 1") }
        guard connections >= 0 else { throw ValidationError("--connections must be 0 or more") }
        guard calls >= 1 else { throw ValidationError("--calls must be at least 1") }
        if let duration, duration <= 0 { throw ValidationError("--duration must be positive") }
        guard warmup >= 0 else { throw ValidationError("--warmup must be 0 or more") }
        if endpoint.system != .ferryClient && (ports != nil || backupDelayMs != nil || balancer != "p2c") {
            throw ValidationError("--ports, --balancer and --backup-delay-ms apply to --system ferry-client only")
        }
        guard ["p2c", "round-robin"].contains(balancer) else { throw ValidationError("--balancer is p2c or round-robin") }
        if let backupDelayMs, backupDelayMs < 1 { throw ValidationError("--backup-delay-ms must be at least 1") }
        if endpoint.system == .ferryClient && endpoint.codec != .protobuf {
            throw ValidationError("--system ferry-client uses --codec protobuf")
        }
    }

    func run() async throws {
        Workload.checkEncodedSize()
        let connectionCount = connections == 0 ? concurrency : min(connections, concurrency)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: endpoint.threads)
        let plan = LoadPlan(
            concurrency: concurrency,
            calls: duration == nil ? calls : nil,
            duration: duration.map { .milliseconds(Int64($0 * 1000)) },
            warmup: .milliseconds(Int64(warmup * 1000)),
            callers: callers
        )
        let measurement: LoadMeasurement
        var attempts: FerryClientBench.Attempts?
        let (observability, observers) = observation.make()
        switch endpoint.system {
        case .ferry, .ferryWebSocket:
            measurement = try await FerryBenchClient.measure(
                host: endpoint.host, port: endpoint.port, transport: endpoint.system == .ferry ? .tcp : .webSocket,
                connections: connectionCount, codec: endpoint.codec, group: group, plan: plan,
                observability: observability)
        case .ferryClient:
            let nodePorts = try ports.map { list in
                try list.split(separator: ",").map { text in
                    guard let port = Int(text.trimmingCharacters(in: .whitespaces)) else {
                        throw ValidationError("--ports: \(text) is not a port")
                    }
                    return port
                }
            } ?? [endpoint.port]
            let settings = FerryClientBench.Settings(
                host: endpoint.host, ports: nodePorts, poolSize: connectionCount,
                balancer: balancer == "round-robin" ? .roundRobin : .powerOfTwoChoices,
                backupDelay: backupDelayMs.map { .milliseconds($0) })
            (measurement, attempts) = try await FerryClientBench.measure(settings, group: group, plan: plan)
        case .nio, .nioProtobuf:
            measurement = try await NIOEchoClient.measure(
                host: endpoint.host, port: endpoint.port, connections: connectionCount, group: group, plan: plan,
                protobuf: endpoint.system == .nioProtobuf)
        case .gatewayWebSocket:
            throw ValidationError("--system gateway-ws has a server and idle connections only")
        case .grpc:
            measurement = try await GRPCBenchClient.measure(
                host: endpoint.host, port: endpoint.port, connections: connectionCount, group: group, plan: plan)
        }
        try? await group.shutdownGracefully()
        // On standard error: standard output carries the report.
        observers?.report()

        var report = BenchReport(
            system: endpoint.system.rawValue,
            codec: endpoint.codec.rawValue,
            concurrency: concurrency,
            connections: connectionCount,
            oneConnectionPerCaller: connections == 0,
            threads: endpoint.threads,
            payloadBytes: Workload.encodedSize,
            measurement: measurement
        )
        if let attempts {
            report.clientCalls = attempts.calls
            report.clientAttempts = attempts.attempts
            report.clientCancelled = attempts.cancelled
        }
        if json {
            print(try report.jsonString())
        } else {
            print(report.table())
        }
    }
}
