import FerryCore

/// What ``FerryPeer/statsRoute`` answers: a peer's routes, sessions and load at one moment.
///
/// Counts are totals since the peer started; two snapshots give rates and the percentiles of
/// the calls between them (``FerryStatsSnapshot/Route/since(_:)``, ``FerryStatsSnapshot/Route/percentile(_:)``).
/// JSON keys are snake case.
public struct FerryStatsSnapshot: Codable, Sendable, Hashable {
    /// Whether a route's exchanges are calls or pushes.
    public enum Kind: String, Codable, Sendable, Hashable {
        /// CALLs.
        case call
        /// PUSHes.
        case push
    }

    /// Which way a route's exchanges went.
    public enum Direction: String, Codable, Sendable, Hashable {
        /// Handled by this peer.
        case inbound = "in"
        /// Made by this peer.
        case outbound = "out"
    }

    /// The upper bounds of the latency buckets, in microseconds; a last bucket holds the rest.
    public static let latencyBoundsMicroseconds: [Int64] = [
        50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
        1_000_000, 2_500_000, 5_000_000, 10_000_000,
    ]

    /// One route's exchanges in one direction.
    public struct Route: Codable, Sendable, Hashable {
        /// Calls or pushes.
        public var kind: Kind
        /// Handled here or made here.
        public var direction: Direction
        /// The route (`unknown` for inbound routes the router does not know).
        public var route: String
        /// Exchanges finished.
        public var count: UInt64
        /// Exchanges that finished with a status other than OK.
        public var errors: UInt64
        /// Exchanges per latency bucket (``FerryStatsSnapshot/latencyBoundsMicroseconds``, then the rest).
        public var latencyBuckets: [UInt64]

        /// Creates a route's figures.
        public init(kind: Kind, direction: Direction, route: String, count: UInt64, errors: UInt64, latencyBuckets: [UInt64]) {
            self.kind = kind
            self.direction = direction
            self.route = route
            self.count = count
            self.errors = errors
            self.latencyBuckets = latencyBuckets
        }

        /// The figures of the exchanges since `earlier`, a snapshot of the same route.
        public func since(_ earlier: Route?) -> Route {
            guard let earlier else { return self }
            var delta = self
            delta.count = count &- min(count, earlier.count)
            delta.errors = errors &- min(errors, earlier.errors)
            delta.latencyBuckets = zip(latencyBuckets, earlier.latencyBuckets).map { $0 &- min($0, $1) }
            return delta
        }

        /// The latency under which `fraction` (0…1) of the exchanges finished: the upper bound
        /// of the bucket that holds that rank; nil without exchanges, or past the last bound.
        public func percentile(_ fraction: Double) -> Duration? {
            let total = latencyBuckets.reduce(0, +)
            guard total > 0 else { return nil }
            let rank = max(1, UInt64((Double(total) * fraction).rounded(.up)))
            var seen: UInt64 = 0
            for (index, count) in latencyBuckets.enumerated() {
                seen += count
                if seen >= rank {
                    guard index < latencyBoundsMicroseconds.count else { return nil }
                    return .microseconds(latencyBoundsMicroseconds[index])
                }
            }
            return nil
        }
    }

    /// One session.
    public struct Session: Codable, Sendable, Hashable {
        /// Its ID.
        public var id: String
        /// The remote's address.
        public var remote: String
        /// Whether this peer dialled it.
        public var dialled: Bool

        /// Creates a session's entry.
        public init(id: String, remote: String, dialled: Bool) {
            self.id = id
            self.remote = remote
            self.dialled = dialled
        }
    }

    /// Seconds since the peer started.
    public var uptimeSeconds: Double
    /// Ready sessions.
    public var sessionCount: Int
    /// Up to ``maximumSessionsListed`` of them.
    public var sessions: [Session]
    /// Handlers running now.
    public var handlersRunning: Int
    /// The bound on handlers running at once.
    public var maximumHandlers: Int
    /// Whether the peer is draining.
    public var draining: Bool
    /// The routes, by kind, direction and name.
    public var routes: [Route]

    /// The most sessions a snapshot lists.
    public static let maximumSessionsListed = 100

    /// Creates a snapshot.
    public init(
        uptimeSeconds: Double, sessionCount: Int, sessions: [Session], handlersRunning: Int, maximumHandlers: Int, draining: Bool,
        routes: [Route]
    ) {
        self.uptimeSeconds = uptimeSeconds
        self.sessionCount = sessionCount
        self.sessions = sessions
        self.handlersRunning = handlersRunning
        self.maximumHandlers = maximumHandlers
        self.draining = draining
        self.routes = routes
    }

    enum CodingKeys: String, CodingKey {
        case uptimeSeconds = "uptime_seconds", sessionCount = "session_count", sessions
        case handlersRunning = "handlers_running", maximumHandlers = "maximum_handlers", draining, routes
    }
}

extension FerryStatsSnapshot.Route {
    enum CodingKeys: String, CodingKey {
        case kind, direction, route, count, errors, latencyBuckets = "latency_buckets"
    }
}
