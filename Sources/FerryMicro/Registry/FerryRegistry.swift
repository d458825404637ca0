/// Where nodes announce themselves and clients find them.
///
/// ``FerryStaticRegistry`` keeps nodes in memory (the embedded default); a distributed registry
/// (etcd) implements the same protocol. A node registers when it starts serving and deregisters
/// first when it stops, before it drains:
///
/// ```swift
/// let node = FerryNode(service: "math", address: listener.address, router: peer.router)
/// try await registry.register(node)
/// // … on shutdown (FerryPeer.Hooks.onShutdown):
/// try await registry.deregister(node)
/// ```
///
/// Clients rarely use a registry directly: ``FerryResolver`` turns a watch into endpoint lists
/// and ``FerryClient`` calls through it.
///
/// A registry with background work (the etcd registry keeps leases alive) runs it in a `run()`
/// of its own; reading (``nodes(service:)``, ``watch(service:)``) never needs it.
public protocol FerryRegistry: Sendable {
    /// The sequence ``watch(service:)`` returns.
    associatedtype Watch: AsyncSequence<[FerryNode], any Error>

    /// Announces `node`, replacing an earlier entry with the same service and address.
    ///
    /// A registry with leases keeps the entry alive while it runs (until ``deregister(_:)``),
    /// and registers it again if the lease is lost.
    func register(_ node: FerryNode) async throws

    /// Removes `node` (matched by service and address). Removing an unknown node is not an error.
    func deregister(_ node: FerryNode) async throws

    /// The nodes of `service` now; nil lists every node of every service.
    func nodes(service: String?) async throws -> [FerryNode]

    /// The nodes of `service` (nil: of every service) as they change.
    ///
    /// The sequence yields the full current list when it starts and again after every change; a
    /// consumer that falls behind may see only the newest list. It finishes with an error when
    /// the registry cannot be reached any more; ``FerryResolver`` then keeps the last list and
    /// watches again. The watch belongs to the task that iterates it: ending the iteration (or
    /// cancelling that task) stops it, and no work of it is left running.
    func watch(service: String?) -> Watch
}
