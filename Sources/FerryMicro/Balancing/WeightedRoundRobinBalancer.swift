import Synchronization

/// nginx's smooth weighted round robin: every pick raises each candidate's current weight by its
/// weight, takes the highest, and lowers that one by the sum of the weights. Over a cycle each
/// candidate is picked in proportion to its weight, interleaved rather than in runs.
final class WeightedRoundRobinBalancer: Balancer {
    private struct State {
        var current: [ObjectIdentifier: Int] = [:]
        var generation: UInt64 = 0
    }
    private let state = Mutex(State())

    func pick(from candidates: [Endpoint], hashKey: String?, all: EndpointSet) -> Endpoint {
        if candidates.count == 1 { return candidates[0] }
        return state.withLock { state in
            if state.generation != all.generation {
                // Forget endpoints that left.
                let present = Set(all.endpoints.map(ObjectIdentifier.init))
                state.current = state.current.filter { present.contains($0.key) }
                state.generation = all.generation
            }
            var total = 0
            var best = candidates[0]
            var bestWeight = Int.min
            for endpoint in candidates {
                let id = ObjectIdentifier(endpoint)
                let weight = endpoint.weight
                let raised = state.current[id, default: 0] + weight
                state.current[id] = raised
                total += weight
                if raised > bestWeight {
                    best = endpoint
                    bestWeight = raised
                }
            }
            state.current[ObjectIdentifier(best)] = bestWeight - total
            return best
        }
    }
}
