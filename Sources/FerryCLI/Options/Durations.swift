import ArgumentParser

/// Parses `2s`, `500ms`, `1.5s`, `1m`, `100us`, and their negative forms (`-1s`).
func parseDuration(_ text: String) -> Duration? {
    let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("s", 1), ("m", 60)]
    for (suffix, scale) in units where text.hasSuffix(suffix) {
        guard let value = Double(text.dropLast(suffix.count)), value.isFinite else { return nil }
        return .nanoseconds(Int64(value * scale * 1e9))
    }
    return nil
}

/// The duration an option gives, checked: it must parse, and be above zero (or at least zero
/// when `zeroAllowed`).
func durationOption(_ text: String, named option: String, zeroAllowed: Bool = false) throws -> Duration {
    guard let duration = parseDuration(text) else {
        throw ValidationError("\(option) must look like 2s, 500ms or 1m, got \(text)")
    }
    if duration < .zero || (duration == .zero && !zeroAllowed) {
        throw ValidationError("\(option) must be \(zeroAllowed ? "zero or more" : "positive"), got \(text)")
    }
    return duration
}

/// A duration in milliseconds, rounded to 0.01 ms.
func milliseconds(_ duration: Duration) -> Double {
    let millis = Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
    return (millis * 100).rounded() / 100
}
