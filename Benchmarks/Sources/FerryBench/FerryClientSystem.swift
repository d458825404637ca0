import BenchmarkProto
import Ferry
import FerryMicro
import Logging
import NIOPosix
import Synchronization

/// Ferry callers through one `FerryClient`: a static registry of the server nodes, `poolSize`
/// sessions per node, the configured balancer and, optionally, backup requests. Every caller
/// shares the one client; the server is the `ferry` system's.
enum FerryClientBench {
    static let service = "bench"

    struct Settings: Sendable {
        var host: String
        var ports: [Int]
        var poolSize: Int
        var balancer: FerryLoadBalancer
        var backupDelay: Duration?
    }

    /// What the client sent besides what the callers asked for.
    struct Attempts: Sendable {
        /// Calls the callers made, warm-up included.
        var calls: Int
        /// Attempts the client sent to the nodes (backup requests and retries included).
        var attempts: Int
        /// Attempts cancelled (backup races lost).
        var cancelled: Int
    }

    struct Target: CallTarget {
        let client: FerryClient
        let counter: Counter
        let request = Workload.message
        let options = FerryCallOptions(codec: .protobuf)

        func call() async throws {
            counter.add()
            let reply: Bench_BenchmarkMessage = try await client.call(Workload.route, request, options: options)
            guard reply.field1 == "OK" else { throw BenchError.unexpectedReply("field1 is \(reply.field1)") }
        }
    }

    final class Counter: Sendable {
        private let value = Atomic<Int>(0)
        func add() { value.wrappingAdd(1, ordering: .relaxed) }
        var count: Int { value.load(ordering: .relaxed) }
    }

    static func measure(
        _ settings: Settings, group: MultiThreadedEventLoopGroup, plan: LoadPlan
    ) async throws -> (LoadMeasurement, Attempts) {
        var logger = Logger(label: "ferry-bench")
        logger.logLevel = .warning
        let peer = FerryPeer(configuration: .init(defaultCodec: .protobuf), eventLoopGroup: group, logger: logger)
        let registry = FerryStaticRegistry(nodes: settings.ports.map {
            FerryNode(service: service, address: .tcp(host: settings.host, port: $0))
        })
        var configuration = FerryClient.Configuration()
        configuration.poolSize = settings.poolSize
        configuration.balancer = settings.balancer
        configuration.backupDelay = settings.backupDelay
        let counter = Counter()
        // The client's background work (the registry watch, the pools' dials) runs in its run(),
        // for the length of the scope.
        let result = try await withFerryClient(service: service, registry: registry, peer: peer, configuration: configuration) { client in
            let measurement = await LoadGenerator.run(plan, targets: [Target(client: client, counter: counter)])
            let endpoints = client.endpoints
            let attempts = Attempts(
                calls: counter.count,
                attempts: endpoints.reduce(0) { $0 + $1.calls },
                cancelled: endpoints.reduce(0) { $0 + $1.cancelled })
            return (measurement, attempts)
        }
        await peer.close()
        return result
    }
}
