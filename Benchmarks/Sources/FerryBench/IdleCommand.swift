import ArgumentParser
import BenchmarkProto
import Ferry
import NIOCore
import NIOPosix
import SwiftProtobuf

/// `ferry-bench idle`: opens many connections to a Ferry or raw NIO server, makes one call on
/// each, then holds them open and idle so that the server's memory per connection can be read.
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
        guard endpoint.system == .ferry || endpoint.system == .nio else { throw ValidationError("idle supports --system ferry and nio") }
        guard connections >= 1, sources >= 1, inFlight >= 1 else { throw ValidationError("counts must be positive") }
        guard firstSource >= 1, firstSource + sources - 1 <= 254 else { throw ValidationError("source addresses run past 127.0.0.254") }
    }

    func run() async throws {
        Workload.checkEncodedSize()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: endpoint.threads)
        let frame = try requestFrame()
        let clock = ContinuousClock()
        let start = clock.now
        var open: [FramedConnection] = []
        open.reserveCapacity(connections)
        var failures = 0
        var firstFailure: String?
        try await withThrowingTaskGroup(of: Result<FramedConnection, any Error>.self) { tasks in
            var started = 0
            func startNext() throws {
                let index = started
                started += 1
                let source = try SocketAddress(ipAddress: "127.0.0.\(firstSource + index % sources)", port: 0)
                tasks.addTask { [endpoint] in
                    do {
                        let connection = try await FramedConnection.connect(
                            host: endpoint.host, port: endpoint.port, group: group, bindTo: source)
                        _ = try await connection.exchange(frame)
                        return .success(connection)
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
        for connection in open { connection.channel.close(promise: nil) }
        try? await group.shutdownGracefully()
    }

    /// One request of the system: a Ferry CALL frame of the workload, or the ceiling's echo frame.
    private func requestFrame() throws -> ByteBuffer {
        switch endpoint.system {
        case .ferry:
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
