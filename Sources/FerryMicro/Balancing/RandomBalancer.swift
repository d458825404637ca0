/// A candidate chosen uniformly at random.
struct RandomBalancer: Balancer {
    func pick(from candidates: [Endpoint], hashKey: String?, all: EndpointSet) -> Endpoint {
        candidates.randomElement()!
    }
}
