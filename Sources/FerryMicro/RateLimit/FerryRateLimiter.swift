import Synchronization

/// Middleware that limits how often calls and pushes are handled, with token buckets per session
/// and per route. A message over a limit is refused unhandled with **429 "Rate Limited"**
/// (``FerryStatus/Code/rateLimited``); a refused push is dropped.
///
/// ```swift
/// let limiter = FerryRateLimiter(
///     perSession: .init(perSecond: 50, burst: 100),           // each connected peer
///     perRoute: ["/report/build": .init(perSecond: 2, burst: 5)] // all peers together
/// )
/// peer.router.use(limiter)   // before registering the routes it should guard
/// ```
///
/// A session is known by its ID (``FerrySessionProtocol/id``: the remote address, or what
/// ``FerrySessionProtocol/setID(_:)`` made it, such as a user ID). A message must find a token
/// in every bucket that applies to it, and takes one from each only when it does, so a refused
/// message costs nothing. Buckets that have refilled completely are forgotten, so memory follows
/// the active sessions and routes only.
///
/// Buckets refill by the limiter's clock, `ContinuousClock` by default; a test passes a clock it
/// advances by hand to make time pass without waiting.
public final class FerryRateLimiter: FerryMiddleware {
    /// A sustained rate with room for bursts.
    public struct Rate: Sendable, Hashable, CustomStringConvertible {
        /// Tokens added per second.
        public var perSecond: Double
        /// The most tokens a bucket holds: how many messages may come at once after a quiet spell.
        public var burst: Int

        /// Creates a rate of `perSecond` messages a second with bursts of up to `burst`.
        public init(perSecond: Double, burst: Int) {
            self.perSecond = perSecond
            self.burst = burst
        }

        public var description: String { "\(perSecond)/s burst \(burst)" }
    }

    private struct State {
        var sessions: [String: TokenBucket] = [:]
        var routes: [String: TokenBucket] = [:]
        var lastSweep: ContinuousClock.Instant
    }

    /// The limit of each session, across all its routes; nil: none.
    public let perSession: Rate?
    /// The limit of each listed route, across all sessions.
    public let perRoute: [String: Rate]
    /// The limit of each route not in ``perRoute``, across all sessions; nil: none.
    public let defaultPerRoute: Rate?

    private let clock: ClockReader
    private let state: Mutex<State>

    /// How often buckets that have refilled are forgotten.
    static let sweepInterval = Duration.seconds(10)

    /// Creates a limiter; with no argument it limits nothing.
    ///
    /// - Parameters:
    ///   - perSession: The limit of each session, across all its routes; nil: none.
    ///   - perRoute: The limit of each listed route, across all sessions.
    ///   - defaultPerRoute: The limit of each route not in `perRoute`; nil: none.
    ///   - clock: The clock the buckets refill by.
    public init(
        perSession: Rate? = nil, perRoute: [String: Rate] = [:], defaultPerRoute: Rate? = nil,
        clock: any Clock<Duration> = ContinuousClock()
    ) {
        self.perSession = perSession
        self.perRoute = perRoute
        self.defaultPerRoute = defaultPerRoute
        self.clock = ClockReader(clock)
        self.state = Mutex(State(lastSweep: self.clock.now))
    }

    /// Passes the message on if its session and route have a token each, else throws 429.
    public func handle(_ message: FerryMessage, context: FerryContext, next: FerryHandler) async throws -> FerryResponse {
        if let refusal = admit(session: context.session.id, route: message.serviceMethod) {
            context.logger.debug("rate limited", metadata: ["route": "\(message.serviceMethod)", "cause": "\(refusal.cause)"])
            throw refusal
        }
        return try await next(message, context)
    }

    /// Takes a token for a message of `session` on `route` now, or says why it cannot.
    func admit(session: String, route: String) -> FerryStatus? {
        let routeRate = perRoute[route] ?? defaultPerRoute
        if perSession == nil && routeRate == nil { return nil }
        let now = clock.now
        return state.withLock { state in
            if now - state.lastSweep >= Self.sweepInterval { sweep(&state, at: now) }
            var sessionBucket = perSession.map { rate in
                state.sessions[session] ?? Self.bucket(rate, at: now)
            }
            var routeBucket = routeRate.map { rate in
                state.routes[route] ?? Self.bucket(rate, at: now)
            }
            if let rate = perSession, sessionBucket?.hasToken(at: now) == false {
                state.sessions[session] = sessionBucket
                return FerryStatus(.rateLimited, "Rate Limited", cause: "session \(session) is over \(rate)")
            }
            if let rate = routeRate, routeBucket?.hasToken(at: now) == false {
                state.routes[route] = routeBucket
                return FerryStatus(.rateLimited, "Rate Limited", cause: "route \(route) is over \(rate)")
            }
            if sessionBucket != nil {
                _ = sessionBucket!.take(at: now)
                state.sessions[session] = sessionBucket
            }
            if routeBucket != nil {
                _ = routeBucket!.take(at: now)
                state.routes[route] = routeBucket
            }
            return nil
        }
    }

    /// The number of buckets held, sessions and routes together.
    var bucketCount: Int { state.withLock { $0.sessions.count + $0.routes.count } }

    private func sweep(_ state: inout State, at now: ContinuousClock.Instant) {
        state.lastSweep = now
        for (key, var bucket) in state.sessions where bucket.isFull(at: now) { state.sessions[key] = nil }
        for (key, var bucket) in state.routes where bucket.isFull(at: now) { state.routes[key] = nil }
    }

    private static func bucket(_ rate: Rate, at now: ContinuousClock.Instant) -> TokenBucket {
        TokenBucket(capacity: Double(max(rate.burst, 1)), ratePerSecond: rate.perSecond, now: now)
    }
}
