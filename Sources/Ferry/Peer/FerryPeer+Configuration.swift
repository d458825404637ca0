import NIOCore

extension FerryPeer {
    /// Settings shared by every session of a peer.
    public struct Configuration: Sendable {
        /// The body codec of calls and pushes that name none. Default json.
        public var defaultCodec: FerryCodecID
        /// The deadline of calls whose options name none. No call waits forever. Default 30 s.
        public var defaultCallTimeout: Duration
        /// How long a dial may take to connect (and authenticate). Default 10 s.
        public var dialTimeout: Duration
        /// The largest frame accepted or sent, in bytes. Default 16 MiB.
        public var maximumFrameSize: Int
        /// The body codecs this peer knows.
        public var codecs: FerryCodecRegistry
        /// The transfer filters this peer knows.
        public var filters: FerryFilterRegistry
        /// A framing other than the raw proto; nil uses ``FerryRawProto`` with ``maximumFrameSize``
        /// and ``filters``.
        public var customProto: (any FerryProto)?
        /// How sessions over WebSocket (``FerryAddress/webSocket(host:port:path:)``) frame their
        /// messages: erpc's JSON or protobuf sub-protocol, and the message size limit.
        public var webSocket: WebSocket
        /// Calls (outbound or handled) slower than this are logged at warning level with `slow`.
        /// A handled call's time runs from when its message was read until its reply is queued.
        public var slowCallThreshold: Duration
        /// Whether a handler's unexpected error text is sent as the cause of its 500 reply.
        /// Off by default so internals do not leak.
        public var exposeErrorDetails: Bool
        /// The optional auth handshake (AUTH_CALL / AUTH_REPLY) on new connections.
        public var auth: FerryAuth?
        /// Lifecycle hooks.
        public var hooks: Hooks
        /// Heartbeats (erpc's heartbeat protocol). Answering is always on: a remote that announces
        /// a period is closed after twice that period of silence.
        public var heartbeat: Heartbeat
        /// Closes a session with no traffic in either direction for this long; nil never does.
        public var idleTimeout: Duration?
        /// Closes a session when a frame is incomplete and no byte of it arrives for this long.
        /// Default 30 s.
        public var readTimeout: Duration?
        /// Closes a session once it is this old; nil never does.
        public var maximumSessionAge: Duration?
        /// Redials dialled sessions whose connection breaks; nil does not.
        public var redial: Redial?
        /// Bounds that keep a flood from turning into unbounded memory or tasks.
        public var limits: Limits
        /// How long a graceful shutdown lets in-flight work finish before it closes what is
        /// left. Zero closes at once. Default 30 s.
        public var drainTimeout: Duration
        /// Whether ``FerryPeer/run()`` answers SIGUSR2 with a zero-downtime
        /// ``FerryPeer/restart(readyTimeout:)``. Off by default.
        public var restartsOnSIGUSR2: Bool
        /// Where inbound CALL and PUSH handlers run. Default ``HandlerExecution/eventLoop``.
        public var handlerExecution: HandlerExecution
        /// Whether the peer answers CALLs to ``FerryPeer/healthRoute`` (`/ferry/health`) itself,
        /// for load balancers and `ferry call`: OK with `{"status":"serving"}` while it serves,
        /// 106 "Shutting Down" while it drains. A route the user registers under that name
        /// replaces it. Off: the route is unknown (404) unless the user registers it. Default on.
        public var servesHealthRoute: Bool
        /// Metrics, tracing and the statistics of ``FerryPeer/statsRoute``. Default: all off.
        public var observability: FerryObservability

        /// Creates a configuration; every argument has a production default.
        public init(
            defaultCodec: FerryCodecID = .json,
            defaultCallTimeout: Duration = .seconds(30),
            dialTimeout: Duration = .seconds(10),
            maximumFrameSize: Int = 16 << 20,
            codecs: FerryCodecRegistry = .standard,
            filters: FerryFilterRegistry = .standard,
            customProto: (any FerryProto)? = nil,
            webSocket: WebSocket = WebSocket(),
            slowCallThreshold: Duration = .seconds(1),
            exposeErrorDetails: Bool = false,
            auth: FerryAuth? = nil,
            hooks: Hooks = Hooks(),
            heartbeat: Heartbeat = Heartbeat(),
            idleTimeout: Duration? = nil,
            readTimeout: Duration? = .seconds(30),
            maximumSessionAge: Duration? = nil,
            redial: Redial? = nil,
            limits: Limits = Limits(),
            drainTimeout: Duration = .seconds(30),
            restartsOnSIGUSR2: Bool = false,
            handlerExecution: HandlerExecution = .eventLoop,
            servesHealthRoute: Bool = true,
            observability: FerryObservability = FerryObservability()
        ) {
            self.defaultCodec = defaultCodec
            self.defaultCallTimeout = defaultCallTimeout
            self.dialTimeout = dialTimeout
            self.maximumFrameSize = maximumFrameSize
            self.codecs = codecs
            self.filters = filters
            self.customProto = customProto
            self.webSocket = webSocket
            self.slowCallThreshold = slowCallThreshold
            self.exposeErrorDetails = exposeErrorDetails
            self.auth = auth
            self.hooks = hooks
            self.heartbeat = heartbeat
            self.idleTimeout = idleTimeout
            self.readTimeout = readTimeout
            self.maximumSessionAge = maximumSessionAge
            self.redial = redial
            self.limits = limits
            self.drainTimeout = drainTimeout
            self.restartsOnSIGUSR2 = restartsOnSIGUSR2
            self.handlerExecution = handlerExecution
            self.servesHealthRoute = servesHealthRoute
            self.observability = observability
        }

        /// The framing in use.
        var proto: any FerryProto {
            customProto ?? FerryRawProto(maximumFrameSize: maximumFrameSize, filters: filters)
        }
    }

    /// Where inbound handlers run.
    public enum HandlerExecution: Sendable {
        /// On the event loop of the handler's connection: no thread hop between reading the
        /// call, running the handler and writing the reply. A handler that may suspend runs as a
        /// task with that loop as its executor preference, started at once; one that never
        /// suspends (``FerryCore/FerrySynchronousHandler``) runs in place, with no task. The
        /// fastest choice; handlers must not block (run blocking work on a thread pool such as
        /// `NIOThreadPool`), or every connection of that loop waits.
        case eventLoop
        /// On Swift's global concurrent executor: a handler that runs long on the CPU does not
        /// hold up its event loop, at the cost of two thread hops per call.
        case globalExecutor
    }

    /// Code that observes or vetoes a session's lifecycle. A hook that throws rejects: the
    /// connection is closed (accept, dial) or the message is refused (header read, write).
    public struct Hooks: Sendable {
        /// Runs when a connection is accepted, before anything is read from it.
        public var onAccept: (@Sendable (FerrySession) async throws -> Void)?
        /// Runs when a dial connects, before the auth handshake.
        public var onDial: (@Sendable (FerrySession) async throws -> Void)?
        /// Runs on the event loop for every inbound message after its header is read and before
        /// its body is decoded. Throwing a ``FerryStatus`` answers a CALL with it; a refused PUSH
        /// is dropped.
        public var onHeaderRead: (@Sendable (FerryMessage, FerrySession) throws -> Void)?
        /// Runs before every outbound message is written; may change it. Throwing fails the
        /// send.
        public var beforeWrite: (@Sendable (inout FerryMessage, FerrySession) throws -> Void)?
        /// Runs once when a session's connection is gone (for a redialling session: when it
        /// gives up).
        public var onDisconnect: (@Sendable (FerrySession) -> Void)?
        /// Runs at the start of a graceful shutdown, after listeners stop accepting and before
        /// draining: the place to deregister from discovery.
        public var onShutdown: (@Sendable () async -> Void)?

        /// Creates hooks; all are optional.
        public init(
            onAccept: (@Sendable (FerrySession) async throws -> Void)? = nil,
            onDial: (@Sendable (FerrySession) async throws -> Void)? = nil,
            onHeaderRead: (@Sendable (FerryMessage, FerrySession) throws -> Void)? = nil,
            beforeWrite: (@Sendable (inout FerryMessage, FerrySession) throws -> Void)? = nil,
            onDisconnect: (@Sendable (FerrySession) -> Void)? = nil,
            onShutdown: (@Sendable () async -> Void)? = nil
        ) {
            self.onAccept = onAccept
            self.onDial = onDial
            self.onHeaderRead = onHeaderRead
            self.beforeWrite = beforeWrite
            self.onDisconnect = onDisconnect
            self.onShutdown = onShutdown
        }
    }

    /// Heartbeat pings, compatible with erpc's heartbeat plugin: `/heartbeat` with meta
    /// `hb_=<seconds>`.
    public struct Heartbeat: Sendable {
        /// Ping after this long without traffic in either direction; nil: this side does not ping.
        public var pingInterval: Duration?
        /// Ping with a CALL, and close the session when it fails, instead of a PUSH.
        public var pingWithCall: Bool

        /// Creates heartbeat settings; by default this side does not ping.
        public init(pingInterval: Duration? = nil, pingWithCall: Bool = false) {
            self.pingInterval = pingInterval
            self.pingWithCall = pingWithCall
        }

        /// The route of heartbeat messages.
        public static let route = "/heartbeat"
        /// The meta key carrying the sender's ping period in whole seconds.
        public static let periodMetaKey = "hb_"
    }

    /// How a dialled session whose connection breaks dials again: exponential backoff with full
    /// jitter (each wait is random between zero and `min(maximumDelay, baseDelay * 2^attempt)`).
    ///
    /// Calls pending at the break fail at once with 102. The session keeps its ID, and the dial
    /// hook and the auth handshake run again on every new connection. A refused handshake stops
    /// redialling.
    public struct Redial: Sendable {
        /// Attempts before giving up.
        public var maximumAttempts: Int
        /// The first backoff ceiling.
        public var baseDelay: Duration
        /// The largest backoff ceiling.
        public var maximumDelay: Duration
        /// Whether calls made while redialling wait for the new connection (until their
        /// deadline) rather than fail at once with 102.
        public var callsWaitForReconnect: Bool

        /// Creates a redial policy.
        public init(maximumAttempts: Int = 10, baseDelay: Duration = .milliseconds(100), maximumDelay: Duration = .seconds(10), callsWaitForReconnect: Bool = true) {
            self.maximumAttempts = maximumAttempts
            self.baseDelay = baseDelay
            self.maximumDelay = maximumDelay
            self.callsWaitForReconnect = callsWaitForReconnect
        }

        /// The wait before attempt `attempt` (0-based): full jitter over the capped exponential,
        /// drawn from `generator` (the system's by default; a test passes a seeded one).
        func delay<Generator: RandomNumberGenerator>(
            beforeAttempt attempt: Int, using generator: inout Generator
        ) -> Duration {
            let ceiling = min(maximumDelay, baseDelay * (1 << min(attempt, 30)))
            let nanoseconds = ceiling.components.seconds * 1_000_000_000 + ceiling.components.attoseconds / 1_000_000_000
            return .nanoseconds(Int64.random(in: 0...max(nanoseconds, 0), using: &generator))
        }

        /// The wait before attempt `attempt` (0-based), drawn from the system's generator.
        func delay(beforeAttempt attempt: Int) -> Duration {
            var generator = SystemRandomNumberGenerator()
            return delay(beforeAttempt: attempt, using: &generator)
        }
    }

    /// Bounds past which work is refused with a clear status instead of queued without limit.
    public struct Limits: Sendable {
        /// Handlers running at once across the peer; past it, calls are answered 503 and pushes
        /// are dropped. Default 10,000.
        public var maximumConcurrentHandlers: Int
        /// Accepted connections at once; past it, new ones are closed on accept. nil: no bound.
        public var maximumConnections: Int?
        /// Accepted connections at once that have not yet passed the auth handshake (counted from
        /// accept, so a WebSocket connection still in its HTTP upgrade counts too); past it, new
        /// ones are closed on accept. It bounds a flood of connections that never authenticate
        /// without letting it take the room of authenticated sessions. Applies only when the
        /// peer verifies credentials (``FerryAuth/verify``). nil: no bound of its own.
        public var maximumUnauthenticatedConnections: Int?
        /// Bytes queued for one session's socket before its slow-consumer policy applies.
        /// Default 4 MiB.
        public var maximumQueuedOutboundBytes: Int
        /// What happens to a write when a session's queue is full.
        public var slowConsumerPolicy: SlowConsumerPolicy

        /// Creates limits.
        public init(
            maximumConcurrentHandlers: Int = 10_000, maximumConnections: Int? = nil, maximumUnauthenticatedConnections: Int? = nil,
            maximumQueuedOutboundBytes: Int = 4 << 20, slowConsumerPolicy: SlowConsumerPolicy = .applyBackPressure
        ) {
            self.maximumConcurrentHandlers = maximumConcurrentHandlers
            self.maximumConnections = maximumConnections
            self.maximumUnauthenticatedConnections = maximumUnauthenticatedConnections
            self.maximumQueuedOutboundBytes = maximumQueuedOutboundBytes
            self.slowConsumerPolicy = slowConsumerPolicy
        }
    }

    /// What a write does when the remote reads slower than this side writes.
    public enum SlowConsumerPolicy: Sendable {
        /// Wait until the queue drains, up to the message's deadline (then 408).
        case applyBackPressure
        /// Fail the write at once with 104.
        case failWrite
        /// Close the session with a logged reason; the write fails with 102.
        case closeSession
    }
}

/// The optional auth handshake, built on AUTH_CALL / AUTH_REPLY (erpc's auth plugin).
///
/// The dialling side sends its credential as the first message (codec `s`); the listening side
/// handles nothing else until the credential is verified, and closes the session when it is
/// refused or does not arrive within ``timeout``.
///
/// ```swift
/// // server
/// config.auth = FerryAuth(verify: { token, _ in
///     guard token == "secret" else { throw FerryStatus(.unauthorized, "Unauthorized") }
///     return "pass"
/// })
/// // client
/// config.auth = FerryAuth(credential: { "secret" })
/// ```
public struct FerryAuth: Sendable {
    /// Dialling side: the credential to send. Nil: dialled sessions do not authenticate.
    public var credential: (@Sendable () async throws -> String)?
    /// Listening side: checks a credential; throws a ``FerryStatus`` to refuse, returns the
    /// AUTH_REPLY body. Nil: accepted sessions need no auth.
    public var verify: (@Sendable (String, FerrySession) async throws -> String)?
    /// How long the handshake may take. Default 10 s.
    public var timeout: Duration

    /// Creates an auth configuration for one or both sides.
    public init(
        credential: (@Sendable () async throws -> String)? = nil,
        verify: (@Sendable (String, FerrySession) async throws -> String)? = nil,
        timeout: Duration = .seconds(10)
    ) {
        self.credential = credential
        self.verify = verify
        self.timeout = timeout
    }
}
