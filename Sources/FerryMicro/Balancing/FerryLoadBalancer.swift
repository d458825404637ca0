/// How ``FerryClient`` chooses among the endpoints that can take a call. Endpoints whose circuit
/// breaker is open, and endpoints a call already tried, are never offered to the balancer.
///
/// ```swift
/// var configuration = FerryClient.Configuration()
/// configuration.balancer = .consistentHash()
/// let client = FerryClient(service: "chat", registry: registry, configuration: configuration)
/// let room: Room = try await client.call("/chat/join", join, as: Room.self, hashKey: userID)
/// ```
public struct FerryLoadBalancer: Hashable, Sendable, CustomStringConvertible {
    enum Kind: Hashable, Sendable {
        case roundRobin
        case weightedRoundRobin
        case random
        case powerOfTwoChoices
        case consistentHash(virtualNodes: Int)
    }

    let kind: Kind

    /// Each endpoint in turn.
    public static let roundRobin = FerryLoadBalancer(kind: .roundRobin)

    /// Each endpoint in proportion to its ``FerryNode/weight``, interleaved smoothly (nginx's
    /// smooth weighted round robin: weights 5, 1, 1 give `a a b a c a a`).
    public static let weightedRoundRobin = FerryLoadBalancer(kind: .weightedRoundRobin)

    /// An endpoint chosen uniformly at random.
    public static let random = FerryLoadBalancer(kind: .random)

    /// The default: two endpoints chosen at random, and of those the one with fewer calls in
    /// flight from this client; on a tie, the one with the lower moving average of reply
    /// latency. Cheap, and it steers away from slow or overloaded nodes.
    public static let powerOfTwoChoices = FerryLoadBalancer(kind: .powerOfTwoChoices)

    /// The endpoint owning the call's `hashKey` on a hash ring with `virtualNodes` points per
    /// endpoint: calls with the same key stick to one endpoint, and adding or removing an
    /// endpoint moves only the keys it gains or loses. When that endpoint cannot take the call
    /// (breaker open, already tried), the next one clockwise on the ring does. Calls without a
    /// key go to a random endpoint. The hash is stable across processes, so every client maps a
    /// key to the same node.
    public static func consistentHash(virtualNodes: Int = 160) -> FerryLoadBalancer {
        FerryLoadBalancer(kind: .consistentHash(virtualNodes: max(virtualNodes, 1)))
    }

    public var description: String {
        switch kind {
        case .roundRobin: "roundRobin"
        case .weightedRoundRobin: "weightedRoundRobin"
        case .random: "random"
        case .powerOfTwoChoices: "powerOfTwoChoices"
        case .consistentHash(let virtualNodes): "consistentHash(virtualNodes: \(virtualNodes))"
        }
    }

    /// A new balancer with its own state.
    func makeBalancer() -> any Balancer {
        switch kind {
        case .roundRobin: RoundRobinBalancer()
        case .weightedRoundRobin: WeightedRoundRobinBalancer()
        case .random: RandomBalancer()
        case .powerOfTwoChoices: PowerOfTwoChoicesBalancer()
        case .consistentHash(let virtualNodes): ConsistentHashBalancer(virtualNodes: virtualNodes)
        }
    }
}
