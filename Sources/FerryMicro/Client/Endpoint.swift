import Synchronization

/// One node as the client sees it: its session pool, its circuit breaker and its load figures.
///
/// An endpoint's node never changes: when the registry changes a node's fields, the client
/// retires the old endpoint and makes a new one. A retired endpoint takes no new calls and
/// closes its sessions once the calls in flight have finished.
final class Endpoint: Sendable {
    /// What a call was admitted with; handed back to ``finish(_:verdict:latency:at:)``.
    struct Admission: Sendable {
        fileprivate let permit: CircuitBreaker.Permit?
    }

    private struct State {
        var inFlight = 0
        /// Exponentially weighted moving average of reply latencies, in seconds; nil before the
        /// first reply.
        var latency: Double?
        var breaker: CircuitBreaker?
        var retired = false
        var calls = 0
        var failures = 0
        var cancelled = 0
    }

    let node: FerryNode
    /// ``FerryNode/id``: unique in the client.
    let key: String
    /// The node's weight, at least 1.
    let weight: Int
    /// The node's routes, for fast lookup.
    private let routes: Set<String>
    let pool: SessionPool
    private let state: Mutex<State>

    /// The weight of the newest latency sample in the moving average.
    static let latencySmoothing = 0.3
    /// The latency sample, in seconds, that a failed call counts as at least.
    static let failureLatencyPenalty = 1.0

    init(node: FerryNode, dialler: NodeDialler, poolSize: Int, breaker: CircuitBreaker.Settings?) {
        self.node = node
        self.key = node.id
        self.weight = max(node.weight, 1)
        self.routes = Set(node.routes)
        self.pool = SessionPool(address: node.address, dialler: dialler, size: poolSize)
        self.state = Mutex(State(breaker: breaker.map(CircuitBreaker.init(settings:))))
    }

    /// Whether the node serves `route`: lists it, or (unless `explicitly`) lists no routes.
    func serves(_ route: String, explicitly: Bool) -> Bool {
        routes.contains(route) || (!explicitly && routes.isEmpty)
    }

    /// Calls in flight and the latency average (0 before the first reply), for the balancers.
    var load: (inFlight: Int, latency: Double) {
        state.withLock { ($0.inFlight, $0.latency ?? 0) }
    }

    /// Admits a call, or returns nil when the endpoint is retired or its breaker refuses.
    func admit(at now: ContinuousClock.Instant) -> Admission? {
        state.withLock { state in
            guard !state.retired else { return nil }
            var permit: CircuitBreaker.Permit?
            if state.breaker != nil {
                guard let granted = state.breaker!.acquire(at: now) else { return nil }
                permit = granted
            }
            state.inFlight += 1
            state.calls += 1
            return Admission(permit: permit)
        }
    }

    /// What follows from a finished call.
    struct Finish {
        /// The endpoint is retired and this was its last call in flight: close its sessions.
        var closeSessions: Bool
        /// The breaker state, when this call changed it.
        var circuitChange: FerryClient.CircuitState?
    }

    /// Records how an admitted call went.
    func finish(_ admission: Admission, verdict: CircuitBreaker.Verdict, latency: Duration?, at now: ContinuousClock.Instant) -> Finish {
        state.withLock { state in
            state.inFlight -= 1
            var sample = latency.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }
            switch verdict {
            case .failure:
                state.failures += 1
                // A node that fails fast must not look fast to the balancer.
                sample = max(sample ?? 0, Self.failureLatencyPenalty)
            case .none:
                state.cancelled += 1
                sample = nil
            case .success:
                break
            }
            if let sample {
                state.latency = state.latency.map { $0 + Self.latencySmoothing * (sample - $0) } ?? sample
            }
            var change: FerryClient.CircuitState?
            if let permit = admission.permit, let before = state.breaker?.state {
                state.breaker!.record(verdict, permit: permit, at: now)
                let after = state.breaker!.state
                if Self.circuitState(after) != Self.circuitState(before) { change = Self.circuitState(after) }
            }
            return Finish(closeSessions: state.retired && state.inFlight == 0, circuitChange: change)
        }
    }

    /// Takes no new calls from now on. Returns true when nothing is in flight, so the sessions
    /// can be closed at once.
    func retire() -> Bool {
        state.withLock { state in
            state.retired = true
            return state.inFlight == 0
        }
    }

    private static func circuitState(_ state: CircuitBreaker.State) -> FerryClient.CircuitState {
        switch state {
        case .closed: .closed
        case .open: .open
        case .halfOpen: .halfOpen
        }
    }

    /// A snapshot for ``FerryClient/endpoints``.
    var status: FerryClient.EndpointStatus {
        let sessions = pool.sessionCount
        return state.withLock { state in
            FerryClient.EndpointStatus(
                node: node, circuit: state.breaker.map { Self.circuitState($0.state) } ?? .closed, inFlight: state.inFlight, sessions: sessions,
                calls: state.calls, failures: state.failures, cancelled: state.cancelled,
                averageLatency: state.latency.map { .nanoseconds(Int64($0 * 1e9)) })
        }
    }
}
