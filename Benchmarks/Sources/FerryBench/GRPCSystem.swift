import BenchmarkProto
import GRPCCore
import GRPCNIOTransportHTTP2
import NIOPosix

/// The `bench.Hello` service: the workload's handler.
struct HelloService: Bench_Hello.SimpleServiceProtocol {
    func say(request: Bench_BenchmarkMessage, context: ServerContext) async throws -> Bench_BenchmarkMessage {
        Workload.answer(request)
    }
}

/// grpc-swift-2 serving `bench.Hello/Say` over its NIO HTTP/2 transport, plaintext.
struct GRPCBenchServer: BenchServer {
    let group: MultiThreadedEventLoopGroup

    func run(host: String, port: Int, onListening: @escaping @Sendable (Int) -> Void) async throws {
        let server = GRPCServer(
            transport: .http2NIOPosix(
                address: .ipv4(host: host, port: port),
                transportSecurity: .plaintext,
                eventLoopGroup: group
            ),
            services: [HelloService()]
        )
        try await withThrowingDiscardingTaskGroup { tasks in
            tasks.addTask { try await server.serve() }
            if let address = try await server.listeningAddress, let ipv4 = address.ipv4 {
                onListening(ipv4.port)
            } else {
                onListening(port)
            }
        }
    }
}

/// grpc-swift-2 callers: one `GRPCClient` (one HTTP/2 connection) per connection.
enum GRPCBenchClient {
    struct Target: CallTarget {
        let client: Bench_Hello.Client<HTTP2ClientTransport.Posix>
        let request = Workload.message

        func call() async throws {
            let reply = try await client.say(request)
            guard reply.field1 == "OK" else { throw BenchError.unexpectedReply("field1 is \(reply.field1)") }
        }
    }

    static func measure(
        host: String, port: Int, connections: Int, group: MultiThreadedEventLoopGroup, plan: LoadPlan
    ) async throws -> LoadMeasurement {
        var clients: [GRPCClient<HTTP2ClientTransport.Posix>] = []
        for _ in 0..<connections {
            let transport = try HTTP2ClientTransport.Posix(
                target: .ipv4(address: host, port: port),
                transportSecurity: .plaintext,
                eventLoopGroup: group
            )
            clients.append(GRPCClient(transport: transport))
        }
        return try await withThrowingTaskGroup(of: Void.self, returning: LoadMeasurement.self) { tasks in
            for client in clients {
                tasks.addTask { try await client.runConnections() }
            }
            let targets: [any CallTarget] = clients.map { Target(client: Bench_Hello.Client(wrapping: $0)) }
            // Open every connection before the clock starts.
            for target in targets { try await target.call() }
            let measurement = await LoadGenerator.run(plan, targets: targets)
            for client in clients { client.beginGracefulShutdown() }
            try await tasks.waitForAll()
            return measurement
        }
    }
}
