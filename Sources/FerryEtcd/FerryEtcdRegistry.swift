import Foundation
import FerryMicro
import Logging
import ServiceLifecycle
import Synchronization

/// A ``FerryRegistry`` on etcd v3.
///
/// **Key layout.** A node lives at `<prefix><service>/<address>` (default prefix
/// `/ferry/services/`), e.g. `/ferry/services/math/10.0.0.5:9090`. The value is the node's JSON
/// (see ``FerryNode``). The key is attached to a lease of ``ttl`` seconds, so a node whose
/// process stops renewing it disappears within the TTL.
///
/// **Running.** ``run()`` renews the leases of the nodes registered here, every third of the
/// TTL, in a child task of its own: the registry keeps its nodes alive exactly as long as
/// `run()` runs. Run it with ``withFerryEtcdRegistry(client:prefix:ttl:logger:isolation:_:)``
/// or in a `ServiceGroup` (before the peer whose nodes it registers, so that the peer's
/// shutdown hook can still deregister). A registry that only reads (``nodes(service:)``,
/// ``watch(service:)``, as a ``FerryClient`` does) needs no `run()`.
///
/// ```swift
/// try await withFerryEtcdRegistry(client: FerryEtcdClient(endpoints: ["http://127.0.0.1:2379"])) { registry in
///     try await registry.register(node)
///     try await peer.run()   // until SIGTERM; its onShutdown hook deregisters the node
/// }
/// ```
///
/// **Losing the lease.** When etcd no longer knows the lease (it expired during a network
/// blip, or etcd lost its data), the registry grants a new one and writes the node again. While
/// etcd is unreachable it keeps trying, once per renewal period, and logs each failure.
///
/// **Shutdown.** ``deregister(_:)`` deletes the key and revokes the lease at once; call it first
/// when a node stops (the `onShutdown` hook of `FerryPeer`), then drain. A graceful shutdown of
/// `run()` deregisters the nodes still registered; a cancelled `run()` only stops renewing, and
/// the nodes expire within the TTL (what a crash does).
public final class FerryEtcdRegistry: FerryRegistry {
    /// A node this registry keeps alive.
    private struct Registration {
        /// Tells this registration from a later one of the same key.
        var id: UInt64
        /// The node's JSON.
        var value: [UInt8]
        /// The lease the key is attached to now (it changes when a lost lease is replaced).
        var lease: Int64
    }

    private struct State {
        var run = RunState.notStarted
        /// The registered nodes, by key.
        var registrations: [String: Registration] = [:]
        var nextID: UInt64 = 0
    }

    /// The etcd client.
    public let client: FerryEtcdClient
    /// The key prefix of every node.
    public let prefix: String
    /// The lease time to live, in seconds.
    public let ttl: Int64
    let logger: Logger
    private let state = Mutex(State())

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

    /// Writes `node` under a new lease, which ``run()`` keeps alive from then on (a node
    /// registered before `run()` starts is renewed once it does, so start it within the TTL).
    /// Throws ``FerryRunError`` once the registry has stopped.
    public func register(_ node: FerryNode) async throws {
        guard state.withLock({ $0.run.isAccepting }) else { throw Self.stoppedError }
        let key = key(of: node)
        let value = Array(try JSONEncoder().encode(node))
        let lease = try await client.grantLease(ttl: ttl)
        try await client.put(key, value: value, lease: lease.id)
        let previous: Int64?? = state.withLock { state in
            guard state.run.isAccepting else { return nil }
            state.nextID &+= 1
            defer { state.registrations[key] = Registration(id: state.nextID, value: value, lease: lease.id) }
            return .some(state.registrations[key]?.lease)
        }
        guard let previous else {
            // Stopped meanwhile: nothing would renew the lease, so take the node out now.
            _ = try? await client.revoke(lease.id)
            throw Self.stoppedError
        }
        // The key moved to the new lease; the old one holds nothing now.
        if let previous { _ = try? await client.revoke(previous) }
        logger.info("registered", metadata: ["key": "\(key)", "ttl": "\(ttl)"])
    }

    public func deregister(_ node: FerryNode) async throws {
        let key = key(of: node)
        let registration = state.withLock { $0.registrations.removeValue(forKey: key) }
        try await client.delete(key)
        if let registration { _ = try? await client.revoke(registration.lease) }
        logger.info("deregistered", metadata: ["key": "\(key)"])
    }

    /// Deregisters every node this registry registered, and ends ``run()``.
    public func shutdown() async {
        await deregisterAll()
        requestStop()
    }

    public func nodes(service: String?) async throws -> [FerryNode] {
        try await client.range(servicePrefix(service), prefix: true).values.compactMap(decode)
    }

    /// The nodes of `service` (nil: of every service): the current list, then a new list after
    /// every change. The watch runs in the iterating task.
    public func watch(service: String?) -> Watch {
        Watch(registry: self, servicePrefix: servicePrefix(service))
    }

    // MARK: Internals

    private func servicePrefix(_ service: String?) -> String {
        service.map { "\(prefix)\($0)/" } ?? prefix
    }

    func decode(_ value: FerryEtcdClient.KeyValue) -> FerryNode? {
        do {
            return try JSONDecoder().decode(FerryNode.self, from: Data(value.value))
        } catch {
            logger.warning("ignoring a malformed node", metadata: ["key": "\(value.key)", "error": "\(error)"])
            return nil
        }
    }

    private static var stoppedError: FerryRunError {
        FerryRunError(.stopped, "the etcd registry has stopped: nothing would keep a new node's lease alive")
    }
}

extension FerryEtcdRegistry: Service {
    /// Keeps the leases of the registered nodes alive until it is stopped; the renewals are its
    /// child tasks, so when it returns, nothing renews any lease of this registry.
    ///
    /// It returns when
    /// - the task running it is cancelled: the nodes are left to expire within the TTL;
    /// - a graceful shutdown of its `ServiceGroup` begins, or ``shutdown()`` is called: the
    ///   nodes still registered are deregistered first.
    ///
    /// It runs once: a second call throws ``FerryRunError``.
    public func run() async throws {
        try state.withLock { state throws(FerryRunError) in try state.run.start("FerryEtcdRegistry") }
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.keepLeasesAlive() }
                await self.stopRequested()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.requestStop()
        }
        if !Task.isCancelled { await deregisterAll() }
        state.withLock { $0.run.finish() }
    }

    /// Asks ``run()`` to return (a registry that never ran stops at once).
    func requestStop() {
        state.withLock { $0.run.requestStop() }?.resume()
    }

    /// Suspends until a stop is asked for or the task is cancelled.
    private func stopRequested() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                if !state.withLock({ $0.run.waitForStop(continuation) }) { continuation.resume() }
            }
        } onCancel: {
            requestStop()
        }
    }

    /// Renews every registered node's lease once per third of the TTL, until cancelled.
    private func keepLeasesAlive() async {
        let period = Duration.milliseconds(ttl * 1000 / 3)
        while true {
            do {
                try await Task.sleep(for: period)
            } catch {
                return
            }
            let registrations = state.withLock { $0.registrations }
            await withDiscardingTaskGroup { group in
                for (key, registration) in registrations {
                    group.addTask { await self.renew(key, registration) }
                }
            }
        }
    }

    /// Renews one lease; when etcd lost it, writes the node again under a new one.
    private func renew(_ key: String, _ registration: Registration) async {
        do {
            try await client.keepAlive(registration.lease)
        } catch FerryEtcdError.leaseLost {
            // etcd forgot the lease (expired in a blip, or etcd lost its data): start over.
            do {
                let fresh = try await client.grantLease(ttl: ttl)
                try await client.put(key, value: registration.value, lease: fresh.id)
                let current: Bool = state.withLock { state in
                    guard state.registrations[key]?.id == registration.id else { return false }
                    state.registrations[key]?.lease = fresh.id
                    return true
                }
                if current {
                    logger.info("registered again after the lease was lost", metadata: ["key": "\(key)"])
                } else {
                    // Deregistered meanwhile: take back what was just written.
                    _ = try? await client.revoke(fresh.id)
                }
            } catch where !Task.isCancelled {
                logger.warning("could not register again", metadata: ["key": "\(key)", "error": "\(error)"])
            } catch {}
        } catch where !Task.isCancelled {
            logger.warning("could not renew the lease", metadata: ["key": "\(key)", "error": "\(error)"])
        } catch {}
    }

    /// Deletes every registered node and revokes its lease.
    func deregisterAll() async {
        let registrations = state.withLock { state in
            defer { state.registrations = [:] }
            return state.registrations
        }
        for (key, registration) in registrations.sorted(by: { $0.key < $1.key }) {
            do {
                try await client.delete(key)
                logger.info("deregistered", metadata: ["key": "\(key)"])
            } catch {
                logger.warning("could not deregister; the node expires with its lease", metadata: ["key": "\(key)", "error": "\(error)"])
            }
            _ = try? await client.revoke(registration.lease)
        }
    }
}

/// Makes an etcd registry, runs it while `body` runs, and stops it when `body` returns or
/// throws: the nodes still registered are deregistered, and ``FerryEtcdRegistry/run()`` has
/// returned (no lease of it is renewed any more) before this function returns. If the task is
/// cancelled, the registry only stops renewing, and its nodes expire within the TTL.
///
/// ```swift
/// try await withFerryEtcdRegistry(client: etcd, ttl: 5) { registry in
///     try await registry.register(node)
///     …
/// }
/// ```
///
/// The parameters are those of ``FerryEtcdRegistry/init(client:prefix:ttl:logger:)``.
public func withFerryEtcdRegistry<Result: Sendable>(
    client: FerryEtcdClient, prefix: String = "/ferry/services/", ttl: Int64 = 10, logger: Logger = Logger(label: "ferry.etcd"),
    isolation: isolated (any Actor)? = #isolation,
    _ body: (FerryEtcdRegistry) async throws -> Result
) async throws -> Result {
    let registry = FerryEtcdRegistry(client: client, prefix: prefix, ttl: ttl, logger: logger)
    let outcome: Swift.Result<Result, any Error> = try await withThrowingDiscardingTaskGroup { group in
        group.addTask {
            do {
                try await registry.run()
            } catch let error as FerryRunError where error.code == .stopped {
                // The body returned before run() began: deregister what it registered.
                if !Task.isCancelled { await registry.deregisterAll() }
            }
        }
        let outcome: Swift.Result<Result, any Error>
        do {
            outcome = .success(try await body(registry))
        } catch {
            // Still a graceful stop: the nodes are deregistered rather than left to expire.
            outcome = .failure(error)
        }
        registry.requestStop()
        return outcome
    }
    return try outcome.get()
}
