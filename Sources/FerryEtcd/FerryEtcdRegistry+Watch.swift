extension FerryEtcdRegistry {
    /// The nodes under a service prefix as they change: see ``FerryEtcdRegistry/watch(service:)``.
    ///
    /// The first `next()` reads the current nodes and yields them; the following ones follow an
    /// etcd watch from the revision read, and yield the whole list after each batch of changes.
    /// All of it runs in the iterating task.
    public struct Watch: AsyncSequence, Sendable {
        /// The nodes, sorted by key.
        public typealias Element = [FerryNode]
        /// etcd could not be reached, or the watch broke.
        public typealias Failure = any Error

        let registry: FerryEtcdRegistry
        let servicePrefix: String

        /// Reads the nodes on its first `next()`.
        public func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(registry: registry, servicePrefix: servicePrefix)
        }

        /// Iterates a ``FerryEtcdRegistry/Watch``.
        public struct AsyncIterator: AsyncIteratorProtocol {
            /// etcd could not be reached, or the watch broke.
            public typealias Failure = any Error

            private let registry: FerryEtcdRegistry
            private let servicePrefix: String
            /// The nodes now, by key.
            private var nodes: [String: FerryNode] = [:]
            /// The changes since the first read, once it is done.
            private var changes: FerryEtcdClient.Watch.AsyncIterator?

            init(registry: FerryEtcdRegistry, servicePrefix: String) {
                self.registry = registry
                self.servicePrefix = servicePrefix
            }

            /// The next list of nodes; throws when etcd cannot be reached or the watch breaks.
            public mutating func next() async throws -> [FerryNode]? {
                guard changes != nil else {
                    let start = try await registry.client.range(servicePrefix, prefix: true)
                    for value in start.values {
                        if let node = registry.decode(value) { nodes[value.key] = node }
                    }
                    changes = registry.client.watch(prefix: servicePrefix, fromRevision: start.revision + 1).makeAsyncIterator()
                    return sortedNodes
                }
                guard let batch = try await changes!.next() else { return nil }
                for event in batch.events {
                    switch event.kind {
                    case .put: nodes[event.keyValue.key] = registry.decode(event.keyValue)
                    case .delete: nodes[event.keyValue.key] = nil
                    }
                }
                return sortedNodes
            }

            private var sortedNodes: [FerryNode] {
                nodes.sorted { $0.key < $1.key }.map(\.value)
            }
        }
    }
}
