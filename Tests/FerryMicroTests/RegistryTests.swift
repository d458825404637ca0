import Foundation
@testable import FerryMicro
import FerryTestSupport
import Synchronization
import Testing

@Suite("Registry and resolver", .timeLimit(.minutes(1)))
struct RegistryTests {
    static func node(_ service: String, _ port: Int, routes: [String] = []) -> FerryNode {
        FerryNode(service: service, address: .tcp(host: "10.0.0.1", port: port), routes: routes)
    }

    @Test("a node round-trips through the documented JSON shape, and missing fields take defaults")
    func nodeJSON() throws {
        let node = FerryNode(
            service: "math", address: .tcp(host: "::1", port: 9090), routes: ["/math/add"], weight: 7,
            version: "1.2.0", metadata: ["zone": "a"])
        let data = try JSONEncoder().encode(node)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["address"] as? String == "[::1]:9090")
        #expect(object["service"] as? String == "math")
        #expect(object["weight"] as? Int == 7)
        #expect(try JSONDecoder().decode(FerryNode.self, from: data) == node)

        let minimal = try JSONDecoder().decode(FerryNode.self, from: Data(#"{"service":"s","address":"unix:/tmp/s.sock"}"#.utf8))
        #expect(minimal == FerryNode(service: "s", address: .unix(path: "/tmp/s.sock")))
        #expect(minimal.weight == FerryNode.defaultWeight)

        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(FerryNode.self, from: Data(#"{"service":"s","address":"nowhere"}"#.utf8))
        }
    }

    @Test("a node made from a router lists its routes once")
    func nodeFromRouter() {
        let router = FerryRouter()
        router.call("/a") { (_: String, _: FerryContext) in "" }
        router.push("/a") { (_: String, _: FerryContext) in }
        router.call("/b") { (_: String, _: FerryContext) in "" }
        let node = FerryNode(service: "s", address: .tcp(host: "h", port: 1), router: router)
        #expect(node.routes == ["/a", "/b"])
        #expect(node.serves("/a") && !node.serves("/c"))
        #expect(FerryNode(service: "s", address: .tcp(host: "h", port: 1)).serves("/anything"))
    }

    @Test("a static registry watch yields the list at once and after every change, per service")
    func staticWatch() async throws {
        let a = Self.node("math", 1)
        let b = Self.node("math", 2)
        let other = Self.node("chat", 3)
        let registry = FerryStaticRegistry(nodes: [a, other])
        var math = registry.watch(service: "math").makeAsyncIterator()
        var everything = registry.watch(service: nil).makeAsyncIterator()
        #expect(try await math.next() == [a])
        #expect(try await everything.next() == [a, other])

        try await registry.register(b)
        #expect(try await math.next() == [a, b])
        #expect(try await everything.next() == [a, other, b])

        var changed = b
        changed.weight = 5
        try await registry.register(changed)
        #expect(try await math.next() == [a, changed])
        #expect(try await everything.next() == [a, other, changed])

        try await registry.deregister(a)
        #expect(try await math.next() == [changed])
        #expect(try await everything.next() == [other, changed])

        // A change to another service reaches only the watchers of everything.
        try await registry.deregister(other)
        #expect(try await everything.next() == [changed])
        try await registry.deregister(Self.node("math", 99))  // unknown: no notification
        try await registry.register(a)
        #expect(try await math.next() == [changed, a])
        #expect(try await registry.nodes(service: "math") == [changed, a])
        #expect(try await registry.nodes(service: "chat") == [])
    }

    @Test("a finished watch is forgotten")
    func watchTermination() async throws {
        let registry = FerryStaticRegistry(nodes: [Self.node("math", 1)])
        let task = Task {
            for try await _ in registry.watch(service: "math") {}
        }
        #expect(await eventually { registry.watcherCount == 1 })
        task.cancel()
        #expect(await eventually { registry.watcherCount == 0 })
    }

    @Test("a resolver by route keeps the nodes that serve it, within a service or across services")
    func resolverByRoute() async throws {
        let add = Self.node("math", 1, routes: ["/math/add"])
        let both = Self.node("math", 2, routes: ["/math/add", "/math/mul"])
        let unlisted = Self.node("math", 3)
        let chat = Self.node("chat", 4, routes: ["/chat/say"])
        let registry = FerryStaticRegistry(nodes: [add, both, unlisted, chat])

        var mul = FerryResolver(registry: registry, service: "math", route: "/math/mul").makeAsyncIterator()
        #expect(await mul.next() == [both, unlisted])
        var anyMul = FerryResolver(registry: registry, route: "/math/mul").makeAsyncIterator()
        #expect(await anyMul.next() == [both])
        var service = FerryResolver(registry: registry, service: "math").makeAsyncIterator()
        #expect(await service.next() == [add, both, unlisted])

        // A change that does not touch the route's nodes yields nothing; one that does, yields.
        let mul2 = Self.node("chat", 5, routes: ["/math/mul"])
        try await registry.register(Self.node("math", 6, routes: ["/math/add"]))
        try await registry.register(mul2)
        #expect(await anyMul.next() == [both, mul2])
        try await registry.deregister(both)
        #expect(await mul.next() == [unlisted])
    }

    @Test("a resolver keeps the last good list through registry failures and resumes watching")
    func resolverSurvivesErrors() async throws {
        let first = [Self.node("math", 1)]
        let second = [Self.node("math", 1), Self.node("math", 2)]
        let registry = FlakyRegistry(script: [.nodes(first), .fail, .fail, .nodes(first), .nodes(second)])
        var resolver = FerryResolver(registry: registry, service: "math", retryDelay: .milliseconds(1)).makeAsyncIterator()
        #expect(await resolver.next() == first)
        // Two failed watches and an unchanged list later, the next element is the new list.
        #expect(await resolver.next() == second)
        #expect(registry.watches >= 4)
    }
}

/// A registry whose successive watches follow a script: each watch yields one list and then
/// stays open until the next step is due, or fails at once.
final class FlakyRegistry: FerryRegistry {
    enum Step: Sendable {
        case nodes([FerryNode])
        case fail
    }

    struct Failure: Error {}

    private let state: Mutex<(steps: [Step], watches: Int)>

    init(script: [Step]) {
        state = Mutex((script, 0))
    }

    var watches: Int { state.withLock { $0.watches } }

    func register(_ node: FerryNode) async throws {}
    func deregister(_ node: FerryNode) async throws {}
    func nodes(service: String?) async throws -> [FerryNode] { [] }

    func watch(service: String?) -> AsyncThrowingStream<[FerryNode], any Error> {
        let step: Step? = state.withLock { state in
            state.watches += 1
            return state.steps.isEmpty ? nil : state.steps.removeFirst()
        }
        let (stream, continuation) = AsyncThrowingStream<[FerryNode], any Error>.makeStream()
        switch step {
        case .nodes(let nodes):
            continuation.yield(nodes)
            // The watch "breaks" right after delivering, so the next step comes into play.
            continuation.finish(throwing: Failure())
        case .fail:
            continuation.finish(throwing: Failure())
        case nil:
            break  // stays open, silent
        }
        return stream
    }
}
