import Benchmark
import BenchmarkProto
import Ferry
import FerryCore
import Logging
import NIOCore
import NIOEmbedded
import SwiftProtobuf

// Micro-benchmarks of Ferry's per-message path, one message per iteration: wall time and
// mallocs per message.
//
// FrameEncode        a CALL with the 581-byte body into a reused buffer (FerryRawProto.encodeMessage)
// FrameDecode        the same frame back into a FerryMessage (FerryRawProto.decodeMessage)
// FrameEncodeDecode  both, one after the other
// FrameEncodeThousand, FrameDecodeThousand  the same, a thousand messages per sample
// RoundTripProtobuf  the whole call path in memory, both sides (see below)
// RoundTripRawBody   the same with the body passed through as bytes (no SwiftProtobuf)
// ServeCallProtobuf  the callee's side through a real session pipeline (see below)
// ServeCallRawBody   the same with the body passed through as bytes
// CallOverLoopbackRawBody  both ends of a call over a real loopback connection, in one process
//
// Static thresholds live in Benchmarks/Thresholds/; check them with
// `swift package benchmark thresholds check` (run inside Benchmarks/).

/// A session that goes nowhere: the round trip below never calls back to the peer.
final class StubSession: FerrySessionProtocol {
    let id = "127.0.0.1:40000"
    let remoteAddress = "127.0.0.1:40000"
    let codecs = FerryCodecRegistry.standard
    let defaultCodec = FerryCodecID.protobuf

    func setID(_ newID: String) {}

    nonisolated(nonsending) func call(_ serviceMethod: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws -> FerryReply {
        throw FerryStatus.connectionClosed("stub session")
    }

    nonisolated(nonsending) func push(_ serviceMethod: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws {
        throw FerryStatus.connectionClosed("stub session")
    }

    func close() async {}
}

/// A server peer answering `/bench/raw` and a client session dialled to it on loopback.
final class LoopbackPair: @unchecked Sendable {
    // Set in the benchmark's setup and read by its samples, which run after it, one at a time.
    private(set) var session: FerrySession?
    private var server: FerryPeer?
    private var client: FerryPeer?
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func open() async throws {
        let server = FerryPeer(configuration: .init(defaultCodec: .protobuf), logger: logger)
        server.router.call("/bench/raw") { (body: ByteBuffer, _) in body }
        let listener = try await server.listen(.tcp(host: "127.0.0.1", port: 0))
        let client = FerryPeer(configuration: .init(defaultCodec: .protobuf), logger: logger)
        let session = try await client.dial(listener.address)
        // The first calls take paths the steady state does not.
        for _ in 0..<3 {
            _ = try await session.call("/bench/raw", body: ByteBuffer(bytes: Workload.encoded), codec: .protobuf, options: .init())
        }
        (self.server, self.client, self.session) = (server, client, session)
    }

    func close() async {
        await client?.close()
        await server?.close()
        (server, client, session) = (nil, nil, nil)
    }
}

/// The CALL every benchmark sends: the workload's route, seq 1, protobuf codec, the 581-byte
/// body.
func workloadCall(body: ByteBuffer = ByteBuffer(bytes: Workload.encoded)) -> FerryMessage {
    FerryMessage(type: .call, seq: 1, serviceMethod: Workload.route, bodyCodec: .protobuf, body: body)
}

let benchmarks: @Sendable () -> Void = {
    Workload.checkEncodedSize()

    // Mallocs per message are exact: no tolerance. Wall time on this shared 2-core machine moves
    // by tens of percent from run to run, so only a doubling of the p90 counts as a regression.
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal],
        timeUnits: .nanoseconds,
        warmupIterations: 100,
        maxDuration: .seconds(2),
        maxIterations: 200_000,
        thresholds: [
            .mallocCountTotal: .init(absolute: [.p90: 0]),
            .wallClock: .init(relative: [.p90: 100.0]),
        ]
    )

    let proto = FerryRawProto()
    let call = workloadCall()

    let encodeFrames: (Benchmark) -> Void = { benchmark in
        var wire = ByteBufferAllocator().buffer(capacity: 1024)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            wire.clear()
            try! proto.encodeMessage(call, into: &wire)
            blackHole(wire.readableBytes)
        }
    }
    let decodeFrames: (Benchmark) -> Void = { benchmark in
        var frame = ByteBuffer()
        try! proto.encodeMessage(call, into: &frame)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            var input = frame
            let message = try! proto.decodeMessage(from: &input)
            blackHole(message)
        }
    }
    Benchmark("FrameEncode", closure: encodeFrames)
    Benchmark("FrameDecode", closure: decodeFrames)
    // A thousand messages per sample: a sample's time, divided by 1000, is one message's without
    // the runner's own cost per sample, which is most of FrameEncode's and FrameDecode's.
    Benchmark("FrameEncodeThousand", configuration: .init(scalingFactor: .kilo), closure: encodeFrames)
    Benchmark("FrameDecodeThousand", configuration: .init(scalingFactor: .kilo), closure: decodeFrames)

    Benchmark("FrameEncodeDecode") { benchmark in
        var wire = ByteBufferAllocator().buffer(capacity: 1024)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            wire.clear()
            try! proto.encodeMessage(call, into: &wire)
            let message = try! proto.decodeMessage(from: &wire)
            blackHole(message)
        }
    }

    // The whole per-call path in memory, as the two sessions run it: the caller encodes the
    // protobuf body and the CALL frame; the callee decodes the frame, routes it through the
    // router with a context, decodes the body, runs the handler, encodes the reply body and the
    // REPLY frame; the caller decodes the frame and the reply body.
    let session = StubSession()
    let router = FerryRouter()
    router.call(Workload.route) { (request: Bench_BenchmarkMessage, _) in Workload.answer(request) }
    router.call("/bench/raw") { (body: ByteBuffer, _) in body }
    var logger = Logger(label: "ferry-micro")
    logger.logLevel = .warning
    let codecs = FerryCodecRegistry.standard
    let request = Workload.message

    /// What `FerrySession` does with an inbound CALL: a synchronous route runs in place, any
    /// other in the handler's task.
    @Sendable func routeLikeASession(_ inbound: FerryMessage, context: FerryContext) async -> FerryMessage {
        let route = router.handler(for: .call, path: inbound.serviceMethod)
        if case .synchronous(let handler)? = route {
            return router.reply(to: inbound, synchronousHandler: handler, context: context, checkedAt: context.arrival, exposeErrorDetails: false)
        }
        return await router.reply(to: inbound, route: route, context: context, exposeErrorDetails: false)
    }

    Benchmark("RoundTripProtobuf") { benchmark in
        var wire = ByteBufferAllocator().buffer(capacity: 2048)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let body = try! codecs.encode(request, codec: .protobuf)
            wire.clear()
            try! proto.encodeMessage(workloadCall(body: body), into: &wire)
            let inbound = try! proto.decodeMessage(from: &wire)!
            let context = FerryContext(session: session, message: inbound, logger: logger)
            let reply = await routeLikeASession(inbound, context: context)
            wire.clear()
            try! proto.encodeMessage(reply, into: &wire)
            let received = try! proto.decodeMessage(from: &wire)!
            let answer = try! FerryReply(message: received, cost: .zero, codecs: codecs).decode(Bench_BenchmarkMessage.self)
            precondition(answer.field1 == "OK")
            blackHole(answer)
        }
    }

    Benchmark("RoundTripRawBody") { benchmark in
        var wire = ByteBufferAllocator().buffer(capacity: 2048)
        let raw = FerryMessage(
            type: .call, seq: 1, serviceMethod: "/bench/raw", bodyCodec: .protobuf,
            body: ByteBuffer(bytes: Workload.encoded))
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            wire.clear()
            try! proto.encodeMessage(raw, into: &wire)
            let inbound = try! proto.decodeMessage(from: &wire)!
            let context = FerryContext(session: session, message: inbound, logger: logger)
            let reply = await routeLikeASession(inbound, context: context)
            wire.clear()
            try! proto.encodeMessage(reply, into: &wire)
            let received = try! proto.decodeMessage(from: &wire)!
            precondition(received.body.readableBytes == Workload.encodedSize)
            blackHole(received)
        }
    }

    // The callee's whole path through a real session pipeline, as a listener's connection runs
    // it: `FerryPeer.serve(_:)` on an in-memory channel. Each iteration writes a CALL frame in,
    // runs the event-loop tick and reads the REPLY frame out: the frame decoder, the session
    // (admission, context, route, deadline), the handler with its protobuf bodies, the tick's
    // batch and its flush. No socket and no thread: what is left is Ferry's own work.
    func serveCall(_ benchmark: Benchmark, route: String, body: ByteBuffer) async {
        let peer = FerryPeer(configuration: .init(defaultCodec: .protobuf), logger: logger)
        peer.router.call(Workload.route) { (request: Bench_BenchmarkMessage, _) in Workload.answer(request) }
        peer.router.call("/bench/raw") { (body: ByteBuffer, _) in body }
        let channel = EmbeddedChannel()
        _ = try! peer.serve(channel, remoteAddress: "memory")
        try! channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        var frame = ByteBuffer()
        try! proto.encodeMessage(
            FerryMessage(type: .call, seq: 1, serviceMethod: route, bodyCodec: .protobuf, body: body), into: &frame)
        func callOnce() {
            try! channel.writeInbound(frame)
            channel.embeddedEventLoop.run()
            let reply = try! channel.readOutbound(as: ByteBuffer.self)!
            precondition(reply.readableBytes > Workload.encodedSize / 2)
            blackHole(reply)
        }
        // The session's first calls take paths the steady state does not (its admission, the
        // growth of its buffers and tables); they stay out of the measurement.
        for _ in 0..<3 { callOnce() }
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { callOnce() }
        benchmark.stopMeasurement()
        _ = try? channel.finish()
        await peer.close()
    }

    // Both ends of a call in one process, over a real TCP connection on loopback: the caller's
    // session (seq, pending call, deadline meta, the hop to the event loop), both pipelines,
    // both frames and the callee's handling. Made once, before the samples.
    let loopback = LoopbackPair(logger: logger)

    Benchmark(
        "CallOverLoopbackRawBody",
        closure: { benchmark in
            let session = loopback.session!
            let body = ByteBuffer(bytes: Workload.encoded)
            @Sendable func callOnce() async {
                let reply = try! await session.call("/bench/raw", body: body, codec: .protobuf, options: .init())
                precondition(reply.body.readableBytes == Workload.encodedSize)
                blackHole(reply)
            }
            // Each sample runs in a new task: its first call grows the task's own memory, which
            // is the benchmark's cost, not the call's.
            await callOnce()
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { await callOnce() }
        },
        setup: { try await loopback.open() },
        teardown: { await loopback.close() }
    )

    Benchmark("ServeCallProtobuf") { benchmark in
        await serveCall(benchmark, route: Workload.route, body: ByteBuffer(bytes: Workload.encoded))
    }

    Benchmark("ServeCallRawBody") { benchmark in
        await serveCall(benchmark, route: "/bench/raw", body: ByteBuffer(bytes: Workload.encoded))
    }
}
