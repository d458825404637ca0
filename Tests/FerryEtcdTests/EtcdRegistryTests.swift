import Foundation
import Logging
import FerryTestSupport
import ServiceLifecycle
import Synchronization
import Testing

@testable import FerryEtcd

private func quietLogger() -> Logger { Logger(label: "ferry.test") { _ in SwiftLogNoOpLogHandler() } }

/// A server peer whose `/who` route answers its name.
private func startNode(_ name: String) async throws -> (peer: FerryPeer, node: FerryNode) {
    let peer = FerryPeer(logger: quietLogger())
    peer.router.call("/who") { (_: Void, _: FerryContext) in name }
    let listener = try await peer.listen(.tcp(host: "127.0.0.1", port: 0))
    return (peer, FerryNode(service: "who", address: listener.address, router: peer.router))
}

private final class StopFlag: Sendable {
    private let value = Mutex(false)
    func set() { value.withLock { $0 = true } }
    var isSet: Bool { value.withLock { $0 } }
}

private final class Tally: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    private let failures = Mutex<[String]>([])
    func record(_ name: String) { counts.withLock { $0[name, default: 0] += 1 } }
    /// Keeps the first few failures (a fast-failing loop must not fill memory).
    func fail(_ error: any Error) { failures.withLock { if $0.count < 10 { $0.append("\(error)") } } }
    var byNode: [String: Int] { counts.withLock { $0 } }
    /// Every call answered so far.
    var total: Int { counts.withLock { $0.values.reduce(0, +) } }
    /// Whether both nodes have answered calls.
    var reachedBothNodes: Bool { Set(byNode.keys) == ["a", "b"] }
    var failed: [String] { failures.withLock { $0 } }
    func reset() { counts.withLock { $0 = [:] } }
}

/// Keeps `callers` tasks calling `/who` until `stop` is set.
private func load(_ client: FerryClient, tally: Tally, callers: Int, until stop: StopFlag) async {
    await withTaskGroup(of: Void.self) { group in
        for _ in 0..<callers {
            group.addTask {
                while !stop.isSet {
                    do {
                        tally.record(try await client.call("/who", (), as: String.self, options: .timeout(.seconds(3))))
                    } catch {
                        tally.fail(error)
                        try? await Task.sleep(for: .milliseconds(20))
                    }
                }
            }
        }
    }
}

/// Whether `key` is deleted from etcd (its lease expired or it was deleted) within `limit`:
/// follows an etcd watch on the key rather than polling.
private func keyDisappears(_ key: String, from client: FerryEtcdClient, within limit: Duration) async throws -> Bool {
    let current = try await client.range(key)
    if current.values.isEmpty { return true }
    return try await withThrowingTaskGroup(of: Bool.self) { group in
        group.addTask {
            for try await batch in client.watch(prefix: key, fromRevision: current.revision + 1) {
                if batch.events.contains(where: { $0.kind == .delete && $0.keyValue.key == key }) { return true }
            }
            return false
        }
        group.addTask {
            try await Task.sleep(for: limit)
            return false
        }
        let first = try await group.next() ?? false
        group.cancelAll()
        return first
    }
}

extension RealEtcdTests {
    @Suite("etcd registry against a real etcd")
    struct EtcdRegistryTests {
        /// How the owner of a registry stops with it.
        enum OwnerStop: String, CaseIterable, CustomTestStringConvertible {
            /// The registry is released without ever running.
            case released
            /// The task running `run()` is cancelled (what a crash does to the renewals).
            case runCancelled
            /// The `withFerryEtcdRegistry` scope returns.
            case scopeReturned
            /// Its `ServiceGroup` shuts down gracefully.
            case gracefulShutdown

            var testDescription: String { rawValue }
        }

        @Test("once its owner stops, a registry renews no lease: its node leaves etcd within the TTL", arguments: OwnerStop.allCases)
        func noLeaseOutlivesTheOwner(_ stop: OwnerStop) async throws {
            let etcd = try EtcdProcess()
            defer { etcd.remove() }
            try await etcd.start()
            let client = FerryEtcdClient(endpoints: [etcd.endpoint])
            let node = FerryNode(service: "who", address: .tcp(host: "127.0.0.1", port: 1))
            let key: String
            switch stop {
            case .released:
                var registry: FerryEtcdRegistry? = FerryEtcdRegistry(client: client, ttl: 2, logger: quietLogger())
                try await registry!.register(node)
                key = registry!.key(of: node)
                weak let released = registry
                registry = nil
                #expect(released == nil)
            case .runCancelled:
                let registry = FerryEtcdRegistry(client: client, ttl: 2, logger: quietLogger())
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await registry.run() }
                    try await registry.register(node)
                    group.cancelAll()
                    try await group.waitForAll()
                }
                key = registry.key(of: node)
                // The registry lives on; only its run() renewed the lease.
                #expect(try await client.range(key).values.count == 1, "a cancelled run() does not deregister")
            case .scopeReturned:
                key = try await withFerryEtcdRegistry(client: client, ttl: 2, logger: quietLogger()) { registry in
                    try await registry.register(node)
                    return registry.key(of: node)
                }
                #expect(try await client.range(key).values.isEmpty, "the scope deregisters its nodes")
            case .gracefulShutdown:
                let registry = FerryEtcdRegistry(client: client, ttl: 2, logger: quietLogger())
                let services = ServiceGroup(configuration: .init(services: [registry], logger: quietLogger()))
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await services.run() }
                    try await registry.register(node)
                    await services.triggerGracefulShutdown()
                    try await group.waitForAll()
                }
                key = registry.key(of: node)
                #expect(try await client.range(key).values.isEmpty, "a graceful shutdown deregisters the nodes")
                await #expect(throws: FerryRunError.self) { try await registry.register(node) }
            }
            #expect(try await keyDisappears(key, from: client, within: .seconds(10)), "nothing may renew the lease once the owner stopped")
        }

        @Test("a node registers under its lease, is listed and watched, and deregisters at once")
        func registerWatchDeregister() async throws {
            let etcd = try EtcdProcess()
            defer { etcd.remove() }
            try await etcd.start()
            let (peer, node) = try await startNode("a")
            try await withFerryEtcdRegistry(client: FerryEtcdClient(endpoints: [etcd.endpoint]), ttl: 5, logger: quietLogger()) { registry in
                var updates = registry.watch(service: "who").makeAsyncIterator()
                #expect(try await updates.next() == [])
                try await registry.register(node)
                #expect(try await updates.next() == [node])
                #expect(try await registry.nodes(service: "who") == [node])
                let stored = try await registry.client.range(registry.key(of: node)).values.first
                #expect(stored.map { String(decoding: $0.value, as: UTF8.self).contains("\"service\":\"who\"") } == true)
                try await registry.deregister(node)
                #expect(try await updates.next() == [])
                #expect(try await registry.nodes(service: nil).isEmpty)
            }
            await peer.close()
        }

        @Test("a node that dies without deregistering leaves the registry within the TTL and traffic moves away")
        func leaseExpiryMovesTraffic() async throws {
            let etcd = try EtcdProcess()
            defer { etcd.remove() }
            try await etcd.start()
            let endpoints = [etcd.endpoint]
            let (peerA, nodeA) = try await startNode("a")
            let (peerB, nodeB) = try await startNode("b")
            let registryA = FerryEtcdRegistry(client: FerryEtcdClient(endpoints: endpoints), ttl: 2, logger: quietLogger())
            let clientRegistry = FerryEtcdRegistry(client: FerryEtcdClient(endpoints: endpoints), logger: quietLogger())
            try await withFerryEtcdRegistry(client: FerryEtcdClient(endpoints: endpoints), ttl: 2, logger: quietLogger()) { registryB in
                try await registryB.register(nodeB)
                try await withThrowingTaskGroup(of: Void.self) { nodeAProcess in
                    nodeAProcess.addTask { try await registryA.run() }
                    try await registryA.register(nodeA)
                    try await withFerryClient(service: "who", registry: clientRegistry, configuration: .init(balancer: .roundRobin)) { client in
                        let tally = Tally()
                        for _ in 0..<20 { tally.record(try await client.call("/who", (), as: String.self)) }
                        #expect(Set(tally.byNode.keys) == ["a", "b"])

                        // Node a crashes: no deregistration, its lease stops being renewed.
                        nodeAProcess.cancelAll()
                        try await nodeAProcess.waitForAll()
                        await peerA.close()
                        let died = ContinuousClock.now
                        #expect(try await keyDisappears(registryA.key(of: nodeA), from: clientRegistry.client, within: .seconds(6)), "node a should leave etcd within its 2 s TTL")
                        #expect(died.duration(to: .now) < .seconds(5))
                        tally.reset()
                        for _ in 0..<20 { tally.record(try await client.call("/who", (), as: String.self)) }
                        #expect(tally.byNode == ["b": 20])
                    }
                }
            }
            await peerB.close()
        }

        @Test("a node that deregisters first and then drains loses no call under load")
        func gracefulDeregistration() async throws {
            let etcd = try EtcdProcess()
            defer { etcd.remove() }
            try await etcd.start()
            let endpoints = [etcd.endpoint]
            let (peerA, nodeA) = try await startNode("a")
            let (peerB, nodeB) = try await startNode("b")
            let clientRegistry = FerryEtcdRegistry(client: FerryEtcdClient(endpoints: endpoints), logger: quietLogger())
            try await withFerryEtcdRegistry(client: FerryEtcdClient(endpoints: endpoints), ttl: 5, logger: quietLogger()) { registry in
                try await registry.register(nodeA)
                try await registry.register(nodeB)
                try await withFerryClient(service: "who", registry: clientRegistry, configuration: .init(balancer: .roundRobin)) { client in
                    let tally = Tally()
                    let stop = StopFlag()
                    async let running: Void = load(client, tally: tally, callers: 4, until: stop)
                    #expect(await eventually { tally.reachedBothNodes }, "the load reaches both nodes")
                    // What a node does on SIGTERM: deregister, then drain.
                    try await registry.deregister(nodeA)
                    #expect(await eventually { client.endpoints.count == 1 }, "the client has seen the node leave")
                    await peerA.shutdown(drainTimeout: .seconds(2))
                    let answered = tally.total
                    #expect(await eventually { tally.total >= answered + 100 }, "calls go on after the drain")
                    stop.set()
                    await running
                    #expect(tally.failed.isEmpty, "failed calls: \(tally.failed.prefix(3))")
                    #expect((tally.byNode["a"] ?? 0) > 0 && (tally.byNode["b"] ?? 0) > 0)
                }
            }
            await peerB.close()
        }

        @Test("etcd restarted without its data mid-run: clients keep calling on the last good list and nodes register again")
        func etcdRestart() async throws {
            let etcd = try EtcdProcess()
            defer { etcd.remove() }
            try await etcd.start()
            let endpoints = [etcd.endpoint]
            let (peerA, nodeA) = try await startNode("a")
            let (peerB, nodeB) = try await startNode("b")
            let clientRegistry = FerryEtcdRegistry(client: FerryEtcdClient(endpoints: endpoints, requestTimeout: .seconds(3)), logger: quietLogger())
            try await withFerryEtcdRegistry(client: FerryEtcdClient(endpoints: endpoints, requestTimeout: .seconds(3)), ttl: 2, logger: quietLogger()) { registry in
                try await registry.register(nodeA)
                try await registry.register(nodeB)
                try await withFerryClient(service: "who", registry: clientRegistry, configuration: .init(balancer: .roundRobin)) { client in
                    let tally = Tally()
                    let stop = StopFlag()
                    async let running: Void = load(client, tally: tally, callers: 2, until: stop)
                    #expect(await eventually { tally.reachedBothNodes }, "the load reaches both nodes")
                    etcd.stop(abruptly: true)
                    try FileManager.default.removeItem(at: etcd.directory.appendingPathComponent("data"))
                    // The client's registry sees etcd gone; the calls made from then on count.
                    #expect(await eventually { (try? await clientRegistry.nodes(service: "who")) == nil }, "etcd is down for the client")
                    tally.reset()
                    _ = await eventually { tally.reachedBothNodes }
                    #expect(Set(tally.byNode.keys) == ["a", "b"], "calls go on to both nodes while etcd is down")
                    try await etcd.start()
                    // The keepers find their leases gone and write the nodes again.
                    let back = await eventually(timeout: .seconds(20)) { (try? await registry.nodes(service: "who").count) == 2 }
                    #expect(back, "both nodes registered again")
                    stop.set()
                    await running
                    #expect(tally.failed.isEmpty, "failed calls: \(tally.failed.prefix(3))")
                }
            }
            await peerA.close()
            await peerB.close()
        }
    }
}
