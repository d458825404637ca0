import FerryCore
import Tracing

/// What a peer records about its exchanges, as ``FerryObservability`` asks: swift-metrics
/// instruments, the statistics behind `/ferry/stats`, and the tracer. Each part is nil when
/// off, so an exchange with everything off costs one check.
final class PeerInstruments: Sendable {
    let metrics: PeerMetrics?
    let statistics: RouteStatistics?
    let tracer: (any Tracer)?
    let labels = RouteLabels()
    let startedAt = ContinuousClock.now

    init(_ observability: FerryObservability) {
        metrics = observability.metrics.map(PeerMetrics.init(factory:))
        statistics = observability.servesStats ? RouteStatistics() : nil
        tracer = observability.tracer
    }

    /// Whether exchanges are recorded at all.
    var recordsExchanges: Bool { metrics != nil || statistics != nil }

    /// Records one finished exchange. `known` says whether the router knows an inbound route.
    func record(
        isCall: Bool, inbound: Bool, route: String, known: Bool, status: FerryStatus, duration: Duration, bodyIn: Int, bodyOut: Int
    ) {
        let label = labels.label(for: route, inbound: inbound, known: known)
        metrics?.record(
            isCall: isCall, direction: inbound ? .inbound : .outbound, route: label, code: status.code,
            duration: duration, bodyIn: bodyIn, bodyOut: bodyOut)
        statistics?.record(
            kind: isCall ? .call : .push, direction: inbound ? .inbound : .outbound, route: label, failed: !status.isOK, duration: duration)
    }
}
