import Foundation
import FerryMicro
import Logging
import Synchronization

/// A ``FerryRegistry`` on etcd v3.
///
/// **Key layout.** A node lives at `<prefix><service>/<address>` (default prefix
/// `/ferry/services/`), e.g. `/ferry/services/math/10.0.0.5:9090`. The value is the node's JSON
/// (see ``FerryNode``). The key is attached to a lease of ``ttl`` seconds that the registry
/// renews every third of the TTL, so a node that dies disappears within the TTL.
///
/// **Losing the lease.** When etcd no longer knows the lease (it expired during a network
/// blip, or etcd lost its data), the registry grants a new one and writes the node again. While
/// etcd is unreachable it keeps trying, once per renewal period, and logs each failure.
///
/// **Shutdown.** ``deregister(_:)`` deletes the key and revokes the lease at once; call it first
/// when a node stops (the `onShutdown` hook of `FerryPeer`), then drain.
public final class FerryEtcdRegistry: FerryRegistry {
    /// The etcd client.
    public let client: FerryEtcdClient
    /// The key prefix of every node.
    public let prefix: String
    /// The lease time to live, in seconds.
    public let ttl: Int64
    private let logger: Logger
    private let keepers = Mutex<[String: Task<Void, Never>]>([:])
    /// The lease each registered key is attached to now (it changes when a lost lease is replaced).
    private let leases = Mutex<[String: Int64]>([:])

    /// Creates a registry on `client`; nodes expire `ttl` seconds after their process stops
    /// renewing them.
    public init(client: FerryEtcdClient, prefix: String = "/ferry/services/", ttl: Int64 = 10, logger: Logger = Logger(label: "ferry.etcd")) {
        self.client = client
        self.prefix = prefix.hasSuffix("/") ? prefix : prefix + "/"
        self.ttl = max(ttl, 1)
        self.logger = logger
    }

    /// The key of `node`.
    public func key(of node: FerryNode) -> String { "\(prefix)\(node.service)/\(node.address)" }

    public func register(_ node: FerryNode) async throws {
        let key = key(of: node)
        let value = try JSONEncoder().encode(node)
        let lease = try await client.grantLease(ttl: ttl)
        try await client.put(key, value: Array(value), lease: lease.id)
        leases.withLock { $0[key] = lease.id }
        let keeper = Task { [client, ttl, logger, weak self] in
            var leaseID = lease.id
            let period = Duration.milliseconds(ttl * 1000 / 3)
            while !Task.isCancelled {
                try? await Task.sleep(for: period)
                if Task.isCancelled { return }
                do {
                    try await client.keepAlive(leaseID)
                } catch FerryEtcdError.leaseLost {
                    // etcd forgot the lease (expired in a blip, or etcd lost its data): start over.
                    do {
                        let fresh = try await client.grantLease(ttl: ttl)
                        try await client.put(key, value: Array(value), lease: fresh.id)
                        leaseID = fresh.id
                        self?.leases.withLock { $0[key] = fresh.id }
                        logger.info("registered again after the lease was lost", metadata: ["key": "\(key)"])
                    } catch {
                        logger.warning("could not register again", metadata: ["key": "\(key)", "error": "\(error)"])
                    }
                } catch {
                    logger.warning("could not renew the lease", metadata: ["key": "\(key)", "error": "\(error)"])
                }
            }
        }
        let previous = keepers.withLock { keepers in
            defer { keepers[key] = keeper }
            return keepers[key]
        }
        previous?.cancel()
        logger.info("registered", metadata: ["key": "\(key)", "ttl": "\(ttl)"])
    }

    public func deregister(_ node: FerryNode) async throws {
        let key = key(of: node)
        let keeper = keepers.withLock { $0.removeValue(forKey: key) }
        keeper?.cancel()
        await keeper?.value
        try await client.delete(key)
        if let lease = leases.withLock({ $0.removeValue(forKey: key) }) {
            _ = try? await client.revoke(lease)
        }
        logger.info("deregistered", metadata: ["key": "\(key)"])
    }

    /// Stops renewing every node this registry registered, without deleting them: they expire
    /// within the TTL. (What a crash does; for tests and for handing nodes over.)
    func abandonAll() {
        let all = keepers.withLock { keepers in
            defer { keepers = [:] }
            return Array(keepers.values)
        }
        for keeper in all { keeper.cancel() }
    }

    /// Deregisters every node this registry registered.
    public func shutdown() async {
        let keys = keepers.withLock { Array($0.keys) }
        for key in keys {
            let keeper = keepers.withLock { $0.removeValue(forKey: key) }
            keeper?.cancel()
            await keeper?.value
            _ = try? await client.delete(key)
            if let lease = leases.withLock({ $0.removeValue(forKey: key) }) {
                _ = try? await client.revoke(lease)
            }
        }
    }

    public func nodes(service: String?) async throws -> [FerryNode] {
        try await client.range(servicePrefix(service), prefix: true).values.compactMap(decode)
    }

    public func watch(service: String?) -> AsyncThrowingStream<[FerryNode], any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: [FerryNode].self, bufferingPolicy: .bufferingNewest(1))
        let task = Task { [self] in
            do {
                let servicePrefix = servicePrefix(service)
                let start = try await client.range(servicePrefix, prefix: true)
                var current: [String: FerryNode] = [:]
                for value in start.values { if let node = decode(value) { current[value.key] = node } }
                continuation.yield(Self.sorted(current))
                for try await batch in client.watch(prefix: servicePrefix, fromRevision: start.revision + 1) {
                    for event in batch.events {
                        switch event.kind {
                        case .put: current[event.keyValue.key] = decode(event.keyValue)
                        case .delete: current[event.keyValue.key] = nil
                        }
                    }
                    continuation.yield(Self.sorted(current))
                }
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    private func servicePrefix(_ service: String?) -> String {
        service.map { "\(prefix)\($0)/" } ?? prefix
    }

    private func decode(_ value: FerryEtcdClient.KeyValue) -> FerryNode? {
        do {
            return try JSONDecoder().decode(FerryNode.self, from: Data(value.value))
        } catch {
            logger.warning("ignoring a malformed node", metadata: ["key": "\(value.key)", "error": "\(error)"])
            return nil
        }
    }

    private static func sorted(_ nodes: [String: FerryNode]) -> [FerryNode] {
        nodes.sorted { $0.key < $1.key }.map(\.value)
    }
}
