/// Routes under a common prefix, sharing middleware. Create one with ``FerryRouter/group(_:middleware:)``.
///
/// A group joins its prefixes (its own and its parents') to a route's path in one of two
/// styles, so that a route name keeps the style it was written in:
///
/// - **Slash style**, when any of them contains a `/`: the segments are joined with exactly one
///   `/` between them and a leading `/`. `group("/api")` + `"v1"` + `"/echo"` → `/api/v1/echo`,
///   as erpc's default mapper does.
/// - **Dotted style**, when none contains a `/`: the parts, without the dots at their ends,
///   are joined with exactly one `.` between them. `group("Hello")` + `"Say"` → `Hello.Say`,
///   as erpc's RPC mapper does with a sub-route's prefix; `group("pay")` + `"Alipay.App"` →
///   `pay.Alipay.App`.
///
/// ```swift
/// let hello = peer.router.group("Hello")
/// hello.call("Say") { (name: String, _) in "hello, \(name)" }   // Hello.Say
/// let api = peer.router.group("/api")
/// api.call("/echo") { (text: String, _) in text }                // /api/echo
/// ```
public struct FerryRouteGroup: FerryRouteRegistrar {
    private let router: FerryRouter
    private let prefixes: [String]
    private let middleware: [any FerryMiddleware]

    init(router: FerryRouter, prefixes: [String], middleware: [any FerryMiddleware]) {
        self.router = router
        self.prefixes = prefixes
        self.middleware = middleware
    }

    /// Registers `handler` for `path` joined to this group's prefixes, wrapped in its middleware.
    public func addRoute(_ kind: FerryRoute.Kind, _ path: String, handler: @escaping FerryHandler) {
        router.addRoute(kind, Self.join(prefixes, path), handler: middleware.wrap(handler))
    }

    /// Registers a handler that never suspends for `path` joined to this group's prefixes. With
    /// the group's middleware, or the router's, it is wrapped like any other handler.
    public func addRoute(_ kind: FerryRoute.Kind, _ path: String, synchronousHandler: @escaping FerrySynchronousHandler) {
        if middleware.isEmpty {
            router.addRoute(kind, Self.join(prefixes, path), synchronousHandler: synchronousHandler)
        } else {
            addRoute(kind, path, handler: FerryRouteHandler.synchronous(synchronousHandler).asynchronous)
        }
    }

    /// A group of routes under `prefix` (appended to this one's), with extra middleware.
    public func group(_ prefix: String, middleware: [any FerryMiddleware] = []) -> FerryRouteGroup {
        FerryRouteGroup(router: router, prefixes: prefixes + [prefix], middleware: self.middleware + middleware)
    }

    /// The route name of `path` under `prefixes`. The style is decided once all parts are known,
    /// so that nested groups without a slash still join a slash-style path with slashes.
    static func join(_ prefixes: [String], _ path: String) -> String {
        let parts = prefixes + [path]
        if parts.contains(where: { $0.contains("/") }) {
            return "/" + parts.flatMap { $0.split(separator: "/") }.joined(separator: "/")
        }
        return parts.map { $0.trimmingDots() }.filter { !$0.isEmpty }.joined(separator: ".")
    }
}

extension StringProtocol {
    /// The string without the dots at either end.
    fileprivate func trimmingDots() -> SubSequence {
        let start = firstIndex { $0 != "." } ?? endIndex
        let end = lastIndex { $0 != "." }.map(index(after:)) ?? start
        return self[start..<end]
    }
}
