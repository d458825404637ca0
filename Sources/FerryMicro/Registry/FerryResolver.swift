/// The endpoints of a service, or of a route, as an async sequence of lists that follows a
/// registry watch.
///
/// ```swift
/// for await nodes in FerryResolver(registry: registry, service: "math") {
///     print("math runs on", nodes.map(\.address))
/// }
/// ```
///
/// The first element is the list when the watch starts; after that an element comes only when
/// the list changes. When the registry fails (its watch ends with an error, or ends at all), the
/// sequence yields nothing, so its consumer keeps the last good list, and it watches again
/// after ``retryDelay``. After such a failure, an empty list does not replace a non-empty one:
/// a registry that lost its data reports no nodes until they register again, and the last good
/// list stays in use until it lists nodes. The sequence ends only when the consuming task is
/// cancelled.
///
/// Which nodes a resolver yields:
/// - a service: every node of the service;
/// - a service and a route: the nodes of the service that serve the route (see
///   ``FerryNode/serves(_:)``: a node that lists no routes serves them all);
/// - a route alone: the nodes of any service that list the route explicitly.
public struct FerryResolver: AsyncSequence, Sendable {
    /// One list of nodes.
    public typealias Element = [FerryNode]
    /// Iteration never throws: registry failures are retried.
    public typealias Failure = Never

    /// The registry watched.
    public let registry: any FerryRegistry
    /// The service whose nodes are resolved; nil: every service.
    public let service: String?
    /// The route the nodes must serve; nil: any.
    public let route: String?
    /// How long to wait before watching again after the registry failed.
    public let retryDelay: Duration

    /// Resolves the nodes of `service`, or only those serving `route` when it is given.
    public init(registry: any FerryRegistry, service: String, route: String? = nil, retryDelay: Duration = .seconds(1)) {
        self.init(registry: registry, service: Optional(service), route: route, retryDelay: retryDelay)
    }

    /// Resolves the nodes of any service that list `route`.
    public init(registry: any FerryRegistry, route: String, retryDelay: Duration = .seconds(1)) {
        self.init(registry: registry, service: nil, route: Optional(route), retryDelay: retryDelay)
    }

    /// Every combination, including neither (every node of every service).
    init(registry: any FerryRegistry, service: String?, route: String?, retryDelay: Duration) {
        self.registry = registry
        self.service = service
        self.route = route
        self.retryDelay = retryDelay
    }

    /// Whether `node` belongs in this resolver's lists.
    func includes(_ node: FerryNode) -> Bool {
        if let service, node.service != service { return false }
        guard let route else { return true }
        return service == nil ? node.routes.contains(route) : node.serves(route)
    }

    /// Starts a watch of its own for this iteration.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(resolver: self)
    }

    /// Iterates a ``FerryResolver``.
    public struct AsyncIterator: AsyncIteratorProtocol {
        /// Iteration never throws: registry failures are retried.
        public typealias Failure = Never
        private let resolver: FerryResolver
        private var watch: (any AsyncIteratorProtocol<[FerryNode], any Error>)?
        private var last: [FerryNode]?
        /// Set when a watch failed: the registry may come back empty before its nodes have
        /// registered again (etcd restarted without its data), and that must not empty a known
        /// good list.
        private var recovering = false

        init(resolver: FerryResolver) {
            self.resolver = resolver
        }

        /// The next list that differs from the last one; nil once the task is cancelled.
        public mutating func next() async -> [FerryNode]? {
            while !Task.isCancelled {
                if watch == nil {
                    watch = resolver.registry.watch(service: resolver.service).makeAsyncIterator()
                }
                let nodes: [FerryNode]?
                do {
                    nodes = try await watch?.next()
                } catch {
                    nodes = nil
                }
                guard let nodes else {
                    // The watch failed or ended: keep the last list, watch again after a pause.
                    watch = nil
                    recovering = true
                    if Task.isCancelled { return nil }
                    do {
                        try await Task.sleep(for: resolver.retryDelay)
                    } catch {
                        return nil
                    }
                    continue
                }
                let selected = nodes.filter(resolver.includes)
                if recovering, selected.isEmpty, let last, !last.isEmpty {
                    // Right after an outage, "no nodes" most likely means "not registered again
                    // yet": keep calling the last good list until the registry lists nodes.
                    continue
                }
                recovering = false
                if selected == last { continue }
                last = selected
                return selected
            }
            return nil
        }
    }
}
