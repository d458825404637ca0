import Instrumentation
import Metrics
import Tracing

/// Where a peer reports what it does: metrics through swift-metrics, spans through
/// swift-distributed-tracing, and the per-route statistics behind ``FerryPeer/statsRoute``.
///
/// Everything is off by default, and then costs nothing: metrics and tracing until given a
/// backend, the statistics until ``servesStats`` is on (`ferry serve` and `ferry gateway` turn
/// them on).
///
/// ```swift
/// // The backends the application bootstrapped (MetricsSystem, InstrumentationSystem), and /ferry/stats:
/// let peer = FerryPeer(configuration: .init(observability: .bootstrapped(servesStats: true)))
/// // Or explicit ones, as tests do:
/// let peer = FerryPeer(configuration: .init(observability: FerryObservability(metrics: TestMetrics(), tracer: tracer)))
/// ```
///
/// Metric names and labels follow Prometheus's conventions (see ``FerryMetricNames``). Labels are
/// bounded: an inbound route that the router does not know is counted as `unknown`, so a hostile
/// remote cannot create series without bound.
///
/// Spans: one per call on each side (`client` and `server` kinds), named after the route. The
/// caller's span context travels in the call's meta, written by the tracer's own propagation
/// (`traceparent` and `tracestate` for a W3C tracer such as swift-otel's), and the server's span
/// is its child; a handler's own calls are children of the server span. Other meta, such as a Go
/// erpc peer's, passes through untouched.
public struct FerryObservability: Sendable {
    /// The swift-metrics factory the peer's metrics go to; nil records none.
    public var metrics: (any MetricsFactory)?
    /// The tracer spans go to; nil traces nothing.
    public var tracer: (any Tracer)?
    /// Whether the peer keeps per-route statistics (calls, errors, latency) and answers CALLs to
    /// ``FerryPeer/statsRoute`` with them, for `ferry top`. A route the user registers under that
    /// name replaces it. Default off: keeping them costs about a microsecond per exchange
    /// (BENCHMARKS.md, "Observability").
    public var servesStats: Bool

    /// Creates the settings; by default no metrics, no tracing and no statistics.
    public init(metrics: (any MetricsFactory)? = nil, tracer: (any Tracer)? = nil, servesStats: Bool = false) {
        self.metrics = metrics
        self.tracer = tracer
        self.servesStats = servesStats
    }

    /// The process's bootstrapped backends: `MetricsSystem.factory` and
    /// `InstrumentationSystem.tracer`. Call after bootstrapping them.
    public static func bootstrapped(servesStats: Bool = false) -> FerryObservability {
        FerryObservability(metrics: MetricsSystem.factory, tracer: InstrumentationSystem.tracer, servesStats: servesStats)
    }
}
