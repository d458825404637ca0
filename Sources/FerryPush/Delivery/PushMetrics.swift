import Metrics

/// The names of the metrics a ``FerryPushService`` records when its configuration has a
/// metrics factory.
///
/// | Name | Kind | Meaning |
/// |---|---|---|
/// | `ferry_push_stored_total` | counter | messages stored in the mailbox by ``FerryPushService/push(_:to:)`` |
/// | `ferry_push_deliveries_total` | counter | messages written to sessions, resends included |
/// | `ferry_push_resends_total` | counter | go-back-N rounds: unacknowledged messages sent again |
/// | `ferry_push_acks_total` | counter | acknowledgements accepted |
/// | `ferry_push_unacknowledged` | gauge | messages sent and not yet acknowledged, over all sessions |
/// | `ferry_push_streams` | gauge | sessions being delivered to |
public enum FerryPushMetricNames {
    /// Messages stored.
    public static let stored = "ferry_push_stored_total"
    /// Messages written to sessions.
    public static let deliveries = "ferry_push_deliveries_total"
    /// Resend rounds.
    public static let resends = "ferry_push_resends_total"
    /// Acknowledgements accepted.
    public static let acks = "ferry_push_acks_total"
    /// Messages awaiting their acknowledgement.
    public static let unacknowledged = "ferry_push_unacknowledged"
    /// Sessions delivered to.
    public static let streams = "ferry_push_streams"
}

/// A push service's instruments.
struct PushMetrics: Sendable {
    let stored: Counter
    let deliveries: Counter
    let resends: Counter
    let acks: Counter
    let unacknowledged: Meter
    let streams: Meter

    init(factory: any MetricsFactory) {
        stored = Counter(label: FerryPushMetricNames.stored, dimensions: [], factory: factory)
        deliveries = Counter(label: FerryPushMetricNames.deliveries, dimensions: [], factory: factory)
        resends = Counter(label: FerryPushMetricNames.resends, dimensions: [], factory: factory)
        acks = Counter(label: FerryPushMetricNames.acks, dimensions: [], factory: factory)
        unacknowledged = Meter(label: FerryPushMetricNames.unacknowledged, dimensions: [], factory: factory)
        streams = Meter(label: FerryPushMetricNames.streams, dimensions: [], factory: factory)
    }
}
