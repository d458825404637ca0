/// The framework's statuses, with the messages Ferry and erpc write on the wire.
///
/// Each factory takes the ``FerryStatus/cause`` and, for a status raised on this side, where it
/// was raised (``FerryStatus/Origin/local`` unless said otherwise) and the error behind it:
///
/// ```swift
/// throw FerryStatus.timedOut("no reply within 1 s", origin: .localAfterSending)
/// throw FerryStatus.dialFailed("10.0.0.5:9090: \(error)", underlyingError: error)
/// ```
///
/// The messages are part of the wire contract (erpc peers and logs show them): use these
/// factories rather than writing the messages again.
extension FerryStatus {
    /// -1 "Unknown Error": an error nobody classified.
    public static func unknown(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.unknown, "Unknown Error", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 1 "Invalid Operation": the operation is not valid in the current state (a second auth
    /// call, …).
    public static func invalidOperation(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.invalidOperation, "Invalid Operation", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 100 "Wrong Connection": the connection is not the expected one.
    public static func wrongConnection(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.wrongConnection, "Wrong Connection", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 102 "Connection Closed": the connection closed. Raised before a call was written, it is
    /// ``Origin/local`` and the call never ran; for a call pending when the connection dropped
    /// it is ``Origin/localAfterSending`` and the call may have run.
    public static func connectionClosed(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.connectionClosed, "Connection Closed", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 104 "Write Failed": a message could not be written.
    public static func writeFailed(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.writeFailed, "Write Failed", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 104 "Slow Consumer": the message was not written because the remote is not reading and
    /// the session's outbound queue is full.
    public static func slowConsumer(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.writeFailed, "Slow Consumer", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 105 "Dial Failed": the connection could not be set up; the call never left.
    public static func dialFailed(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.dialFailed, "Dial Failed", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 106 "Shutting Down": the peer is draining and did not handle the call; safe to send to
    /// another connection or node.
    public static func shuttingDown(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.shuttingDown, "Shutting Down", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 400 "Bad Message": the message is malformed, or its body cannot be encoded or decoded.
    public static func badMessage(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.badMessage, "Bad Message", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 400 "Invalid Heartbeat Rate": a heartbeat PUSH asked for a period that is not valid.
    public static func invalidHeartbeatRate(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.badMessage, "Invalid Heartbeat Rate", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 400 "Undecodable Reply": a reply arrived (its status OK) but this side could not decode
    /// its body as the type asked for. Raised on this side after the call ran
    /// (``Origin/localAfterSending``), with the decoding error as ``FerryStatus/underlyingError``:
    /// the remote did not say 400.
    public static func undecodableReply(_ cause: String = "", origin: Origin = .localAfterSending, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.badMessage, "Undecodable Reply", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 401 "Unauthorized": authentication failed or is missing.
    public static func unauthorized(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.unauthorized, "Unauthorized", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 404 "Not Found": no route has the service method given as `cause`.
    public static func notFound(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.notFound, "Not Found", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 405 "Message Type Not Allowed": the message type is not accepted here.
    public static func messageTypeNotAllowed(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.messageTypeNotAllowed, "Message Type Not Allowed", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 408 "Timeout": the call, a dial or a handshake did not complete in time. Raised while
    /// awaiting a reply it is ``Origin/localAfterSending``: the remote may have handled the call.
    public static func timedOut(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.timedOut, "Timeout", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 499 "Cancelled": the calling task was cancelled (by default the cause says so).
    public static func cancelled(_ cause: String = "the calling task was cancelled", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.cancelled, "Cancelled", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 500 "Internal Server Error": the handler failed, or its reply could not be encoded or
    /// sent.
    public static func internalServerError(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.internalServerError, "Internal Server Error", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 502 "Bad Gateway": a proxied call failed upstream.
    public static func badGateway(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.badGateway, "Bad Gateway", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 503 "Overloaded": the peer refused the call unhandled because it is at its handler bound;
    /// safe to send to another node.
    public static func overloaded(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.unavailable, "Overloaded", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 504 "Deadline Exceeded": the caller's deadline had passed when the call arrived; its
    /// handler did not run.
    public static func deadlineExceeded(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.deadlineExceeded, "Deadline Exceeded", cause: cause, origin: origin, underlyingError: underlyingError)
    }
}
