import ArgumentParser

/// The systems under test.
enum BenchSystem: String, ExpressibleByArgument, CaseIterable, Codable, Sendable {
    /// Ferry: a `FerryPeer` serving one CALL route, protobuf body.
    case ferry
    /// The same Ferry server and callers over WebSocket: the server listens on
    /// `.webSocket(host:port:path: "/ws")` and the callers dial it; erpc's mixer with its
    /// protobuf sub-protocol (the workload's body is binary).
    case ferryWebSocket = "ferry-ws"
    /// A Ferry service behind a `FerryGateway` whose WebSocket listener (`/ws`, JSON
    /// sub-protocol, token auth with `FerryDevelopmentTokenVerifier`) holds outside clients;
    /// server and `idle` only.
    case gatewayWebSocket = "gateway-ws"
    /// Ferry through `FerryMicro.FerryClient` (static registry, session pool, balancer) against
    /// the same server as `ferry`; client side only (`server --system ferry-client` serves as
    /// `ferry`).
    case ferryClient = "ferry-client"
    /// The ceiling: a raw SwiftNIO length-prefixed echo of the same 581 bytes.
    case nio
    /// The like-for-like ceiling: the same raw SwiftNIO framing, doing the workload's protobuf
    /// work as every RPC system must (the server decodes the message, answers it and encodes
    /// the reply; the client encodes each request and decodes each reply).
    case nioProtobuf = "nio-protobuf"
    /// grpc-swift-2 unary over its NIO HTTP/2 transport.
    case grpc
}

/// Where the load generator's callers run.
enum CallerPlacement: String, ExpressibleByArgument, CaseIterable, Codable, Sendable {
    /// Each caller's task prefers the event loop of its connection: it writes its requests and
    /// takes its replies on the thread that owns the socket, without crossing threads. Systems
    /// whose client does not expose one loop per connection (grpc-swift-2, ferry-client) run
    /// their callers on the pool.
    case loop
    /// Every caller's task runs on Swift's global concurrent executor (the cooperative pool),
    /// so each call crosses from the caller's thread to the connection's loop and back.
    case pool
}

/// What travels in the body.
enum BodyCodec: String, ExpressibleByArgument, CaseIterable, Codable, Sendable {
    /// The `BenchmarkMessage` encoded and decoded with SwiftProtobuf on both sides (the workload).
    case protobuf
    /// The same 581 encoded bytes passed through untouched (Ferry only: framework cost without
    /// protobuf).
    case raw
}

/// Where the server is and how many event-loop threads each process gets.
struct EndpointOptions: ParsableArguments {
    @Option(name: .long, help: "The system under test: ferry, ferry-ws, ferry-client, gateway-ws, nio, nio-protobuf or grpc.")
    var system: BenchSystem = .ferry

    @Option(name: .long, help: "The server address.")
    var host: String = "127.0.0.1"

    @Option(name: .long, help: "The server port.")
    var port: Int = 9100

    @Option(name: .long, help: "Event-loop threads in this process (at most 2, the same for every system).")
    var threads: Int = 2

    @Option(name: .long, help: "Body codec: protobuf (the workload) or raw (Ferry only, bytes passed through).")
    var codec: BodyCodec = .protobuf

    func validate() throws {
        guard (1...2).contains(threads) else {
            throw ValidationError("--threads must be 1 or 2: every system gets the same budget of at most 2")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0...65535") }
        if codec == .raw && system != .ferry && system != .ferryWebSocket {
            throw ValidationError("--codec raw applies to --system ferry and ferry-ws only")
        }
    }
}
