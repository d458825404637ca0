/// Chooses one endpoint for a call.
protocol Balancer: Sendable {
    /// One of `candidates` (never empty): the endpoints of `all` that may take this call.
    func pick(from candidates: [Endpoint], hashKey: String?, all: EndpointSet) -> Endpoint
}
