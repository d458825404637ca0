import FerryCore
import Testing

/// The status thrown by `body`, or nil when it does not throw a ``FerryStatus``; any other
/// error is recorded as an issue.
public func statusThrown<T>(
    sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> T
) async -> FerryStatus? {
    do {
        _ = try await body()
        return nil
    } catch let status as FerryStatus {
        return status
    } catch {
        Issue.record("expected a FerryStatus, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
        return nil
    }
}
