/// The endpoints of a client at one moment, with a generation that changes whenever the set
/// does (balancers that precompute over the set, like the hash ring, key their caches on it).
struct EndpointSet: Sendable {
    var generation: UInt64
    var endpoints: [Endpoint]

    static let empty = EndpointSet(generation: 0, endpoints: [])
}
