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
/// try await withFerryClient(service: "math", registry: registry) { math in
///     let sum: Int = try await math.call("/math/add", Add(a: 1, b: 2), options: .timeout(.seconds(1)))
/// }
/// ```
///
/// ## Running the client
///
/// The client's background work (the registry watch, and the dials of its session pools, which
/// outlive the call that started them) runs in ``run()``, as child tasks of it: cancelling
/// `run()` stops them and `run()` returns once they are done. Run it with
/// ``withFerryClient(service:registry:peer:configuration:isolation:_:)``, which scopes the client
/// to a closure, or as a swift-service-lifecycle `Service` in a `ServiceGroup`, whose graceful
/// shutdown stops it. A client runs once.
///
/// A call made before `run()` starts waits for it, and for the first list of nodes, within the
/// call's timeout (so starting `run()` and calling at once do not race); a call made once `run()`
/// was asked to stop fails at once with 1 "Client Closed".
///
/// Options (timeout, meta, codecs, filters) go unchanged to the session call of every attempt;
/// waiting for a dial is bounded by the same timeout. The client dials through the
/// ``FerryPeer`` it is given, so that peer's configuration applies to its sessions (dial
/// timeout, auth, heartbeats, redial, routes for pushes from the service back to the client).
/// Nodes are dialled over TCP or Unix sockets, with TLS when ``Configuration/tls`` is set.
///
/// A node that leaves the registry takes no new calls; its sessions close once the calls in
/// flight on them are answered. A node whose entry changes (weight, routes, …) gets a fresh
/// endpoint the same way.
///
/// Failures of the client itself, besides those of the session calls:
/// - **105 "No Endpoint"**: no node of the service serves the route.
/// - **503 "Circuit Open"**: nodes serve the route, but every one's circuit breaker is open.
/// - **408 "Timeout"**: the registry gave no list of nodes within the call's timeout (or
///   `run()` did not start within it).
/// - **1 "Client Closed"**: the client stopped (``close()``, or `run()` ended).
///
/// When retries and backup requests are used up, the call ends with its last attempt's reply
/// or failure.
public final class FerryClient: Sendable {
    /// The client's state, under one lock.
    struct Table {
        var endpoints = EndpointTable()
        /// Whether the first list has arrived.
        var resolved = false
        /// Calls waiting for the first list, by waiter ID.
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiterID: UInt64 = 0
        var run = RunState.notStarted
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
    /// The configuration's clock, read as `ContinuousClock` instants for the breakers.
    let clock: ClockReader
    let dialler: NodeDialler
    let table = Mutex(Table())
    /// Attempt and breaker metrics, and the span of each call's attempts.
    let instruments: ClientInstruments

    /// Creates a client of `service`; it calls once ``run()`` runs (see
    /// ``withFerryClient(service:registry:peer:configuration:isolation:_:)``).
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

    init(service: String?, registry: any FerryRegistry, peer: FerryPeer, configuration: Configuration) {
        self.service = service
        self.registry = registry
        self.peer = peer
        self.configuration = configuration
        self.balancer = configuration.balancer.makeBalancer()
        self.dialler = NodeDialler(peer: peer, tls: configuration.tls, serverHostname: configuration.tlsServerHostname)
        self.budget = RetryBudget(
            ratio: configuration.retry.budgetRatio, minimumPerSecond: configuration.retry.minimumRetriesPerSecond, clock: configuration.clock)
        self.clock = ClockReader(configuration.clock)
        var logger = peer.logger
        logger[metadataKey: "service"] = "\(service ?? "*")"
        self.logger = logger
        self.instruments = ClientInstruments(service: service, observability: peer.configuration.observability)
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
        table.withLock { $0.endpoints.set.endpoints }.map(\.status)
    }

    // MARK: Endpoints

    /// The current endpoints once the first list has arrived; nil before (the caller then waits
    /// with ``currentEndpoints(timeout:)``).
    func readyEndpoints() throws -> EndpointSet? {
        try table.withLock { table in
            guard table.run.isAccepting else { throw Self.closedStatus }
            return table.resolved ? table.endpoints.set : nil
        }
    }

    /// The current endpoints, after waiting (at most `timeout`) for ``run()`` and the first list.
    func currentEndpoints(timeout: Duration?) async throws -> EndpointSet {
        if let ready = try readyEndpoints() { return ready }
        let limit = timeout ?? peer.configuration.defaultCallTimeout
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitUntilResolved() }
            group.addTask { try? await Task.sleep(for: limit) }
            await group.next()
            group.cancelAll()
        }
        let (ready, notStarted) = try table.withLock { table in
            guard table.run.isAccepting else { throw Self.closedStatus }
            return (table.resolved ? table.endpoints.set : nil, table.run.isNotStarted)
        }
        if let ready { return ready }
        if Task.isCancelled { throw FerryStatus(.cancelled, "Cancelled", cause: "the calling task was cancelled") }
        if notStarted {
            throw FerryStatus(.timedOut, "Timeout", cause: "the client's run() did not start within \(limit) (use withFerryClient, or run the client in a ServiceGroup)")
        }
        throw FerryStatus(.timedOut, "Timeout", cause: "no node list from the registry within \(limit)")
    }

    /// The current endpoints, without waiting for the first list.
    var snapshot: EndpointSet {
        table.withLock { $0.endpoints.set }
    }

    /// Suspends until the first list has arrived, the client stops, or the task is cancelled.
    private func waitUntilResolved() async {
        let id = table.withLock { table in
            table.nextWaiterID &+= 1
            return table.nextWaiterID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let wait: Bool = table.withLock { table in
                    if table.resolved || !table.run.isAccepting || Task.isCancelled { return false }
                    table.waiters[id] = continuation
                    return true
                }
                if !wait { continuation.resume() }
            }
        } onCancel: {
            table.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }

    /// The calls waiting for ``run()`` or the first list.
    var waitingCallCount: Int {
        table.withLock { $0.waiters.count }
    }

    /// Makes the endpoint table match `nodes`: new nodes get endpoints, changed nodes get new
    /// endpoints, and the endpoints of nodes that left are retired (their sessions close once
    /// their calls in flight are done).
    func apply(_ nodes: [FerryNode]) async {
        let update: (change: EndpointTable.Change, waiters: [CheckedContinuation<Void, Never>])? = table.withLock { table in
            guard table.run.isAccepting else { return nil }
            let change = table.endpoints.apply(nodes) { node in
                Endpoint(node: node, dialler: dialler, poolSize: configuration.poolSize, breaker: configuration.breaker)
            }
            table.resolved = true
            defer { table.waiters = [:] }
            return (change, Array(table.waiters.values))
        }
        guard let update else { return }
        for waiter in update.waiters { waiter.resume() }
        let (retired, added) = (update.change.retired, update.change.added)
        if !added.isEmpty || !retired.isEmpty {
            logger.info("endpoints changed", metadata: [
                "added": "\(added.map(\.address.description))",
                "removed": "\(retired.map(\.node.address.description))",
                "count": "\(nodes.count)",
            ])
        }
        for endpoint in retired where endpoint.retire() {
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
