import Logging
import NIOCore
import SwiftProtobuf
import Synchronization

/// Calls a service, not an address: finds its nodes in a registry, spreads calls over them with
/// a load balancer, keeps a small pool of sessions to each, skips unhealthy nodes with circuit
/// breakers, sends calls that were not handled to another node within a retry budget, and can
/// send a backup request when a reply is late.
///
/// ```swift
/// let registry = FerryStaticRegistry(nodes: [
///     FerryNode(service: "math", address: .tcp(host: "10.0.0.5", port: 9090)),
///     FerryNode(service: "math", address: .tcp(host: "10.0.0.6", port: 9090)),
/// ])
/// let math = FerryClient(service: "math", registry: registry)
/// let sum: Int = try await math.call("/math/add", Add(a: 1, b: 2), options: .timeout(.seconds(1)))
/// await math.close()
/// ```
///
/// The client starts watching the registry on its first call, which waits for the first list
/// of nodes (at most the call's timeout). Options (timeout, meta, codecs, filters) go unchanged
/// to the session call of every attempt; waiting for a dial is bounded by the same timeout.
/// The client dials through the ``FerryPeer`` it is given, so that peer's configuration applies
/// to its sessions (dial timeout, auth, heartbeats, redial, routes for pushes from the service
/// back to the client). Nodes are dialled over TCP or Unix sockets, with TLS when
/// ``Configuration/tls`` is set.
///
/// A node that leaves the registry takes no new calls; its sessions close once the calls in
/// flight on them are answered. A node whose entry changes (weight, routes, …) gets a fresh
/// endpoint the same way.
///
/// Failures of the client itself, besides those of the session calls:
/// - **105 "No Endpoint"**: no node of the service serves the route.
/// - **503 "Circuit Open"**: nodes serve the route, but every one's circuit breaker is open.
/// - **408 "Timeout"**: the registry gave no list of nodes within the call's timeout.
/// - **1 "Client Closed"**: ``close()`` was called.
///
/// When retries and backup requests are used up, the call ends with its last attempt's reply
/// or failure.
public final class FerryClient: Sendable {
    private enum Phase {
        case idle
        case watching(Task<Void, Never>)
        case closed
    }

    private struct Table {
        var set = EndpointSet.empty
        var byKey: [String: Endpoint] = [:]
        /// Whether the first list has arrived.
        var resolved = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiterID: UInt64 = 0
        var phase = Phase.idle
    }

    /// The service called; nil for a client that calls any service by route.
    public let service: String?
    /// The registry the nodes come from.
    public let registry: any FerryRegistry
    /// The peer the client dials through.
    public let peer: FerryPeer
    /// The client's settings.
    public let configuration: Configuration

    let logger: Logger
    let balancer: any Balancer
    let budget: RetryBudget
    let dialler: NodeDialler
    private let table = Mutex(Table())

    /// Creates a client of `service`.
    ///
    /// - Parameters:
    ///   - service: The service name nodes register under.
    ///   - registry: Where the nodes are found.
    ///   - peer: The peer that dials the nodes; its configuration applies to every session.
    ///     The client closes the sessions it opened, never the peer.
    ///   - configuration: Balancer, pool, breaker, retry and backup settings.
    public convenience init(
        service: String, registry: any FerryRegistry, peer: FerryPeer = FerryPeer(),
        configuration: Configuration = Configuration()
    ) {
        self.init(service: Optional(service), registry: registry, peer: peer, configuration: configuration)
    }

    /// Creates a client of every service in `registry`: each call goes to a node, of whatever
    /// service, that lists the call's route in ``FerryNode/routes``.
    public convenience init(registry: any FerryRegistry, peer: FerryPeer = FerryPeer(), configuration: Configuration = Configuration()) {
        self.init(service: nil, registry: registry, peer: peer, configuration: configuration)
    }

    private init(service: String?, registry: any FerryRegistry, peer: FerryPeer, configuration: Configuration) {
        self.service = service
        self.registry = registry
        self.peer = peer
        self.configuration = configuration
        self.balancer = configuration.balancer.makeBalancer()
        self.dialler = NodeDialler(peer: peer, tls: configuration.tls, serverHostname: configuration.tlsServerHostname)
        self.budget = RetryBudget(ratio: configuration.retry.budgetRatio, minimumPerSecond: configuration.retry.minimumRetriesPerSecond)
        var logger = peer.logger
        logger[metadataKey: "service"] = "\(service ?? "*")"
        self.logger = logger
    }

    deinit {
        if case .watching(let task) = table.withLock({ $0.phase }) { task.cancel() }
    }

    // MARK: Calls

    /// Calls `route` on a node of the service with `args` and decodes the reply as `Reply`.
    ///
    /// Any non-OK reply status, and any failure, is thrown as ``FerryStatus``.
    ///
    /// - Parameters:
    ///   - options: Sent unchanged with every attempt.
    ///   - hashKey: The key for ``FerryLoadBalancer/consistentHash(virtualNodes:)`` (a user ID
    ///     for sticky sessions); other balancers ignore it.
    public func call<Args, Reply>(
        _ route: String, _ args: Args, as type: Reply.Type = Reply.self,
        options: FerryCallOptions = FerryCallOptions(), hashKey: String? = nil
    ) async throws -> Reply {
        try await callForReply(route, args, options: options, hashKey: hashKey).decode(type)
    }

    /// Calls `route` on a node of the service with `args` and returns the whole reply (status,
    /// meta, body, cost) without throwing for a non-OK status. A `ByteBuffer` argument is sent
    /// as is with the options' codec id. Failures on this side are thrown as ``FerryStatus``.
    public func callForReply<Args>(
        _ route: String, _ args: Args, options: FerryCallOptions = FerryCallOptions(), hashKey: String? = nil
    ) async throws -> FerryReply {
        let codec = options.codec ?? peer.configuration.defaultCodec
        let body = Args.self == Void.self ? ByteBuffer() : try encodeBody { try peer.configuration.codecs.encode(args, codec: codec) }
        return try await callForReply(route, body: body, codec: codec, options: options, hashKey: hashKey)
    }

    /// Calls `route` with a protobuf message and decodes the reply as the protobuf message
    /// `Reply`: the same as the unconstrained ``call(_:_:as:options:hashKey:)``, with no search
    /// for the types' conformances per call when the body codec is ``FerryProtobufCodec``.
    public func call<Args: SwiftProtobuf.Message, Reply: SwiftProtobuf.Message>(
        _ route: String, _ args: Args, as type: Reply.Type = Reply.self,
        options: FerryCallOptions = FerryCallOptions(), hashKey: String? = nil
    ) async throws -> Reply {
        try await callForReply(route, args, options: options, hashKey: hashKey).decode(type)
    }

    /// Calls `route` with a protobuf message and returns the whole reply: the same as the
    /// unconstrained ``callForReply(_:_:options:hashKey:)``, with no search for the message
    /// type's conformance per call when the body codec is ``FerryProtobufCodec``.
    public func callForReply<Args: SwiftProtobuf.Message>(
        _ route: String, _ args: Args, options: FerryCallOptions = FerryCallOptions(), hashKey: String? = nil
    ) async throws -> FerryReply {
        let codec = options.codec ?? peer.configuration.defaultCodec
        let body = try encodeBody { try peer.configuration.codecs.encode(args, codec: codec) }
        return try await callForReply(route, body: body, codec: codec, options: options, hashKey: hashKey)
    }

    private func callForReply(
        _ route: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions, hashKey: String?
    ) async throws -> FerryReply {
        let reply = try await perform(
            route: route, hashKey: hashKey, timeout: options.timeout, backupDelay: configuration.backupDelay,
            operation: { session in try await session.call(route, body: body, codec: codec, options: options) })
        return reply!
    }

    /// Pushes `args` to `route` on one node of the service; returns once it is written. A push
    /// that could not be written (connection lost, dial failed) is sent to another node within
    /// the retry budget.
    public func push<Args>(
        _ route: String, _ args: Args, options: FerryCallOptions = FerryCallOptions(), hashKey: String? = nil
    ) async throws {
        let codec = options.codec ?? peer.configuration.defaultCodec
        let body = Args.self == Void.self ? ByteBuffer() : try encodeBody { try peer.configuration.codecs.encode(args, codec: codec) }
        try await push(route, body: body, codec: codec, options: options, hashKey: hashKey)
    }

    /// Pushes a protobuf message to `route`: the same as the unconstrained
    /// ``push(_:_:options:hashKey:)``, with no search for the message type's conformance per
    /// push when the body codec is ``FerryProtobufCodec``.
    public func push<Args: SwiftProtobuf.Message>(
        _ route: String, _ args: Args, options: FerryCallOptions = FerryCallOptions(), hashKey: String? = nil
    ) async throws {
        let codec = options.codec ?? peer.configuration.defaultCodec
        let body = try encodeBody { try peer.configuration.codecs.encode(args, codec: codec) }
        try await push(route, body: body, codec: codec, options: options, hashKey: hashKey)
    }

    private func push(
        _ route: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions, hashKey: String?
    ) async throws {
        _ = try await perform(
            route: route, hashKey: hashKey, timeout: options.timeout, backupDelay: nil,
            operation: { session in
                try await session.push(route, body: body, codec: codec, options: options)
                return nil
            })
    }

    /// What the client knows about each current endpoint.
    public var endpoints: [EndpointStatus] {
        table.withLock { $0.set.endpoints }.map(\.status)
    }

    /// Stops watching the registry and closes every session the client opened; calls in flight
    /// fail with 102 and later calls with 1 "Client Closed". The peer stays open.
    public func close() async {
        let (task, endpoints, waiters) = table.withLock { table in
            var task: Task<Void, Never>?
            if case .watching(let watching) = table.phase { task = watching }
            table.phase = .closed
            let endpoints = table.set.endpoints
            table.set = EndpointSet(generation: table.set.generation &+ 1, endpoints: [])
            table.byKey = [:]
            defer { table.waiters = [:] }
            return (task, endpoints, Array(table.waiters.values))
        }
        task?.cancel()
        for waiter in waiters { waiter.resume() }
        for endpoint in endpoints {
            _ = endpoint.retire()
            await endpoint.pool.close()
        }
    }

    // MARK: Endpoints

    /// The current endpoints once the first list has arrived; nil before (the caller then waits
    /// with ``currentEndpoints(timeout:)``).
    func readyEndpoints() throws -> EndpointSet? {
        try table.withLock { table in
            if case .closed = table.phase { throw Self.closedStatus }
            return table.resolved ? table.set : nil
        }
    }

    /// The current endpoints, after waiting (at most `timeout`) for the first list.
    func currentEndpoints(timeout: Duration?) async throws -> EndpointSet {
        enum Readiness {
            case ready(EndpointSet)
            case closed
            case waiting
        }
        func check() -> Readiness {
            table.withLock { table in
                if case .closed = table.phase { return .closed }
                if table.resolved { return .ready(table.set) }
                startWatching(&table)
                return .waiting
            }
        }
        switch check() {
        case .ready(let set): return set
        case .closed: throw Self.closedStatus
        case .waiting: break
        }
        let limit = timeout ?? peer.configuration.defaultCallTimeout
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitUntilResolved() }
            group.addTask { try? await Task.sleep(for: limit) }
            await group.next()
            group.cancelAll()
        }
        switch check() {
        case .ready(let set): return set
        case .closed: throw Self.closedStatus
        case .waiting:
            if Task.isCancelled { throw FerryStatus(.cancelled, "Cancelled", cause: "the calling task was cancelled") }
            throw FerryStatus(.timedOut, "Timeout", cause: "no node list from the registry within \(limit)")
        }
    }

    /// The current endpoints, without waiting for the first list.
    var snapshot: EndpointSet {
        table.withLock { $0.set }
    }

    private func startWatching(_ table: inout Table) {
        guard case .idle = table.phase else { return }
        let resolver = FerryResolver(registry: registry, service: service, route: nil, retryDelay: configuration.resolverRetryDelay)
        table.phase = .watching(Task { [weak self] in
            for await nodes in resolver {
                guard let self else { return }
                await self.apply(nodes)
            }
        })
    }

    /// Suspends until the first list has arrived, the client closes, or the task is cancelled.
    private func waitUntilResolved() async {
        let id = table.withLock { table in
            table.nextWaiterID &+= 1
            return table.nextWaiterID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let wait: Bool = table.withLock { table in
                    if table.resolved || Task.isCancelled { return false }
                    if case .closed = table.phase { return false }
                    table.waiters[id] = continuation
                    return true
                }
                if !wait { continuation.resume() }
            }
        } onCancel: {
            table.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    /// Makes the endpoint table match `nodes`: new nodes get endpoints, changed nodes get new
    /// endpoints, and the endpoints of nodes that left are retired (their sessions close once
    /// their calls in flight are done).
    func apply(_ nodes: [FerryNode]) async {
        let update: (retired: [Endpoint], added: [FerryNode], waiters: [CheckedContinuation<Void, Never>])? = table.withLock { table in
            if case .closed = table.phase { return nil }
            var byKey: [String: Endpoint] = [:]
            var list: [Endpoint] = []
            var added: [FerryNode] = []
            for node in nodes where byKey[node.id] == nil {
                let endpoint: Endpoint
                if let existing = table.byKey[node.id], existing.node == node {
                    endpoint = existing
                } else {
                    endpoint = Endpoint(node: node, dialler: dialler, poolSize: configuration.poolSize, breaker: configuration.breaker)
                    added.append(node)
                }
                byKey[node.id] = endpoint
                list.append(endpoint)
            }
            let retired = table.set.endpoints.filter { byKey[$0.key] !== $0 }
            let changed = !retired.isEmpty || !added.isEmpty || list.map(\.key) != table.set.endpoints.map(\.key)
            if changed {
                table.set = EndpointSet(generation: table.set.generation &+ 1, endpoints: list)
                table.byKey = byKey
            }
            table.resolved = true
            defer { table.waiters = [:] }
            return (retired, added, Array(table.waiters.values))
        }
        guard let update else { return }
        for waiter in update.waiters { waiter.resume() }
        if !update.added.isEmpty || !update.retired.isEmpty {
            logger.info("endpoints changed", metadata: [
                "added": "\(update.added.map(\.address.description))",
                "removed": "\(update.retired.map(\.node.address.description))",
                "count": "\(nodes.count)",
            ])
        }
        for endpoint in update.retired where endpoint.retire() {
            await endpoint.pool.close()
        }
    }

    // MARK: Helpers

    private func encodeBody(_ encode: () throws -> ByteBuffer) throws -> ByteBuffer {
        do {
            return try encode()
        } catch {
            throw FerryStatus(.badMessage, "Bad Message", cause: "cannot encode the body: \(error)")
        }
    }

    static var closedStatus: FerryStatus {
        FerryStatus(.invalidOperation, "Client Closed", cause: "the client was closed")
    }
}
