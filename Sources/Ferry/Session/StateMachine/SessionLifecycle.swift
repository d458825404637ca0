import FerryCore

/// Where a session is in its life: one value, so that impossible combinations (a closed
/// session that is also ready, a redial while authenticating) cannot be written.
///
/// Accepted sessions go `admitting` → (`authenticating` →) `open`; dialled sessions go
/// `handshaking` → `open`. A ready session whose connection is lost may go `redialling` →
/// `open`; one whose remote drains goes `movingAway` → `open` on a new connection. Every state
/// can end in `closed`, which is final.
package enum SessionLifecycle<Connection> {
    /// Accepted; the accept hook runs, and the messages read meanwhile wait in `heldBack`.
    case admitting(Connection, heldBack: [HeldBackMessage])
    /// Accepted and admitted; the remote must authenticate before it may call or push.
    case authenticating(Connection)
    /// Dialled; the dial hook and the auth handshake run.
    case handshaking(Connection)
    /// Ready: hooks and auth passed, the session is in its peer's hub.
    case open(Connection)
    /// Ready, and the remote asked this side to leave `from` (it is draining): a new connection
    /// is being dialled and new calls wait for it, while calls written on `from` still get
    /// their replies there.
    case movingAway(from: Connection)
    /// Ready once; the connection was lost and a new one is being dialled. `connection` is the
    /// lost one, or the new one while its hooks and handshake run.
    case redialling(Connection)
    /// Closed for good, on `last`.
    case closed(reason: String, last: Connection)

    /// The session's connection: the current one, else the last one it had.
    package var connection: Connection {
        switch self {
        case .admitting(let connection, _), .authenticating(let connection), .handshaking(let connection),
            .open(let connection), .movingAway(let connection), .redialling(let connection),
            .closed(_, let connection):
            connection
        }
    }

    /// The connection new messages may be written on now, if any: every live state but a
    /// move or a redial, where writers wait for the next connection.
    package var writableConnection: Connection? {
        switch self {
        case .admitting(let connection, _), .authenticating(let connection), .handshaking(let connection), .open(let connection):
            connection
        case .movingAway, .redialling, .closed:
            nil
        }
    }

    /// Whether hooks and auth have passed (and the session is, or was until it closed, in the hub).
    package var isReady: Bool {
        switch self {
        case .open, .movingAway, .redialling: true
        case .admitting, .authenticating, .handshaking, .closed: false
        }
    }

    /// Whether the session is closed for good.
    package var isClosed: Bool {
        if case .closed = self { return true }
        return false
    }

    /// Whether `connection` is the session's connection (the same object).
    package func isConnection(_ other: Connection) -> Bool {
        (connection as AnyObject) === (other as AnyObject)
    }

    /// Why the session closed, once it has.
    package var closedReason: String? {
        if case .closed(let reason, _) = self { return reason }
        return nil
    }
}

/// A message read before the accept hook let the session's messages through, with when it was
/// read.
package struct HeldBackMessage {
    /// The message.
    package var message: FerryMessage
    /// When its last byte was read.
    package var readAt: ContinuousClock.Instant

    package init(message: FerryMessage, readAt: ContinuousClock.Instant) {
        self.message = message
        self.readAt = readAt
    }
}
