/// The names of the metrics a peer records through swift-metrics, and their labels.
///
/// | Name | Kind | Labels |
/// |---|---|---|
/// | `ferry_calls_total` | counter | `direction` (`in`: handled here, `out`: made here), `route`, `code` |
/// | `ferry_pushes_total` | counter | `direction`, `route`, `code` |
/// | `ferry_call_duration_seconds` | timer (histogram) | `direction`, `route` |
/// | `ferry_calls_in_flight` | gauge | `direction` (`out`: calls made here awaiting their reply) |
/// | `ferry_body_bytes_total` | counter | `direction` |
/// | `ferry_wire_bytes_total` | counter | `direction` (bytes at the socket: frames, TLS, WebSocket) |
/// | `ferry_sessions_open` | gauge | |
/// | `ferry_sessions_opened_total` | counter | `how` (`accepted`, `dialled`) |
/// | `ferry_sessions_closed_total` | counter | `reason` (a fixed set: ``FerryCloseCategory``) |
/// | `ferry_handlers_running` | gauge | (calls and pushes handled here right now) |
/// | `ferry_redials_total` | counter | `outcome` (`connected`, `failed`, `gave_up`, `refused`) |
/// | `ferry_heartbeat_misses_total` | counter | |
///
/// A handled call's duration runs from the read that completed its message to its reply being
/// queued; a call made here, from the call to its reply. `route` is the route as the router
/// knows it; inbound messages to routes it does not know count as `unknown`, and a peer counts
/// at most ``maximumRoutes`` distinct routes (the rest as `other`), so no remote can create
/// series without bound.
public enum FerryMetricNames {
    /// Calls by direction, route and status code.
    public static let calls = "ferry_calls_total"
    /// Pushes by direction, route and status code.
    public static let pushes = "ferry_pushes_total"
    /// Call durations by direction and route.
    public static let callDuration = "ferry_call_duration_seconds"
    /// Calls under way, by direction.
    public static let callsInFlight = "ferry_calls_in_flight"
    /// Message body bytes by direction.
    public static let bodyBytes = "ferry_body_bytes_total"
    /// Bytes read and written at the socket, by direction.
    public static let wireBytes = "ferry_wire_bytes_total"
    /// Sessions open now.
    public static let sessionsOpen = "ferry_sessions_open"
    /// Sessions opened, accepted or dialled.
    public static let sessionsOpened = "ferry_sessions_opened_total"
    /// Sessions closed, by reason.
    public static let sessionsClosed = "ferry_sessions_closed_total"
    /// Handlers running now (the slots of ``FerryPeer/Limits/maximumConcurrentHandlers`` in use).
    public static let handlersRunning = "ferry_handlers_running"
    /// Redial attempts by outcome.
    public static let redials = "ferry_redials_total"
    /// Sessions closed because a heartbeat failed or the remote fell silent past twice its period.
    public static let heartbeatMisses = "ferry_heartbeat_misses_total"
    /// The most distinct routes a peer labels metrics and statistics with.
    public static let maximumRoutes = 1000
}

/// Why a session closed, in the fixed set of values of the `reason` label.
public enum FerryCloseCategory: String, Sendable, CaseIterable {
    /// Idle for longer than the idle timeout.
    case idle
    /// A frame stalled past the read timeout.
    case readTimeout = "read_timeout"
    /// The heartbeat failed or the remote fell silent.
    case heartbeat
    /// The auth handshake failed, was refused or did not come.
    case auth
    /// The remote did not read its replies (a slow-consumer policy).
    case slowConsumer = "slow_consumer"
    /// The session reached its maximum age.
    case maximumAge = "max_age"
    /// The remote broke the protocol (a malformed or oversized frame, a bad message).
    case protocolError = "protocol_error"
    /// Another session took its ID (single login).
    case replaced
    /// Redialling gave up or was refused.
    case redial
    /// This side closed it, or shut down.
    case local
    /// The remote closed it, or the connection was lost.
    case remote

    /// The category of a close reason as sessions log it.
    public init(reason: String) {
        let text = reason.lowercased()
        let table: [(String, FerryCloseCategory)] = [
            ("idle", .idle), ("incomplete", .readTimeout), ("read timeout", .readTimeout), ("heartbeat", .heartbeat),
            ("redial", .redial), ("auth", .auth), ("slow consumer", .slowConsumer), ("maximum age", .maximumAge),
            ("logged in", .replaced), ("replaced", .replaced), ("kicked", .replaced),
            ("closed by this side", .local), ("shut", .local), ("drain", .local), ("peer has stopped", .local),
            ("frame", .protocolError), ("protocol", .protocolError), ("malformed", .protocolError),
            ("exceeds", .protocolError), ("utf-8", .protocolError), ("unsupported", .protocolError),
            ("messages before", .protocolError), ("decod", .protocolError),
        ]
        self = table.first { text.contains($0.0) }?.1 ?? .remote
    }
}
