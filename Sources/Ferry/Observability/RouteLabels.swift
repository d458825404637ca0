import FerryCore
import Synchronization

/// Bounds the routes that label metrics and statistics: an inbound route counts under its own
/// name only if the router knows it (else `unknown`), and at most
/// ``FerryMetricNames/maximumRoutes`` distinct outbound routes are named (the rest count as
/// `other`).
final class RouteLabels: Sendable {
    /// The label of inbound messages to routes the router does not know.
    static let unknown = "unknown"
    /// The label of routes past the bound.
    static let other = "other"

    private let named = Mutex(Set<String>())

    /// The label for `route`: an inbound one the router knows (`known`) is itself (the router's
    /// table bounds them), one it does not know is `unknown`; an outbound one is itself until the
    /// bound.
    func label(for route: String, inbound: Bool, known: Bool) -> String {
        if inbound { return known ? route : Self.unknown }
        return named.withLock { named in
            if named.contains(route) { return route }
            guard named.count < FerryMetricNames.maximumRoutes else { return Self.other }
            named.insert(route)
            return route
        }
    }
}
