/// The outcome of a message: a code, a human-readable message and an optional cause.
///
/// An OK status has code 0. Handlers throw a `FerryStatus` to reply with it; callers receive one
/// as the error of a failed call. It prints as `code: "message" (cause: "…")`.
///
/// ```swift
/// throw FerryStatus(.notFound, "no such user", cause: "id=42")
/// ```
public struct FerryStatus: Error, Hashable, Sendable, CustomStringConvertible {
    /// The status code: 0 is OK; framework codes are below 1000; user codes should be above 1000.
    public var code: Code
    /// A short, human-readable explanation.
    public var message: String
    /// The underlying cause, when there is one worth reporting.
    public var cause: String

    /// Creates a status.
    public init(_ code: Code, _ message: String = "", cause: String = "") {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// Creates a status from a raw code value.
    public init(code: Int32, message: String = "", cause: String = "") {
        self.init(Code(code), message, cause: cause)
    }

    /// The OK status.
    public static let ok = FerryStatus(.ok)

    /// Whether the code is 0.
    public var isOK: Bool { code == .ok }

    /// Whether the status says the connection failed (102 or 105): such calls may be retried
    /// on another node.
    public var isConnectionError: Bool { code == .connectionClosed || code == .dialFailed }

    /// A readable form, for logs and error messages.
    public var description: String {
        var text = "\(code.rawValue): \"\(message)\""
        if !cause.isEmpty { text += " (cause: \"\(cause)\")" }
        return text
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
        /// 102: the connection closed; retryable on another node.
        public static let connectionClosed: Code = 102
        /// 104: a message could not be written.
        public static let writeFailed: Code = 104
        /// 105: a dial failed; retryable on another node.
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

extension FerryStatus {
    package static func connectionClosed(_ cause: String = "") -> FerryStatus {
        FerryStatus(.connectionClosed, "Connection Closed", cause: cause)
    }
    package static func writeFailed(_ cause: String) -> FerryStatus {
        FerryStatus(.writeFailed, "Write Failed", cause: cause)
    }
    package static func badMessage(_ cause: String) -> FerryStatus {
        FerryStatus(.badMessage, "Bad Message", cause: cause)
    }
    package static func notFound(_ route: String) -> FerryStatus {
        FerryStatus(.notFound, "Not Found", cause: route)
    }
}
