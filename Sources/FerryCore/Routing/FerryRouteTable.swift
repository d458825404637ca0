/// The routes of a router: what ``FerryRouter`` builds and ``FerryRouteTable`` keeps.
struct RouteEntries: Sendable {
    private(set) var calls: [String: FerryRouteHandler] = [:]
    private(set) var pushes: [String: FerryRouteHandler] = [:]
    /// The catch-all for CALLs to routes that are not registered.
    var unknownCall: FerryRouteHandler?
    /// The catch-all for PUSHes to routes that are not registered.
    var unknownPush: FerryRouteHandler?

    /// Routes the peer itself serves (such as its health route): dispatched like the others,
    /// left out of ``routes``, so that listings and discovery show only the user's routes.
    private var builtIns: Set<FerryRoute> = []

    /// Registers `handler` for `route`, replacing any handler it had.
    mutating func set(_ route: FerryRoute, _ handler: FerryRouteHandler) {
        switch route.kind {
        case .call: calls[route.path] = handler
        case .push: pushes[route.path] = handler
        }
    }

    /// Registers a route the peer serves itself, unless the user registered one of the same
    /// kind and name: the user's own route wins.
    mutating func setBuiltIn(_ route: FerryRoute, _ handler: FerryRouteHandler) {
        switch route.kind {
        case .call: guard calls[route.path] == nil else { return }
        case .push: guard pushes[route.path] == nil else { return }
        }
        set(route, handler)
        builtIns.insert(route)
    }

    /// The route's own handler, else the catch-all, else nil. `path` is matched exactly.
    func handler(for kind: FerryRoute.Kind, path: String) -> FerryRouteHandler? {
        switch kind {
        case .call: calls[path] ?? unknownCall
        case .push: pushes[path] ?? unknownPush
        }
    }

    /// Every route the user registered, sorted by path, then kind.
    var routes: [FerryRoute] {
        (calls.keys.map { FerryRoute(kind: .call, path: $0) } + pushes.keys.map { FerryRoute(kind: .push, path: $0) })
            .filter { !builtIns.contains($0) }
            .sorted { ($0.path, $0.kind.rawValue) < ($1.path, $1.kind.rawValue) }
    }
}

/// A frozen router's routes: the CALL and PUSH handlers by name and the catch-alls, as they
/// were when ``FerryRouter/freeze()`` was called. It never changes, so a peer looks routes up
/// and dispatches messages through it without a lock.
package final class FerryRouteTable: Sendable {
    let entries: RouteEntries

    init(_ entries: RouteEntries) {
        self.entries = entries
    }

    /// The handler for an inbound message: the route's own (`path` matched exactly as written),
    /// else the catch-all, else nil.
    package func handler(for kind: FerryRoute.Kind, path: String) -> FerryRouteHandler? {
        entries.handler(for: kind, path: path)
    }

    /// Every route, sorted by path.
    package var routes: [FerryRoute] { entries.routes }
}
