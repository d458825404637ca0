import ArgumentParser
import BenchmarkProto
import Ferry
import NIOCore
import NIOPosix
import SwiftProtobuf

/// `ferry-bench idle`: opens many connections to a Ferry or raw NIO server, makes one call on
/// each, then holds them open and idle so that the server's memory per connection can be read.
/// Over WebSocket (`ferry-ws`, `gateway-ws`) each connection upgrades first; through the gateway
/// it authenticates with a token of its own (a user name: one session per user) before its call.
struct IdleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "idle",
        abstract: "Open N connections (one call each), then hold them idle until stopped or --hold runs out."
    )

    @OptionGroup var endpoint: EndpointOptions

    @Option(name: .long, help: "Connections to open.")
    var connections: Int = 10_000

    @Option(name: .long, help: "Source addresses 127.0.0.<first>... used in turn, so ports do not run out.")
    var sources: Int = 8

    @Option(name: .long, help: "The last byte of the first source address.")
    var firstSource: Int = 2

    @Option(name: .long, help: "Connection attempts in flight at once.")
    var inFlight: Int = 128

    @Option(name: .long, help: "Seconds to hold the connections once all are open.")
    var hold: Double = 600

    func validate() throws {
        guard [.ferry, .nio, .ferryWebSocket, .gatewayWebSocket].contains(endpoint.system) else {
            throw ValidationError("idle supports --system ferry, nio, ferry-ws and gateway-ws")
        }
        guard connections >= 1, sources >= 1, inFlight >= 1 else { throw ValidationError("counts must be positive") }
        guard firstSource >= 1, firstSource + sources - 1 <= 254 else { throw ValidationError("source addresses run past 127.0.0.254") }
    }

    func run() async throws {
        Workload.checkEncodedSize()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: endpoint.threads)
        let frame = try requestFrame()
        let clock = ContinuousClock()
        let start = clock.now
        var open: [any Channel] = []
        open.reserveCapacity(connections)
        var failures = 0
        var firstFailure: String?
        try await withThrowingTaskGroup(of: Result<any Channel, any Error>.self) { tasks in
            var started = 0
            func startNext() throws {
                let index = started
                started += 1
                let source = try SocketAddress(ipAddress: "127.0.0.\(firstSource + index % sources)", port: 0)
                let token = "idle-\(firstSource)-\(index)"
                tasks.addTask { [endpoint] in
                    do {
                        return .success(try await Self.open(endpoint, frame: frame, token: token, group: group, source: source))
                    } catch {
                        return .failure(error)
                    }
                }
            }
            while started < min(inFlight, connections) { try startNext() }
            while let result = try await tasks.next() {
                switch result {
                case .success(let connection): open.append(connection)
                case .failure(let error):
                    failures += 1
                    firstFailure = firstFailure ?? "\(error)"
                }
                if started < connections { try startNext() }
                if (open.count + failures) % 10_000 == 0 {
                    emitLine("progress \(open.count) open \(failures) failed")
                }
            }
        }
        let seconds = Double(start.duration(to: clock.now).components.seconds)
        // idle.sh waits for this line.
        emitLine("connected \(open.count) failed \(failures) seconds \(Int(seconds))" + (firstFailure.map { " first-error \($0)" } ?? ""))
        try? await Task.sleep(for: .milliseconds(Int64(hold * 1000)))
        for channel in open { channel.close(promise: nil) }
        try? await group.shutdownGracefully()
    }

    /// Opens one connection, makes its call (after the upgrade and the auth handshake where the
    /// system has them) and returns its channel.
    private static func open(
        _ endpoint: EndpointOptions, frame: ByteBuffer, token: String, group: any EventLoopGroup, source: SocketAddress
    ) async throws -> any Channel {
        switch endpoint.system {
        case .ferryWebSocket, .gatewayWebSocket:
            let connection = try await WebSocketIdleConnection.connect(
                host: endpoint.host, port: endpoint.port, path: FerryBenchTransport.webSocketPath, group: group, bindTo: source)
            if endpoint.system == .gatewayWebSocket {
                let proto = FerryWebSocketProto(subprotocol: .json)
                let auth = FerryMessage(type: .authCall, seq: 1, bodyCodec: .plain, body: ByteBuffer(string: token))
                try await expect(.authReply, answering: auth, on: connection, proto: proto)
                let call = FerryMessage(
                    type: .call, seq: 2, serviceMethod: FerryBenchServer.echoRoute, bodyCodec: .plain, body: ByteBuffer(string: "idle"))
                try await expect(.reply, answering: call, on: connection, proto: proto)
            } else {
                let call = FerryMessage(
                    type: .call, seq: 1, serviceMethod: Workload.route, bodyCodec: .protobuf, body: ByteBuffer(bytes: Workload.encoded))
                try await expect(.reply, answering: call, on: connection, proto: FerryWebSocketProto(subprotocol: .protobuf))
            }
            return connection.channel
        default:
            let connection = try await FramedConnection.connect(host: endpoint.host, port: endpoint.port, group: group, bindTo: source)
            _ = try await connection.exchange(frame)
            return connection.channel
        }
    }

    /// Sends `request` and waits for its answer, of `type` and status OK; pushes (heartbeats)
    /// in between are skipped.
    private static func expect(
        _ type: FerryMessageType, answering request: FerryMessage, on connection: WebSocketIdleConnection, proto: FerryWebSocketProto
    ) async throws {
        var payload = ByteBuffer()
        try proto.encodeMessage(request, into: &payload)
        var answer = try proto.decodeMessage(try await connection.exchange(payload))
        while answer.type == .push { answer = try proto.decodeMessage(try await connection.nextMessage()) }
        guard answer.type == type, answer.status.isOK else {
            throw BenchError.unexpectedReply("\(answer.type) with status \(answer.status) to \(request.type)")
        }
    }

    /// One request of the system: a Ferry CALL frame of the workload, or the ceiling's echo frame.
    private func requestFrame() throws -> ByteBuffer {
        switch endpoint.system {
        case .ferry, .ferryWebSocket, .gatewayWebSocket:
            let message = FerryMessage(
                type: .call, seq: 1, serviceMethod: Workload.route, bodyCodec: .protobuf,
                body: ByteBuffer(bytes: Workload.encoded))
            var frame = ByteBuffer()
            try FerryRawProto().encodeMessage(message, into: &frame)
            return frame
        case .nio, .grpc, .ferryClient:
            return echoFrame()
        case .nioProtobuf:
            return try protobufFrame(Workload.message, allocator: ByteBufferAllocator())
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
