@testable import FerryMicro
import FerryTestSupport
import Testing

@Suite("Load balancers", .timeLimit(.minutes(1)))
struct BalancerTests {
    static let peer = FerryPeer(logger: quietLogger())

    static func endpoints(_ count: Int, weights: [Int]? = nil, firstPort: Int = 1) -> [Endpoint] {
        (0..<count).map { index in
            let node = FerryNode(
                service: "s", address: .tcp(host: "10.0.0.1", port: firstPort + index), weight: weights?[index] ?? FerryNode.defaultWeight)
            return Endpoint(node: node, dialler: NodeDialler(peer: peer), poolSize: 1, breaker: nil)
        }
    }

    /// How often each endpoint is picked in `rounds` picks.
    static func counts(_ balancer: any Balancer, _ endpoints: [Endpoint], rounds: Int, key: (Int) -> String? = { _ in nil }) -> [Int] {
        let set = EndpointSet(generation: 1, endpoints: endpoints)
        var counts = Array(repeating: 0, count: endpoints.count)
        for round in 0..<rounds {
            let chosen = balancer.pick(from: endpoints, hashKey: key(round), all: set)
            counts[endpoints.firstIndex { $0 === chosen }!] += 1
        }
        return counts
    }

    @Test("round robin spreads calls evenly, in turn")
    func roundRobin() {
        let endpoints = Self.endpoints(3)
        let balancer = FerryLoadBalancer.roundRobin.makeBalancer()
        let set = EndpointSet(generation: 1, endpoints: endpoints)
        let firstSix = (0..<6).map { _ in balancer.pick(from: endpoints, hashKey: nil, all: set).key }
        #expect(firstSix == [0, 1, 2, 0, 1, 2].map { endpoints[$0].key })
        #expect(Self.counts(balancer, endpoints, rounds: 300) == [100, 100, 100])
    }

    @Test("smooth weighted round robin picks in proportion to weight, interleaved")
    func weightedRoundRobin() {
        let endpoints = Self.endpoints(3, weights: [5, 1, 1])
        let balancer = FerryLoadBalancer.weightedRoundRobin.makeBalancer()
        let set = EndpointSet(generation: 1, endpoints: endpoints)
        let cycle = (0..<7).map { _ in
            let chosen = balancer.pick(from: endpoints, hashKey: nil, all: set)
            return endpoints.firstIndex { $0 === chosen }!
        }
        #expect(cycle == [0, 0, 1, 0, 2, 0, 0])  // nginx's sequence for 5, 1, 1
        #expect(Self.counts(balancer, endpoints, rounds: 700) == [500, 100, 100])

        // Weights below 1 count as 1; proportions hold over a subset of candidates too.
        let mixed = Self.endpoints(3, weights: [3, 0, 1], firstPort: 10)
        let subset = [mixed[0], mixed[2]]
        let fresh = FerryLoadBalancer.weightedRoundRobin.makeBalancer()
        let all = EndpointSet(generation: 1, endpoints: mixed)
        var picks = [0, 0]
        for _ in 0..<400 {
            picks[fresh.pick(from: subset, hashKey: nil, all: all) === subset[0] ? 0 : 1] += 1
        }
        #expect(picks == [300, 100])
        #expect(Self.counts(fresh, mixed, rounds: 500) == [300, 100, 100])
    }

    @Test("random picks every endpoint about equally")
    func random() {
        let counts = Self.counts(FerryLoadBalancer.random.makeBalancer(), Self.endpoints(3), rounds: 3000)
        for count in counts { #expect((800...1200).contains(count), "\(counts)") }
    }

    @Test("power of two choices avoids the endpoint with more calls in flight, then the slower one")
    func powerOfTwoChoices() {
        let endpoints = Self.endpoints(3)
        let now = ContinuousClock.now
        // Endpoint 0 has five calls in flight.
        for _ in 0..<5 { _ = endpoints[0].admit(at: now) }
        // Endpoint 1 answers in 50 ms, endpoint 2 in 1 ms.
        for (endpoint, latency) in [(endpoints[1], Duration.milliseconds(50)), (endpoints[2], .milliseconds(1))] {
            let admission = endpoint.admit(at: now)!
            _ = endpoint.finish(admission, verdict: .success, latency: latency, at: now)
        }
        let counts = Self.counts(FerryLoadBalancer.powerOfTwoChoices.makeBalancer(), endpoints, rounds: 3000)
        // Any pair holding endpoint 0 prefers the other; the pair (1, 2) prefers 2.
        #expect(counts[0] == 0, "\(counts)")
        #expect(counts[1] > 500 && counts[2] > counts[1] + 500, "\(counts)")
        #expect(FerryLoadBalancer.defaults == .powerOfTwoChoices)
    }

    @Test("consistent hash is sticky, and a new endpoint takes only its share of keys")
    func consistentHash() {
        let five = Self.endpoints(5)
        let balancer = FerryLoadBalancer.consistentHash().makeBalancer()
        let before = EndpointSet(generation: 1, endpoints: five)
        let keys = (0..<2000).map { "user-\($0)" }
        let owners = keys.map { balancer.pick(from: five, hashKey: $0, all: before).key }
        // Sticky: the same key, the same endpoint, and another balancer (another process) agrees.
        let other = FerryLoadBalancer.consistentHash().makeBalancer()
        #expect(keys.map { balancer.pick(from: five, hashKey: $0, all: before).key } == owners)
        #expect(keys.map { other.pick(from: five, hashKey: $0, all: before).key } == owners)
        // Spread: every endpoint owns a fair part.
        for endpoint in five {
            let owned = owners.filter { $0 == endpoint.key }.count
            #expect((200...600).contains(owned), "\(endpoint.key) owns \(owned)")
        }

        let six = five + Self.endpoints(1, firstPort: 100)
        let after = EndpointSet(generation: 2, endpoints: six)
        let moved = zip(keys, owners).filter { key, owner in
            let now = balancer.pick(from: six, hashKey: key, all: after).key
            if now != owner {
                // A key that moves, moves to the new endpoint.
                #expect(now == six[5].key)
                return true
            }
            return false
        }.count
        #expect(moved > 100 && moved < 700, "moved \(moved) of 2000 keys")

        // When the owner cannot take the call, the next endpoint on the ring does, consistently.
        let key = keys[0]
        let owner = balancer.pick(from: six, hashKey: key, all: after)
        let rest = six.filter { $0 !== owner }
        let fallback = balancer.pick(from: rest, hashKey: key, all: after)
        #expect(fallback !== owner)
        #expect(balancer.pick(from: rest, hashKey: key, all: after) === fallback)
    }
}

extension FerryLoadBalancer {
    /// The balancer a default configuration uses.
    static var defaults: FerryLoadBalancer { FerryClient.Configuration().balancer }
}
