/// Polls `condition` every 10 ms for at most `timeout`; returns whether it became true.
///
/// For conditions that another task or a socket makes true, not for making time pass: code
/// that waits for time takes a ``TestClock``.
public func eventually(
    timeout: Duration = .seconds(10), _ condition: @Sendable () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}
