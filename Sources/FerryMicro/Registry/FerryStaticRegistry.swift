import Synchronization

/// A registry held in memory: a fixed list given at creation, plus nodes registered in the same
/// process. Watchers see every change at once.
///
/// ```swift
/// let registry = FerryStaticRegistry(nodes: [
///     FerryNode(service: "math", address: .tcp(host: "10.0.0.5", port: 9090)),
///     FerryNode(service: "math", address: .tcp(host: "10.0.0.6", port: 9090)),
/// ])
/// try await withFerryClient(service: "math", registry: registry) { math in … }
/// ```
///
/// Entries have no lease: they stay until deregistered.
public final class FerryStaticRegistry: FerryRegistry {
    private struct Watcher {
        var service: String?
        var continuation: AsyncThrowingStream<[FerryNode], any Error>.Continuation
    }

    private struct State {
        /// Every node in registration order.
        var nodes: [FerryNode] = []
        var watchers: [UInt64: Watcher] = [:]
        var nextWatcherID: UInt64 = 0

        func nodes(of service: String?) -> [FerryNode] {
            guard let service else { return nodes }
            return nodes.filter { $0.service == service }
        }

        /// Sends the current list to every watcher of `service` and to every watcher of all
        /// services. Runs under the lock so that lists reach each watcher in change order.
        func notify(service: String) {
            for watcher in watchers.values where watcher.service == nil || watcher.service == service {
                watcher.continuation.yield(nodes(of: watcher.service))
            }
        }
    }

    private let state: Mutex<State>

    /// Creates a registry holding `nodes`. Later entries with the same service and address as an
    /// earlier one replace it.
    public init(nodes: [FerryNode] = []) {
        var initial = State()
        for node in nodes { Self.upsert(node, into: &initial.nodes) }
        self.state = Mutex(initial)
    }

    /// Adds `node` (or replaces the entry with its service and address) and notifies watchers.
    public func register(_ node: FerryNode) async throws {
        state.withLock { state in
            Self.upsert(node, into: &state.nodes)
            state.notify(service: node.service)
        }
    }

    /// Removes the entry with `node`'s service and address, and notifies watchers if there was one.
    public func deregister(_ node: FerryNode) async throws {
        state.withLock { state in
            let before = state.nodes.count
            state.nodes.removeAll { $0.service == node.service && $0.address == node.address }
            if state.nodes.count != before { state.notify(service: node.service) }
        }
    }

    /// The nodes of `service` (nil: all), in registration order.
    public func nodes(service: String?) async throws -> [FerryNode] {
        state.withLock { $0.nodes(of: service) }
    }

    /// The nodes of `service` (nil: all) now and after every change; never fails.
    public func watch(service: String?) -> AsyncThrowingStream<[FerryNode], any Error> {
        let (stream, continuation) = AsyncThrowingStream<[FerryNode], any Error>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id: UInt64 = state.withLock { state in
            state.nextWatcherID &+= 1
            state.watchers[state.nextWatcherID] = Watcher(service: service, continuation: continuation)
            continuation.yield(state.nodes(of: service))
            return state.nextWatcherID
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.watchers.removeValue(forKey: id) }
        }
        return stream
    }

    /// The number of active watches; a finished iteration no longer counts.
    var watcherCount: Int { state.withLock { $0.watchers.count } }

    private static func upsert(_ node: FerryNode, into nodes: inout [FerryNode]) {
        if let index = nodes.firstIndex(where: { $0.service == node.service && $0.address == node.address }) {
            nodes[index] = node
        } else {
            nodes.append(node)
        }
    }
}
