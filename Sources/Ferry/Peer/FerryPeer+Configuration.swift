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
        /// Calls (outbound or handled) slower than this are logged at warning level with `slow`.
        public var slowCallThreshold: Duration
        /// Whether a handler's unexpected error text is sent as the cause of its 500 reply.
        /// Off by default so internals do not leak.
        public var exposeErrorDetails: Bool
        /// The optional auth handshake (AUTH_CALL / AUTH_REPLY) on new connections.
        public var auth: FerryAuth?
        /// Lifecycle hooks.
        public var hooks: Hooks

        /// Creates a configuration; every argument has a production default.
        public init(
            defaultCodec: FerryCodecID = .json,
            defaultCallTimeout: Duration = .seconds(30),
            dialTimeout: Duration = .seconds(10),
            maximumFrameSize: Int = 16 << 20,
            codecs: FerryCodecRegistry = .standard,
            filters: FerryFilterRegistry = .standard,
            customProto: (any FerryProto)? = nil,
            slowCallThreshold: Duration = .seconds(1),
            exposeErrorDetails: Bool = false,
            auth: FerryAuth? = nil,
            hooks: Hooks = Hooks()
        ) {
            self.defaultCodec = defaultCodec
            self.defaultCallTimeout = defaultCallTimeout
            self.dialTimeout = dialTimeout
            self.maximumFrameSize = maximumFrameSize
            self.codecs = codecs
            self.filters = filters
            self.customProto = customProto
            self.slowCallThreshold = slowCallThreshold
            self.exposeErrorDetails = exposeErrorDetails
            self.auth = auth
            self.hooks = hooks
        }

        /// The framing in use.
        var proto: any FerryProto {
            customProto ?? FerryRawProto(maximumFrameSize: maximumFrameSize, filters: filters)
        }
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
        /// Runs once when a session's connection is gone.
        public var onDisconnect: (@Sendable (FerrySession) -> Void)?

        /// Creates hooks; all are optional.
        public init(
            onAccept: (@Sendable (FerrySession) async throws -> Void)? = nil,
            onDial: (@Sendable (FerrySession) async throws -> Void)? = nil,
            onHeaderRead: (@Sendable (FerryMessage, FerrySession) throws -> Void)? = nil,
            beforeWrite: (@Sendable (inout FerryMessage, FerrySession) throws -> Void)? = nil,
            onDisconnect: (@Sendable (FerrySession) -> Void)? = nil
        ) {
            self.onAccept = onAccept
            self.onDial = onDial
            self.onHeaderRead = onHeaderRead
            self.beforeWrite = beforeWrite
            self.onDisconnect = onDisconnect
        }
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
