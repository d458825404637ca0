/// The endpoints of a client at one moment, with a generation that changes whenever the set
/// does (balancers that precompute over the set, like the hash ring, key their caches on it).
struct EndpointSet: Sendable {
    var generation: UInt64
    var endpoints: [Endpoint]

    static let empty = EndpointSet(generation: 0, endpoints: [])
}

/// A client's endpoints by node, and how a new list of nodes changes them: new nodes get
/// endpoints, changed nodes get new endpoints, and the endpoints of nodes that left are retired.
struct EndpointTable {
    /// The current endpoints.
    private(set) var set = EndpointSet.empty
    private var byKey: [String: Endpoint] = [:]

    /// What ``apply(_:makeEndpoint:)`` changed.
    struct Change {
        /// Endpoints no longer in the table: their sessions close once their calls are done.
        var retired: [Endpoint]
        /// Nodes that got a new endpoint.
        var added: [FerryNode]
    }

    /// Makes the table match `nodes`, keeping the endpoint of every node that did not change.
    mutating func apply(_ nodes: [FerryNode], makeEndpoint: (FerryNode) -> Endpoint) -> Change {
        var next: [String: Endpoint] = [:]
        var list: [Endpoint] = []
        var added: [FerryNode] = []
        for node in nodes where next[node.id] == nil {
            let endpoint: Endpoint
            if let existing = byKey[node.id], existing.node == node {
                endpoint = existing
            } else {
                endpoint = makeEndpoint(node)
                added.append(node)
            }
            next[node.id] = endpoint
            list.append(endpoint)
        }
        let retired = set.endpoints.filter { next[$0.key] !== $0 }
        if !retired.isEmpty || !added.isEmpty || list.map(\.key) != set.endpoints.map(\.key) {
            set = EndpointSet(generation: set.generation &+ 1, endpoints: list)
            byKey = next
        }
        return Change(retired: retired, added: added)
    }

    /// Empties the table and returns the endpoints it held.
    mutating func removeAll() -> [Endpoint] {
        let endpoints = set.endpoints
        set = EndpointSet(generation: set.generation &+ 1, endpoints: [])
        byKey = [:]
        return endpoints
    }
}
