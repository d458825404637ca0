/// The outcome of a message: a code, a human-readable message and an optional cause, with where
/// it came from and, for a failure raised on this side, the error behind it.
///
/// An OK status has code 0. Handlers throw a `FerryStatus` to reply with it; callers receive one
/// as the error of a failed call. It prints as `code: "message" (cause: "…")`, followed by
/// `[local]` or `[local, after sending]` when it was raised on this side.
///
/// ```swift
/// throw FerryStatus(.notFound, "no such user", cause: "id=42")
/// ```
///
/// The framework's own statuses come from factories such as ``timedOut(_:origin:underlyingError:)``
/// and ``connectionClosed(_:origin:underlyingError:)``, which keep their wire messages fixed.
///
/// ## Where a status came from
///
/// Only ``code``, ``message`` and ``cause`` travel on the wire. ``origin`` says whether the
/// remote peer sent the status in a message or this side raised it, and whether the call had
/// left this side by then; ``underlyingError`` keeps the local error that caused it.
///
/// ## Equality
///
/// Two statuses are equal, and hash alike, when their ``code``, ``message`` and ``cause`` are:
/// what the wire carries. ``origin`` and ``underlyingError`` do not take part, so a status
/// compares equal to the same status decoded on the other side; compare ``origin`` explicitly
/// where it matters.
public struct FerryStatus: Error, Hashable, Sendable, CustomStringConvertible {
    /// The status code: 0 is OK; framework codes are below 1000; user codes should be above 1000.
    public var code: Code
    /// Where the status came from: the remote peer, or this side before or after the call left.
    /// Not written on the wire; ``init(_:_:cause:origin:underlyingError:)`` makes it ``Origin/local``.
    // Declared after `code` so that the one-byte enum fills `code`'s padding.
    public var origin: Origin
    /// A short, human-readable explanation.
    public var message: String
    /// The underlying cause as text, when there is one worth reporting: what the wire carries
    /// (erpc's status cause).
    public var cause: String
    /// The local error that caused the status, if any (a decoding error, a socket error, …);
    /// nil for a status received from the remote peer. Not written on the wire.
    public var underlyingError: (any Error)?

    /// Creates a status.
    ///
    /// - Parameters:
    ///   - origin: Where the status came from; ``Origin/local`` unless said otherwise.
    ///   - underlyingError: The local error that caused the status, kept for the caller.
    public init(_ code: Code, _ message: String = "", cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) {
        self.code = code
        self.origin = origin
        self.message = message
        self.cause = cause
        self.underlyingError = underlyingError
    }

    /// Creates a status from a raw code value.
    public init(code: Int32, message: String = "", cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) {
        self.init(Code(code), message, cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// The OK status.
    public static let ok = FerryStatus(.ok)

    /// Whether the code is 0.
    public var isOK: Bool { code == .ok }

    /// Whether the status says the connection failed (102 or 105). Whether such a call may be
    /// sent again depends on whether it left this side: see ``Origin``.
    public var isConnectionError: Bool { code == .connectionClosed || code == .dialFailed }

    /// A readable form, for logs and error messages: `code: "message" (cause: "…")`, and for a
    /// status raised on this side ` [local]` or ` [local, after sending]` after it.
    public var description: String {
        var text = "\(code.rawValue): \"\(message)\""
        if !cause.isEmpty { text += " (cause: \"\(cause)\")" }
        switch origin {
        case .remote: break
        case .local: text += " [local]"
        case .localAfterSending: text += " [local, after sending]"
        }
        return text
    }

    /// Whether `lhs` and `rhs` have the same code, message and cause; ``origin`` and
    /// ``underlyingError`` are not compared.
    public static func == (lhs: FerryStatus, rhs: FerryStatus) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.cause == rhs.cause
    }

    /// Hashes the code, message and cause, as ``==(_:_:)`` compares them.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(message)
        hasher.combine(cause)
    }
}

extension FerryStatus {
    /// Where a status came from, as seen by the side that holds it.
    ///
    /// A caller that sends a call again (``FerryClient`` in FerryMicro retries) uses it to tell a
    /// call that cannot have run from one that may have.
    public enum Origin: Sendable, Hashable, CustomStringConvertible {
        /// The remote peer sent it: the status of a reply (or of any message) read from the
        /// connection. Whatever its code, the remote said it.
        case remote
        /// Raised on this side, and the call never left it: refused before it was written,
        /// cancelled before sending, dial failed, a body this side could not encode, …. The
        /// remote cannot have handled the call.
        case local
        /// Raised on this side after the call was handed to its connection, so the remote may
        /// have handled it, or did: a 102 for a pending call whose connection dropped, a 408
        /// while awaiting the reply, a reply whose body this side could not decode.
        case localAfterSending

        /// `remote`, `local` or `local, after sending`.
        public var description: String {
            switch self {
            case .remote: "remote"
            case .local: "local"
            case .localAfterSending: "local, after sending"
            }
        }
    }
}

extension FerryStatus {
    /// A status code. Framework codes are listed as constants; any `Int32` is a valid code.
    public struct Code: RawRepresentable, Hashable, Sendable, ExpressibleByIntegerLiteral,
        CustomStringConvertible
    {
        /// The numeric code written on the wire.
        public let rawValue: Int32

        /// Creates a code from its numeric value.
        public init(rawValue: Int32) { self.rawValue = rawValue }
        /// Creates a code from its numeric value.
        public init(_ rawValue: Int32) { self.rawValue = rawValue }
        /// Creates a code from an integer literal.
        public init(integerLiteral value: Int32) { self.rawValue = value }

        /// A readable form, for logs and error messages.
        public var description: String { String(rawValue) }

        /// -1: an error nobody classified.
        public static let unknown: Code = -1
        /// 0: success.
        public static let ok: Code = 0
        /// 1: the operation is not valid in the current state.
        public static let invalidOperation: Code = 1
        /// 100: the connection is not the expected one.
        public static let wrongConnection: Code = 100
        /// 102: the connection closed. A call refused before it was written never ran; one
        /// pending when its connection dropped may have (see ``FerryStatus/Origin``).
        public static let connectionClosed: Code = 102
        /// 104: a message could not be written.
        public static let writeFailed: Code = 104
        /// 105: a dial failed; the call never left, and is safe to send to another node.
        public static let dialFailed: Code = 105
        /// 106: the peer is shutting down and did not handle the call; safe to retry on another
        /// connection or node (Ferry).
        public static let shuttingDown: Code = 106
        /// 400: the message is malformed or its body cannot be decoded.
        public static let badMessage: Code = 400
        /// 401: authentication failed or is missing.
        public static let unauthorized: Code = 401
        /// 404: no such route.
        public static let notFound: Code = 404
        /// 405: the message type is not allowed.
        public static let messageTypeNotAllowed: Code = 405
        /// 408: the call did not complete before its deadline.
        public static let timedOut: Code = 408
        /// 499: the caller cancelled the call (Ferry).
        public static let cancelled: Code = 499
        /// 500: the handler failed.
        public static let internalServerError: Code = 500
        /// 502: a proxied call failed upstream.
        public static let badGateway: Code = 502
        /// 503: the peer refused the call unhandled because it is at its handler bound; safe to
        /// retry elsewhere (Ferry).
        public static let unavailable: Code = 503
        /// 504: the caller's deadline had passed when the call arrived; it was not handled
        /// (Ferry).
        public static let deadlineExceeded: Code = 504
    }
}
