import CoreMetrics
import FerryCore
import Metrics
import Synchronization

/// A peer's swift-metrics instruments. Per-route instruments are made once and kept, so that
/// recording an exchange is one lock and a lookup, never a new handler from the factory.
final class PeerMetrics: Sendable {
    /// Which way an exchange went, as the `direction` label says.
    enum Direction: String, Sendable {
        case inbound = "in", outbound = "out"
    }

    private struct ExchangeKey: Hashable {
        var isCall: Bool
        var direction: Direction
        var route: String
        /// The code, or `Int32.min` for codes labelled `other`.
        var code: Int32
    }

    private struct DurationKey: Hashable {
        var direction: Direction
        var route: String
    }

    private struct Instruments {
        var exchanges: [ExchangeKey: Counter] = [:]
        var durations: [DurationKey: Metrics.Timer] = [:]
        var closes: [FerryCloseCategory: Counter] = [:]
        var redials: [String: Counter] = [:]
    }

    private let factory: any MetricsFactory
    private let instruments = Mutex(Instruments())
    let callsInFlightOut: Meter
    let bodyBytesIn: Counter
    let bodyBytesOut: Counter
    let wireBytesIn: Counter
    let wireBytesOut: Counter
    let sessionsOpen: Meter
    let sessionsAccepted: Counter
    let sessionsDialled: Counter
    let handlersRunning: Meter
    let heartbeatMisses: Counter

    init(factory: any MetricsFactory) {
        self.factory = factory
        callsInFlightOut = Meter(label: FerryMetricNames.callsInFlight, dimensions: [("direction", "out")], factory: factory)
        bodyBytesIn = Counter(label: FerryMetricNames.bodyBytes, dimensions: [("direction", "in")], factory: factory)
        bodyBytesOut = Counter(label: FerryMetricNames.bodyBytes, dimensions: [("direction", "out")], factory: factory)
        wireBytesIn = Counter(label: FerryMetricNames.wireBytes, dimensions: [("direction", "in")], factory: factory)
        wireBytesOut = Counter(label: FerryMetricNames.wireBytes, dimensions: [("direction", "out")], factory: factory)
        sessionsOpen = Meter(label: FerryMetricNames.sessionsOpen, dimensions: [], factory: factory)
        sessionsAccepted = Counter(label: FerryMetricNames.sessionsOpened, dimensions: [("how", "accepted")], factory: factory)
        sessionsDialled = Counter(label: FerryMetricNames.sessionsOpened, dimensions: [("how", "dialled")], factory: factory)
        handlersRunning = Meter(label: FerryMetricNames.handlersRunning, dimensions: [], factory: factory)
        heartbeatMisses = Counter(label: FerryMetricNames.heartbeatMisses, dimensions: [], factory: factory)
    }

    /// Records one finished call or push; `route` is already bounded (``RouteLabels``). The
    /// `code` label is Ferry's own codes (-1…199) and HTTP's (200…599) as themselves, any other
    /// code a remote sends as `other`, so that replies cannot create series without bound.
    func record(isCall: Bool, direction: Direction, route: String, code: FerryStatus.Code, duration: Duration, bodyIn: Int, bodyOut: Int) {
        let code = (-1...599).contains(code.rawValue) ? code.rawValue : Int32.min
        let (counter, timer) = instruments.withLock { instruments in
            let key = ExchangeKey(isCall: isCall, direction: direction, route: route, code: code)
            let counter = instruments.exchanges[key] ?? {
                let made = Counter(
                    label: isCall ? FerryMetricNames.calls : FerryMetricNames.pushes,
                    dimensions: [("direction", direction.rawValue), ("route", route), ("code", code == Int32.min ? "other" : String(code))], factory: factory)
                instruments.exchanges[key] = made
                return made
            }()
            guard isCall else { return (counter, nil as Metrics.Timer?) }
            let durationKey = DurationKey(direction: direction, route: route)
            let timer = instruments.durations[durationKey] ?? {
                let made = Metrics.Timer(
                    label: FerryMetricNames.callDuration, dimensions: [("direction", direction.rawValue), ("route", route)],
                    preferredDisplayUnit: .seconds, factory: factory)
                instruments.durations[durationKey] = made
                return made
            }()
            return (counter, timer)
        }
        counter.increment()
        timer?.recordNanoseconds(Self.nanoseconds(duration))
        if bodyIn > 0 { bodyBytesIn.increment(by: bodyIn) }
        if bodyOut > 0 { bodyBytesOut.increment(by: bodyOut) }
    }

    /// A session closed for `reason`.
    func sessionClosed(reason: String) {
        let category = FerryCloseCategory(reason: reason)
        let counter = instruments.withLock { instruments in
            instruments.closes[category] ?? {
                let made = Counter(label: FerryMetricNames.sessionsClosed, dimensions: [("reason", category.rawValue)], factory: factory)
                instruments.closes[category] = made
                return made
            }()
        }
        counter.increment()
        if category == .heartbeat { heartbeatMisses.increment() }
        sessionsOpen.decrement()
    }

    /// A session opened.
    func sessionOpened(dialled: Bool) {
        (dialled ? sessionsDialled : sessionsAccepted).increment()
        sessionsOpen.increment()
    }

    /// A redial attempt ended with `outcome` (`connected`, `failed`, `gave_up`, `refused`).
    func redial(_ outcome: String) {
        let counter = instruments.withLock { instruments in
            instruments.redials[outcome] ?? {
                let made = Counter(label: FerryMetricNames.redials, dimensions: [("outcome", outcome)], factory: factory)
                instruments.redials[outcome] = made
                return made
            }()
        }
        counter.increment()
    }

    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds &* 1_000_000_000 &+ attoseconds / 1_000_000_000
    }
}
