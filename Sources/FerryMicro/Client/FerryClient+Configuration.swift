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

        /// Creates a configuration; every argument has a default.
        public init(
            balancer: FerryLoadBalancer = .powerOfTwoChoices,
            poolSize: Int = 1,
            breaker: CircuitBreaker? = CircuitBreaker(),
            retry: Retry = Retry(),
            backupDelay: Duration? = nil,
            resolverRetryDelay: Duration = .seconds(1),
            tls: TLSConfiguration? = nil,
            tlsServerHostname: String? = nil
        ) {
            self.balancer = balancer
            self.poolSize = poolSize
            self.breaker = breaker
            self.retry = retry
            self.backupDelay = backupDelay
            self.resolverRetryDelay = resolverRetryDelay
            self.tls = tls
            self.tlsServerHostname = tlsServerHostname
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
    /// A retry never goes to an endpoint the call already tried. The budget is shared by every
    /// call of the client: each call adds ``budgetRatio`` of a token, a floor adds
    /// ``minimumRetriesPerSecond`` tokens a second, and every retry and backup request takes
    /// one. With the defaults, retries add at most 20 % to the calls sent, plus ten a second,
    /// so a failing service never sees its load multiplied. At most 100 calls' worth of
    /// deposits are kept, so a long healthy spell cannot bank a retry storm.
    public struct Retry: Sendable, Hashable {
        /// Attempts per call, the first one included; 1 turns retries off. Default 3.
        public var maximumAttempts: Int
        /// The statuses that are sent again. Default: 102 (connection lost), 105 (dial
        /// failed), 106 (shutting down, not handled) and 503 (overloaded, not handled).
        /// 102 may mean the call ran; leave it out for calls that must not run twice.
        public var retryableCodes: Set<FerryStatus.Code>
        /// Tokens each call adds to the budget. Default 0.2.
        public var budgetRatio: Double
        /// Tokens the budget gains per second whatever the traffic. Default 10.
        public var minimumRetriesPerSecond: Double

        /// Creates retry settings.
        public init(
            maximumAttempts: Int = 3,
            retryableCodes: Set<FerryStatus.Code> = [.connectionClosed, .dialFailed, .shuttingDown, .unavailable],
            budgetRatio: Double = 0.2,
            minimumRetriesPerSecond: Double = 10
        ) {
            self.maximumAttempts = maximumAttempts
            self.retryableCodes = retryableCodes
            self.budgetRatio = budgetRatio
            self.minimumRetriesPerSecond = minimumRetriesPerSecond
        }

        /// No retries.
        public static var disabled: Retry { Retry(maximumAttempts: 1) }
    }
}
