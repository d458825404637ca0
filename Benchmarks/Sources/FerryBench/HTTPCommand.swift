import ArgumentParser
import BenchmarkProto
import FerryGateway
import Foundation
import Hummingbird
import NIOCore
import NIOPosix

/// `ferry-bench http`: the HTTP side of the gateway benchmark. One process serves, side by side
/// until stopped:
///
/// - **plain**: a Hummingbird 2 application whose one route, `POST /bench/echo`, answers the
///   request body with the request's `Content-Type`: the least an HTTP server on the same stack
///   does for the same request;
/// - **gateway**: a Ferry service (TCP on a free loopback port) behind a `FerryGateway` with HTTP
///   in, its defaults otherwise (CORS on, 10 s call timeout, the client's default pool):
///   `POST /bench/echo` becomes a CALL of `/bench/echo` through the gateway's `FerryClient`,
///   which the service answers with the same body and codec.
///
/// Both run on NIO's shared event-loop group (one thread per core). `scripts/gateway.sh` drives
/// them with `wrk`.
struct HTTPCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "http",
        abstract: "Serve POST /bench/echo from a plain Hummingbird route and through a FerryGateway, until stopped."
    )

    @Option(name: .long, help: "The address both servers listen on.")
    var host: String = "127.0.0.1"

    @Option(name: .long, help: "The plain Hummingbird server's port.")
    var plainPort: Int = 9401

    @Option(name: .long, help: "The gateway's HTTP port.")
    var gatewayPort: Int = 9402

    @Option(name: .long, help: "Write the workload's 581 encoded bytes (the request body) to this file and exit.")
    var writeBody: String?

    func validate() throws {
        for port in [plainPort, gatewayPort] {
            guard (0...65535).contains(port) else { throw ValidationError("ports must be 0...65535") }
        }
    }

    func run() async throws {
        Workload.checkEncodedSize()
        if let writeBody {
            try Data(Workload.encoded).write(to: URL(fileURLWithPath: writeBody))
            return
        }
        let group = MultiThreadedEventLoopGroup.singleton
        let serviceAddress = try await GatewayBench.startService(host: host, group: group)
        let gateway = GatewayBench.makeGateway(serviceAddress: serviceAddress, http: .init(host: host, port: gatewayPort))
        let (plainBound, plainContinuation) = AsyncStream.makeStream(of: Int.self)
        let plain = Application(
            router: Self.plainRouter(),
            configuration: ApplicationConfiguration(address: .hostname(host, port: plainPort)),
            onServerRunning: { channel in
                plainContinuation.yield(channel.localAddress?.port ?? 0)
                plainContinuation.finish()
            },
            logger: GatewayBench.quietLogger())
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await plain.run() }
            tasks.addTask { try await gateway.run() }
            var plainPort = 0
            for await port in plainBound { plainPort = port }
            let addresses = try await gateway.listeningAddresses()
            guard let http = addresses.http, case .tcp(_, let gatewayPort) = http else {
                throw BenchError.unexpectedReply("the gateway has no HTTP listener")
            }
            // gateway.sh waits for this line.
            emitLine("listening http plain \(host):\(plainPort) gateway \(host):\(gatewayPort) service \(serviceAddress) pid \(getpid())")
            try await tasks.next()
        }
    }

    /// `POST /bench/echo`: the request body back, with its `Content-Type`.
    static func plainRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/bench/echo") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 4 << 20)
            var headers = HTTPFields()
            headers[.contentType] = request.headers[.contentType] ?? "application/octet-stream"
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: body))
        }
        return router
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
