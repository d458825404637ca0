import Synchronization

/// The owner of the call's key on a hash ring over every endpoint of the client; when the owner
/// is not a candidate, the next candidate clockwise. Without a key, a random candidate.
final class ConsistentHashBalancer: Balancer {
    private struct Cache {
        var generation: UInt64
        var ring: HashRing
    }

    let virtualNodes: Int
    private let cache = Mutex<Cache?>(nil)

    init(virtualNodes: Int) {
        self.virtualNodes = virtualNodes
    }

    func pick(from candidates: [Endpoint], hashKey: String?, all: EndpointSet) -> Endpoint {
        guard let hashKey else { return candidates.randomElement()! }
        if candidates.count == 1 { return candidates[0] }
        let ring = ring(for: all)
        if candidates.count == all.endpoints.count,
            let owner = ring.first(from: hashKey, where: { _ in true })
        {
            return all.endpoints[owner]
        }
        let allowed = Set(candidates.map(ObjectIdentifier.init))
        guard let owner = ring.first(from: hashKey, where: { allowed.contains(ObjectIdentifier(all.endpoints[$0])) }) else {
            return candidates[0]
        }
        return all.endpoints[owner]
    }

    private func ring(for all: EndpointSet) -> HashRing {
        if let cached = cache.withLock({ $0 }), cached.generation == all.generation { return cached.ring }
        let ring = HashRing(members: all.endpoints.map(\.key), virtualNodes: virtualNodes)
        cache.withLock { $0 = Cache(generation: all.generation, ring: ring) }
        return ring
    }
}
