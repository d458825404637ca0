import Ferry
import Metrics
import Synchronization
import Tracing

/// The names of the metrics a ``FerryClient`` records, beside its peer's own
/// (``FerryMetricNames``), when its peer's ``FerryObservability`` has a metrics factory.
///
/// | Name | Kind | Labels |
/// |---|---|---|
/// | `ferry_client_attempts_total` | counter | `service`, `kind` (`first`, `retry`, `backup`) |
/// | `ferry_client_circuit_changes_total` | counter | `service`, `endpoint`, `state` (`open`, `half_open`, `closed`) |
///
/// Rate-limited calls are the `ferry_calls_total` series with `code="429"` on the peer that
/// refused them. `endpoint` is a node's address from discovery: bounded by the nodes.
public enum FerryClientMetricNames {
    /// Attempts by kind: the first of each call, retries and backup requests.
    public static let attempts = "ferry_client_attempts_total"
    /// Circuit breaker changes per endpoint.
    public static let circuitChanges = "ferry_client_circuit_changes_total"
}

/// A client's metrics and tracer, from its peer's ``FerryObservability``; nil parts are off.
final class ClientInstruments: Sendable {
    enum AttemptKind: String {
        case first, retry, backup
    }

    private let factory: (any MetricsFactory)?
    private let service: String
    private let attempts: [String: Counter]
    private let changes = Mutex<[String: Counter]>([:])
    let tracer: (any Tracer)?

    init(service: String?, observability: FerryObservability) {
        self.factory = observability.metrics
        self.service = service ?? "*"
        self.tracer = observability.tracer
        var attempts: [String: Counter] = [:]
        if let factory = observability.metrics {
            for kind in [AttemptKind.first, .retry, .backup] {
                attempts[kind.rawValue] = Counter(
                    label: FerryClientMetricNames.attempts, dimensions: [("service", self.service), ("kind", kind.rawValue)], factory: factory)
            }
        }
        self.attempts = attempts
    }

    /// An attempt of `kind` starts.
    func attempt(_ kind: AttemptKind) {
        attempts[kind.rawValue]?.increment()
    }

    /// The breaker of `endpoint` changed to `state`.
    func circuitChanged(endpoint: String, to state: String) {
        guard let factory else { return }
        let key = endpoint + " " + state
        let counter = changes.withLock { changes in
            changes[key] ?? {
                let made = Counter(
                    label: FerryClientMetricNames.circuitChanges, dimensions: [("service", service), ("endpoint", endpoint), ("state", state)],
                    factory: factory)
                changes[key] = made
                return made
            }()
        }
        counter.increment()
    }

    /// Runs `body`, the attempts of one call of `route`, inside a span whose children are the
    /// attempts' client spans (a retry or a backup request adds one).
    func traced<Value>(route: String, _ body: () async throws -> Value) async throws -> Value {
        guard let tracer else { return try await body() }
        let span = tracer.startSpan(route, context: ServiceContext.current ?? .topLevel, ofKind: .internal)
        span.attributes["rpc.system"] = "ferry"
        span.attributes["rpc.method"] = route
        span.attributes["rpc.service"] = service
        do {
            let value = try await ServiceContext.withValue(span.context) { try await body() }
            span.end()
            return value
        } catch {
            span.recordError(error)
            if let status = error as? FerryStatus {
                span.attributes["rpc.ferry.status_code"] = Int(status.code.rawValue)
                span.setStatus(SpanStatus(code: .error, message: status.message))
            } else {
                span.setStatus(SpanStatus(code: .error))
            }
            span.end()
            throw error
        }
    }
}
