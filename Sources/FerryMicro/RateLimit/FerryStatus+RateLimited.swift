extension FerryStatus.Code {
    /// 429: the call was refused unhandled because its session or its route is over its rate
    /// limit (``FerryRateLimiter``); try again later. Not retried on another node by
    /// ``FerryClient`` and not counted against a node by its circuit breaker.
    public static let rateLimited: FerryStatus.Code = 429
}

extension FerryStatus {
    /// 429 "Rate Limited": the call was refused unhandled because its session or its route is
    /// over its rate limit (``FerryRateLimiter``).
    public static func rateLimited(_ cause: String = "", origin: Origin = .local, underlyingError: (any Error)? = nil) -> FerryStatus {
        FerryStatus(.rateLimited, "Rate Limited", cause: cause, origin: origin, underlyingError: underlyingError)
    }
}
