import Synchronization
import Tracing

/// A tracer that does what an exporting tracer does before its exporter: real spans with random
/// 128-bit trace IDs and 64-bit span IDs, attributes, status, events, errors and start and end
/// times, W3C Trace Context propagation (`traceparent`, `tracestate`), and every finished span
/// kept in a bounded ring, as an exporter's batch keeps them until it sends them.
///
/// IDs come from a SplitMix64 sequence seeded from the system's random source (``SpanIDGenerator``),
/// as OpenTelemetry's Go and Java SDKs draw theirs from a fast non-cryptographic generator rather
/// than a system call per ID. Every span is sampled.
final class RecordingTracer: Tracer, Sendable {
    /// The W3C header that carries the trace ID, the parent span ID and the flags.
    static let traceParentKey = "traceparent"
    /// The W3C header that carries vendor-specific trace state, passed on untouched.
    static let traceStateKey = "tracestate"

    private let finished: Mutex<FinishedSpanRing>
    private let ids = SpanIDGenerator()

    /// Creates a tracer that keeps the last `capacity` finished spans.
    init(capacity: Int = 100_000) {
        precondition(capacity > 0, "the ring holds at least one span")
        finished = Mutex(FinishedSpanRing(capacity: capacity))
    }

    func startSpan<Instant: TracerInstant>(
        _ operationName: String,
        context: @autoclosure () -> ServiceContext,
        ofKind kind: SpanKind,
        at instant: @autoclosure () -> Instant,
        function: String,
        file fileID: String,
        line: UInt
    ) -> RecordingSpan {
        var context = context()
        let spanContext: W3CSpanContext
        if let parent = context.w3cSpanContext {
            spanContext = W3CSpanContext(
                traceIDHigh: parent.traceIDHigh, traceIDLow: parent.traceIDLow, spanID: ids.next(),
                parentSpanID: parent.spanID, flags: parent.flags, traceState: parent.traceState)
        } else {
            spanContext = W3CSpanContext(
                traceIDHigh: ids.next(), traceIDLow: ids.next(), spanID: ids.next(),
                parentSpanID: nil, flags: W3CSpanContext.sampled, traceState: nil)
        }
        context.w3cSpanContext = spanContext
        return RecordingSpan(
            operationName: operationName, kind: kind, context: context, spanContext: spanContext,
            startNanoseconds: instant().nanosecondsSinceEpoch, tracer: self)
    }

    func forceFlush() {}

    /// Writes `traceparent` (and `tracestate` when the context has one) for the context's span.
    func inject<Carrier, Inject: Injector>(
        _ context: ServiceContext, into carrier: inout Carrier, using injector: Inject
    ) where Inject.Carrier == Carrier {
        guard let spanContext = context.w3cSpanContext else { return }
        injector.inject(spanContext.traceParent, forKey: Self.traceParentKey, into: &carrier)
        if let traceState = spanContext.traceState {
            injector.inject(traceState, forKey: Self.traceStateKey, into: &carrier)
        }
    }

    /// Reads a remote parent from `traceparent` and `tracestate`; a missing or malformed
    /// `traceparent` leaves `context` as it was.
    func extract<Carrier, Extract: Extractor>(
        _ carrier: Carrier, into context: inout ServiceContext, using extractor: Extract
    ) where Extract.Carrier == Carrier {
        guard let header = extractor.extract(key: Self.traceParentKey, from: carrier),
            var remote = W3CSpanContext(traceParent: header)
        else { return }
        remote.traceState = extractor.extract(key: Self.traceStateKey, from: carrier)
        context.w3cSpanContext = remote
    }

    /// Keeps a finished span, replacing the oldest once the ring is full.
    fileprivate func record(_ span: FinishedSpan) {
        finished.withLock { $0.append(span) }
    }

    /// Spans finished since the start, spans the ring holds now, and the newest of them.
    var summary: (finished: Int, kept: Int, newest: FinishedSpan?) {
        finished.withLock { ($0.total, $0.count, $0.newest) }
    }
}

/// The W3C Trace Context of a span: trace ID, span ID, flags and trace state, plus the parent's
/// span ID for the record.
struct W3CSpanContext: Sendable, Hashable {
    /// The `sampled` trace flag.
    static let sampled: UInt8 = 0x01

    var traceIDHigh: UInt64
    var traceIDLow: UInt64
    var spanID: UInt64
    var parentSpanID: UInt64?
    var flags: UInt8
    var traceState: String?

    init(traceIDHigh: UInt64, traceIDLow: UInt64, spanID: UInt64, parentSpanID: UInt64?, flags: UInt8, traceState: String?) {
        self.traceIDHigh = traceIDHigh
        self.traceIDLow = traceIDLow
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.flags = flags
        self.traceState = traceState
    }

    /// Parses a version-00 `traceparent`: `00-<32 hex trace ID>-<16 hex span ID>-<2 hex flags>`.
    /// The remote span is the parent of the spans started from it: its ID is `spanID` here.
    init?(traceParent: String) {
        var header = traceParent
        let parsed: (UInt64, UInt64, UInt64, UInt8)? = header.withUTF8 { bytes in
            guard bytes.count == 55, bytes[0] == UInt8(ascii: "0"), bytes[1] == UInt8(ascii: "0"),
                bytes[2] == UInt8(ascii: "-"), bytes[35] == UInt8(ascii: "-"), bytes[52] == UInt8(ascii: "-"),
                let high = Self.hex(bytes, 3, 16), let low = Self.hex(bytes, 19, 16),
                let span = Self.hex(bytes, 36, 16), let flags = Self.hex(bytes, 53, 2),
                high != 0 || low != 0, span != 0
            else { return nil }
            return (high, low, span, UInt8(flags))
        }
        guard let (high, low, span, flags) = parsed else { return nil }
        self.init(traceIDHigh: high, traceIDLow: low, spanID: span, parentSpanID: nil, flags: flags, traceState: nil)
    }

    /// The `traceparent` header of this span.
    var traceParent: String {
        String(unsafeUninitializedCapacity: 55) { buffer in
            buffer[0] = UInt8(ascii: "0")
            buffer[1] = UInt8(ascii: "0")
            buffer[2] = UInt8(ascii: "-")
            Self.writeHex(traceIDHigh, digits: 16, into: buffer, at: 3)
            Self.writeHex(traceIDLow, digits: 16, into: buffer, at: 19)
            buffer[35] = UInt8(ascii: "-")
            Self.writeHex(spanID, digits: 16, into: buffer, at: 36)
            buffer[52] = UInt8(ascii: "-")
            Self.writeHex(UInt64(flags), digits: 2, into: buffer, at: 53)
            return 55
        }
    }

    /// The trace ID as 32 lower-case hex digits.
    var traceIDHex: String {
        String(unsafeUninitializedCapacity: 32) { buffer in
            Self.writeHex(traceIDHigh, digits: 16, into: buffer, at: 0)
            Self.writeHex(traceIDLow, digits: 16, into: buffer, at: 16)
            return 32
        }
    }

    private static func writeHex(_ value: UInt64, digits: Int, into buffer: UnsafeMutableBufferPointer<UInt8>, at offset: Int) {
        var value = value
        for index in stride(from: offset + digits - 1, through: offset, by: -1) {
            let nibble = UInt8(truncatingIfNeeded: value & 0xF)
            buffer[index] = nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
            value >>= 4
        }
    }

    private static func hex(_ bytes: UnsafeBufferPointer<UInt8>, _ offset: Int, _ digits: Int) -> UInt64? {
        var value: UInt64 = 0
        for byte in bytes[offset..<(offset + digits)] {
            let nibble: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = byte - UInt8(ascii: "a") + 10
            default: return nil
            }
            value = value << 4 | UInt64(nibble)
        }
        return value
    }
}

private enum W3CSpanContextKey: ServiceContextKey {
    typealias Value = W3CSpanContext
}

extension ServiceContext {
    /// The W3C span context of the current span (or of a remote parent just extracted).
    var w3cSpanContext: W3CSpanContext? {
        get { self[W3CSpanContextKey.self] }
        set { self[W3CSpanContextKey.self] = newValue }
    }
}

/// Random 64-bit IDs for spans and traces: SplitMix64 (Steele, Lea and Flood, 2014) over one atomic
/// counter, so every thread draws from the same sequence without a lock. The seed comes from
/// `SystemRandomNumberGenerator`; the output is never 0 (W3C forbids all-zero IDs).
final class SpanIDGenerator: Sendable {
    private static let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15
    private let state: Atomic<UInt64>

    init() {
        var system = SystemRandomNumberGenerator()
        state = Atomic(system.next())
    }

    func next() -> UInt64 {
        while true {
            var z = state.wrappingAdd(Self.gamma, ordering: .relaxed).newValue
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            if z != 0 { return z }
        }
    }
}

/// A span of a ``RecordingTracer``: mutable until it ends, then handed to the tracer's ring.
final class RecordingSpan: Span, Sendable {
    private struct State {
        var operationName: String
        var attributes: SpanAttributes
        var status: SpanStatus?
        var events: [SpanEvent] = []
        var links: [SpanLink] = []
        var errors: [String] = []
        var isRecording = true
    }

    let context: ServiceContext
    let spanContext: W3CSpanContext
    let kind: SpanKind
    let startNanoseconds: UInt64
    private let tracer: RecordingTracer
    private let state: Mutex<State>

    fileprivate init(
        operationName: String, kind: SpanKind, context: ServiceContext, spanContext: W3CSpanContext,
        startNanoseconds: UInt64, tracer: RecordingTracer
    ) {
        self.context = context
        self.spanContext = spanContext
        self.kind = kind
        self.startNanoseconds = startNanoseconds
        self.tracer = tracer
        var attributes = SpanAttributes()
        attributes.reserveCapacity(8)
        state = Mutex(State(operationName: operationName, attributes: attributes))
    }

    var operationName: String {
        get { state.withLock { $0.operationName } }
        set { state.withLock { if $0.isRecording { $0.operationName = newValue } } }
    }

    var attributes: SpanAttributes {
        get { state.withLock { $0.attributes } }
        set { state.withLock { if $0.isRecording { $0.attributes = newValue } } }
        // `span.attributes["key"] = value` updates the attributes in place: they are taken out
        // under the lock and put back after the change, so the dictionary is not copied.
        _modify {
            var attributes = state.withLock { state in
                let taken = state.attributes
                state.attributes = SpanAttributes()
                return taken
            }
            defer {
                state.withLock { state in
                    if state.isRecording { state.attributes = attributes }
                }
            }
            yield &attributes
        }
    }

    var isRecording: Bool { state.withLock { $0.isRecording } }

    func setStatus(_ status: SpanStatus) {
        state.withLock { if $0.isRecording { $0.status = status } }
    }

    func addEvent(_ event: SpanEvent) {
        state.withLock { if $0.isRecording { $0.events.append(event) } }
    }

    func addLink(_ link: SpanLink) {
        state.withLock { if $0.isRecording { $0.links.append(link) } }
    }

    func recordError<Instant: TracerInstant>(
        _ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant
    ) {
        // As OpenTelemetry records it: an `exception` event with the error's type and message.
        var eventAttributes = attributes
        eventAttributes["exception.type"] = "\(type(of: error))"
        eventAttributes["exception.message"] = "\(error)"
        let event = SpanEvent(name: "exception", at: instant(), attributes: eventAttributes)
        state.withLock { if $0.isRecording { $0.events.append(event) } }
    }

    func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        let endNanoseconds = instant().nanosecondsSinceEpoch
        let ended: State? = state.withLock { state in
            guard state.isRecording else { return nil }
            state.isRecording = false
            return state
        }
        guard let ended else { return }
        tracer.record(FinishedSpan(
            operationName: ended.operationName, kind: kind, context: spanContext,
            startNanoseconds: startNanoseconds, endNanoseconds: endNanoseconds,
            attributes: ended.attributes, status: ended.status, events: ended.events, links: ended.links))
    }
}

/// What an exporter would send of a span.
struct FinishedSpan: Sendable {
    var operationName: String
    var kind: SpanKind
    var context: W3CSpanContext
    var startNanoseconds: UInt64
    var endNanoseconds: UInt64
    var attributes: SpanAttributes
    var status: SpanStatus?
    var events: [SpanEvent]
    var links: [SpanLink]
}

/// The last `capacity` finished spans, oldest overwritten first.
struct FinishedSpanRing: Sendable {
    let capacity: Int
    private var spans: [FinishedSpan] = []
    private var next = 0
    /// Spans appended since the start.
    private(set) var total = 0

    init(capacity: Int) {
        self.capacity = capacity
        spans.reserveCapacity(capacity)
    }

    /// Spans held now.
    var count: Int { spans.count }

    /// The span appended last.
    var newest: FinishedSpan? { spans.isEmpty ? nil : spans[(next + capacity - 1) % capacity] }

    mutating func append(_ span: FinishedSpan) {
        if spans.count < capacity {
            spans.append(span)
        } else {
            spans[next] = span
        }
        next = (next + 1) % capacity
        total += 1
    }
}
