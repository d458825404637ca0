import NIOSSL

extension FerryClient {
    /// How a ``FerryClient`` spreads, guards and repeats its calls.
    ///
    /// ```swift
    /// var configuration = FerryClient.Configuration()
    /// configuration.poolSize = 2
    /// configuration.backupDelay = .milliseconds(50)   // about the p99 of the service
    /// configuration.retry.maximumAttempts = 2
    /// ```
    public struct Configuration: Sendable {
        /// How an endpoint is chosen for each call. Default ``FerryLoadBalancer/powerOfTwoChoices``.
        public var balancer: FerryLoadBalancer
        /// Sessions per endpoint (at least 1), each dialled on first use. A calling task keeps to
        /// one of them, chosen from its identity, so its calls and pushes stay in order; tasks
        /// spread over them. Default 1.
        public var poolSize: Int
        /// The per-endpoint circuit breaker; nil turns breaking off.
        public var breaker: CircuitBreaker?
        /// Which failures are sent again to another endpoint, and how many extra attempts the
        /// budget allows.
        public var retry: Retry
        /// When set, a call with no reply after this long is also sent to a different
        /// endpoint; the first reply wins and the other attempt is cancelled. Takes a token of
        /// the retry budget. Off by default; a value near the service's p99 latency cuts its
        /// tail for a few percent more calls.
        public var backupDelay: Duration?
        /// How long to wait before watching the registry again after it failed. Default 1 s.
        public var resolverRetryDelay: Duration
        /// Dials nodes over TLS with this configuration (trust roots, and a certificate for
        /// mutual TLS); nil dials without TLS. An invalid configuration fails every call with
        /// 105.
        public var tls: TLSConfiguration?
        /// The name node certificates are checked against and sent as SNI; nil: each node's
        /// host, when it is a DNS name (nodes registered by IP address need a certificate for
        /// that address, or this name).
        public var tlsServerHostname: String?
        /// The clock that times backup requests, circuit-breaker open periods and the retry
        /// budget. Default `ContinuousClock`; a test passes a clock it moves by hand.
        public var clock: any Clock<Duration>

        /// Creates a configuration; every argument has a default.
        public init(
            balancer: FerryLoadBalancer = .powerOfTwoChoices,
            poolSize: Int = 1,
            breaker: CircuitBreaker? = CircuitBreaker(),
            retry: Retry = Retry(),
            backupDelay: Duration? = nil,
            resolverRetryDelay: Duration = .seconds(1),
            tls: TLSConfiguration? = nil,
            tlsServerHostname: String? = nil,
            clock: any Clock<Duration> = ContinuousClock()
        ) {
            self.balancer = balancer
            self.poolSize = poolSize
            self.breaker = breaker
            self.retry = retry
            self.backupDelay = backupDelay
            self.resolverRetryDelay = resolverRetryDelay
            self.tls = tls
            self.tlsServerHostname = tlsServerHostname
            self.clock = clock
        }

        /// The default configuration.
        public static var defaults: Configuration { Configuration() }
    }
}

extension FerryClient.Configuration {
    /// A circuit breaker per endpoint over its last ``windowSize`` calls.
    ///
    /// Closed, calls flow. When at least ``minimumCalls`` of the window's calls are known and
    /// the failed share reaches ``failureRatio``, the breaker opens and the balancer skips the
    /// endpoint. After ``openDuration`` one call probes it (half-open): success closes the
    /// breaker, failure opens it again.
    ///
    /// Failures are what says the endpoint itself is unwell: 102 (connection lost), 104 (write
    /// failed), 105 (dial failed), 106 (shutting down), 408 (no reply in time) and 503
    /// (overloaded). Any other reply, including application errors, counts as a success; a
    /// cancelled call counts as nothing.
    public struct CircuitBreaker: Sendable, Hashable {
        /// The failed share of the window that opens the breaker, 0…1. Default 0.5.
        public var failureRatio: Double
        /// Calls the window must hold before it can open the breaker. Default 10.
        public var minimumCalls: Int
        /// How many of the latest calls the window holds. Default 20.
        public var windowSize: Int
        /// How long the breaker stays open before a probe. Default 5 s.
        public var openDuration: Duration

        /// Creates breaker settings.
        public init(failureRatio: Double = 0.5, minimumCalls: Int = 10, windowSize: Int = 20, openDuration: Duration = .seconds(5)) {
            self.failureRatio = failureRatio
            self.minimumCalls = minimumCalls
            self.windowSize = windowSize
            self.openDuration = openDuration
        }
    }

    /// Sending a failed call again, to another endpoint, within a budget.
    ///
    /// A call is sent again when its status has one of the ``retryableCodes`` and sending it
    /// again cannot make it run twice, which the status's ``FerryStatus/origin`` and code tell:
    ///
    /// - Never sent (origin ``FerryStatus/Origin/local``): a dial that failed (105), a session
    ///   that refused the call before writing it (102): sent again.
    /// - Refused unhandled by the remote: 105, 106 (shutting down) and 503 (overloaded), which
    ///   promise that no handler ran: sent again.
    /// - May have run: a 102 for a call that was written when its connection dropped (origin
    ///   ``FerryStatus/Origin/localAfterSending``), a 102 in a reply (a proxy lost its upstream),
    ///   and any other retryable code raised after sending or received in a reply: sent again
    ///   only when the route is in ``idempotentRoutes``.
    ///
    /// As in gRPC, an attempt that never left is always safe to send again, and one that may
    /// have run is sent again only for methods declared safe to repeat.
    ///
    /// A retry never goes to an endpoint the call already tried. The budget is shared by every
    /// call of the client: each call adds ``budgetRatio`` of a token, a floor adds
    /// ``minimumRetriesPerSecond`` tokens a second, and every retry and backup request takes
    /// one. With the defaults, retries add at most 20 % to the calls sent, plus ten a second,
    /// so a failing service never sees its load multiplied. At most 100 calls' worth of
    /// deposits are kept, so a long healthy spell cannot bank a retry storm.
    ///
    /// ```swift
    /// var configuration = FerryClient.Configuration()
    /// configuration.retry.idempotentRoutes = ["/user/get", "/user/setName"]
    /// ```
    public struct Retry: Sendable, Hashable {
        /// Attempts per call, the first one included; 1 turns retries off. Default 3.
        public var maximumAttempts: Int
        /// The statuses that may be sent again. Default: 102 (connection lost), 105 (dial
        /// failed), 106 (shutting down, not handled) and 503 (overloaded, not handled). A call
        /// that may have run is sent again only when its route is in ``idempotentRoutes``.
        public var retryableCodes: Set<FerryStatus.Code>
        /// The routes whose calls may run more than once with the same effect (reads, puts of a
        /// whole value, calls the handler deduplicates). Their calls are sent again even when
        /// they may have run: a 102 after the call was written, or any other retryable code
        /// that does not promise the call was not handled. Routes are matched exactly, as
        /// called. Default: none.
        public var idempotentRoutes: Set<String>
        /// Tokens each call adds to the budget. Default 0.2.
        public var budgetRatio: Double
        /// Tokens the budget gains per second whatever the traffic. Default 10.
        public var minimumRetriesPerSecond: Double

        /// Creates retry settings.
        public init(
            maximumAttempts: Int = 3,
            retryableCodes: Set<FerryStatus.Code> = [.connectionClosed, .dialFailed, .shuttingDown, .unavailable],
            budgetRatio: Double = 0.2,
            minimumRetriesPerSecond: Double = 10,
            idempotentRoutes: Set<String> = []
        ) {
            self.maximumAttempts = maximumAttempts
            self.retryableCodes = retryableCodes
            self.idempotentRoutes = idempotentRoutes
            self.budgetRatio = budgetRatio
            self.minimumRetriesPerSecond = minimumRetriesPerSecond
        }

        /// No retries.
        public static var disabled: Retry { Retry(maximumAttempts: 1) }
    }
}

extension FerryClient.Configuration.Retry {
    /// The codes that promise the remote did not handle the call, wherever they were raised:
    /// 105 (never connected), 106 (refused while draining) and 503 (refused at the handler
    /// bound).
    static let unhandledCodes: Set<FerryStatus.Code> = [.dialFailed, .shuttingDown, .unavailable]

    /// Whether a call of `route` that ended with `status` is sent again (the budget and the
    /// attempts left permitting).
    func allowsRetry(after status: FerryStatus, route: String) -> Bool {
        guard retryableCodes.contains(status.code) else { return false }
        return !Self.mayHaveRun(status) || idempotentRoutes.contains(route)
    }

    /// Whether the call that ended with `status` may have been handled by the remote.
    static func mayHaveRun(_ status: FerryStatus) -> Bool {
        switch status.origin {
        case .local: false
        case .remote, .localAfterSending: !unhandledCodes.contains(status.code)
        }
    }
}
