/// The statuses ``FerryClient`` raises itself, on the calling side, before any node is called.
extension FerryStatus {
    /// 105 "No Endpoint": no node of the service serves the route (or the registry lists none).
    /// The call never left.
    public static func noEndpoint(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.dialFailed, "No Endpoint", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 503 "Circuit Open": nodes serve the route, but every one's circuit breaker is open. The
    /// call never left.
    public static func circuitOpen(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.unavailable, "Circuit Open", cause: cause, origin: origin, underlyingError: underlyingError)
    }

    /// 1 "Client Closed": ``FerryClient/close()`` was called (by default the cause says so).
    public static func clientClosed(_ cause: String = "the client was closed", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.invalidOperation, "Client Closed", cause: cause, origin: origin, underlyingError: underlyingError)
    }
}
