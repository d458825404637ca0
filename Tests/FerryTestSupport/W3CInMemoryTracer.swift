import Foundation
import InMemoryTracing
import Tracing

/// An in-memory tracer that propagates as a W3C tracer does: `traceparent` carries the trace and
/// the parent span, `tracestate` the vendor state.
public struct W3CInMemoryTracer: Tracer {
    /// Creates a tracer with an empty recorder.
    public init() {}

    /// Where the spans are kept; IDs are hexadecimal, of W3C's lengths (32 digits for a trace,
    /// 16 for a span).
    public let recorder = InMemoryTracer(
        idGenerator: .init(
            nextTraceID: { (0..<2).map { _ in String(format: "%016llx", UInt64.random(in: 1...UInt64.max)) }.joined() },
            nextSpanID: { String(format: "%016llx", UInt64.random(in: 1...UInt64.max)) }))

    /// Starts a span in the recorder.
    public func startSpan<Instant: TracerInstant>(
        _ operationName: String, context: @autoclosure () -> ServiceContext, ofKind kind: SpanKind, at instant: @autoclosure () -> Instant,
        function: String, file fileID: String, line: UInt
    ) -> InMemorySpan {
        recorder.startSpan(operationName, context: context(), ofKind: kind, at: instant(), function: function, file: fileID, line: line)
    }

    /// Flushes the recorder.
    public func forceFlush() { recorder.forceFlush() }

    /// Writes `traceparent` and `tracestate`.
    public func inject<Carrier, Inject: Injector>(_ context: ServiceContext, into carrier: inout Carrier, using injector: Inject)
    where Inject.Carrier == Carrier {
        guard let span = context.inMemorySpanContext else { return }
        injector.inject("00-\(span.traceID)-\(span.spanID)-01", forKey: "traceparent", into: &carrier)
        injector.inject("ferry=test", forKey: "tracestate", into: &carrier)
    }

    /// Reads `traceparent`.
    public func extract<Carrier, Extract: Extractor>(_ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract)
    where Extract.Carrier == Carrier {
        guard let parent = extractor.extract(key: "traceparent", from: carrier) else { return }
        let parts = parent.split(separator: "-").map(String.init)
        guard parts.count == 4, parts[1].count == 32, parts[2].count == 16 else { return }
        context.inMemorySpanContext = InMemorySpanContext(traceID: parts[1], spanID: parts[2], parentSpanID: nil)
    }
}
