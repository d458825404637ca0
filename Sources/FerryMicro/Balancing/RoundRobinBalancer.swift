import Synchronization

/// Each candidate in turn.
final class RoundRobinBalancer: Balancer {
    private let counter = Atomic<UInt64>(0)

    func pick(from candidates: [Endpoint], hashKey: String?, all: EndpointSet) -> Endpoint {
        let turn = counter.wrappingAdd(1, ordering: .relaxed).oldValue
        return candidates[Int(turn % UInt64(candidates.count))]
    }
}
