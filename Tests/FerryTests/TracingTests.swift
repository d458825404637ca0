import Ferry
import FerryTestSupport
import Foundation
import InMemoryTracing
import NIOCore
import Testing
import Tracing

@Suite("Tracing")
struct TracingTests {
    @Test("a trace crosses a client and two services: one span per call on each side, each hop the child of the one before, context in traceparent/tracestate, other meta untouched")
    func acrossTwoHops() async throws {
        let tracer = W3CInMemoryTracer()
        let traced = FerryPeer.Configuration(observability: FerryObservability(tracer: tracer))
        let backMeta = Box<[String: String]>()
        let frontMeta = Box<[String: String]>()

        // The back service.
        let (back, backListener) = try await makeServer(traced) { router in
            router.call("/back/double") { (value: Int, context: FerryContext) in
                backMeta.value = Dictionary(context.message.meta.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
                return value * 2
            }
        }
        // The front service calls the back one from its handler.
        let toBack = Box<FerrySession>()
        let (front, frontListener) = try await makeServer(traced) { router in
            router.call("/front/quadruple") { (value: Int, context: FerryContext) async throws -> Int in
                frontMeta.value = Dictionary(context.message.meta.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
                let doubled = try await toBack.value!.call("/back/double", value, as: Int.self)
                return try await toBack.value!.call("/back/double", doubled, as: Int.self)
            }
        }
        toBack.value = try await front.dial(backListener.address)
        let client = FerryPeer(configuration: traced, logger: quietLogger())
        let session = try await client.dial(frontListener.address)

        let options = FerryCallOptions(meta: ["X-Erpc-Key": "kept as sent"])
        #expect(try await session.call("/front/quadruple", 3, as: Int.self, options: options) == 12)

        let spans = tracer.recorder.finishedSpans
        #expect(spans.count == 6, "\(spans.map { "\($0.operationName) \($0.kind)" })")
        let clientSpan = try #require(spans.first { $0.operationName == "/front/quadruple" && $0.kind == .client })
        let frontSpan = try #require(spans.first { $0.operationName == "/front/quadruple" && $0.kind == .server })
        let backCalls = spans.filter { $0.operationName == "/back/double" && $0.kind == .client }
        let backServes = spans.filter { $0.operationName == "/back/double" && $0.kind == .server }
        #expect(backCalls.count == 2 && backServes.count == 2)
        #expect(Set(spans.map(\.traceID)).count == 1, "one trace")
        #expect(clientSpan.parentSpanID == nil, "the client's call starts the trace")
        #expect(frontSpan.parentSpanID == clientSpan.spanID, "the front's span is the child of the client's")
        for call in backCalls {
            #expect(call.parentSpanID == frontSpan.spanID, "the handler's own calls are children of its span")
            #expect(backServes.contains { $0.parentSpanID == call.spanID }, "each back span is the child of the call that reached it")
        }
        #expect(clientSpan.attributes["rpc.method"]?.toSpanAttribute() == "/front/quadruple".toSpanAttribute())
        #expect(clientSpan.attributes["rpc.system"]?.toSpanAttribute() == "ferry".toSpanAttribute())
        #expect(clientSpan.status == nil, "OK leaves the span's status unset")

        // The context travels in the meta; the caller's other meta passes untouched.
        let arrived = try #require(frontMeta.value)
        #expect(arrived["traceparent"] == "00-\(clientSpan.traceID)-\(clientSpan.spanID)-01")
        #expect(arrived["tracestate"] == "ferry=test")
        #expect(arrived["X-Erpc-Key"] == "kept as sent")
        #expect(try #require(backMeta.value)["traceparent"]?.contains(clientSpan.traceID) == true)

        await client.close()
        await front.close()
        await back.close()
    }

    @Test("a failed call ends both spans with an error status and the Ferry status code")
    func failedCall() async throws {
        let tracer = W3CInMemoryTracer()
        let traced = FerryPeer.Configuration(observability: FerryObservability(tracer: tracer))
        let pair = try await makePair(server: traced, client: traced) { router in
            router.call("/fail") { (_: String, _: FerryContext) -> String in throw FerryStatus(.badMessage, "no such thing") }
        }
        let status = await statusThrown { try await pair.session.call("/fail", "x", as: String.self) }
        #expect(status?.code == .badMessage)
        #expect(await eventually { tracer.recorder.finishedSpans.count == 2 })
        for span in tracer.recorder.finishedSpans {
            #expect(span.status?.code == .error, "\(span.kind)")
            #expect(span.attributes["rpc.ferry.status_code"]?.toSpanAttribute() == 400.toSpanAttribute())
        }
        await pair.close()
    }
}
