extension FerryClient {
    /// The state of an endpoint's circuit breaker.
    public enum CircuitState: String, Hashable, Sendable {
        /// Calls flow.
        case closed
        /// The endpoint is skipped until its open period ends.
        case open
        /// One probe call decides whether the endpoint is back.
        case halfOpen
    }

    /// What a client knows about one endpoint, for logs, dashboards and tests.
    public struct EndpointStatus: Sendable, CustomStringConvertible {
        /// The registered node.
        public var node: FerryNode
        /// The breaker state (always closed when breaking is off).
        public var circuit: CircuitState
        /// Attempts in flight from this client.
        public var inFlight: Int
        /// Pool sessions connected or being dialled.
        public var sessions: Int
        /// Attempts sent, retries and backup requests included.
        public var calls: Int
        /// Attempts that failed in a way that counts against the endpoint (see
        /// ``Configuration/CircuitBreaker``).
        public var failures: Int
        /// Attempts cancelled: backup races lost, callers that gave up.
        public var cancelled: Int
        /// The moving average of attempt latency (a failed attempt counts as at least one
        /// second); nil before the first attempt ends.
        public var averageLatency: Duration?

        public var description: String {
            "\(node.address) \(circuit.rawValue) inFlight=\(inFlight) sessions=\(sessions) calls=\(calls) failures=\(failures) cancelled=\(cancelled)"
        }
    }
}
