/// Two distinct candidates at random; the one with fewer calls in flight wins, and on a tie the
/// one with the lower latency average.
struct PowerOfTwoChoicesBalancer: Balancer {
    func pick(from candidates: [Endpoint], hashKey: String?, all: EndpointSet) -> Endpoint {
        let count = candidates.count
        if count == 1 { return candidates[0] }
        let first = Int.random(in: 0..<count)
        var second = Int.random(in: 0..<(count - 1))
        if second >= first { second += 1 }
        let a = candidates[first]
        let b = candidates[second]
        let loadA = a.load
        let loadB = b.load
        if loadA.inFlight != loadB.inFlight { return loadA.inFlight < loadB.inFlight ? a : b }
        return loadA.latency <= loadB.latency ? a : b
    }
}
