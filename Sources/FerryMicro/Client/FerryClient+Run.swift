import ServiceLifecycle

extension FerryClient: Service {
    /// Runs the client's background work until the client is stopped: the registry watch that
    /// keeps its endpoints current, and the dials of its session pools. Each is a child task of
    /// this call, so when it returns, none is left.
    ///
    /// It returns when
    /// - the task running it is cancelled: sessions close at once, calls in flight fail with 102;
    /// - a graceful shutdown of its `ServiceGroup` begins: the client takes no new calls, and the
    ///   sessions of calls in flight close once those calls are answered;
    /// - ``close()`` is called.
    ///
    /// Calls made before it starts wait for it (within their timeout). It runs once: a second
    /// call throws ``FerryRunError`` (``FerryRunError/Code/alreadyRunning`` or
    /// ``FerryRunError/Code/stopped``).
    public func run() async throws {
        try table.withLock { table throws(FerryRunError) in try table.run.start("FerryClient") }
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.followRegistry() }
                group.addTask {
                    await self.stopRequested()
                    // No new dials from now on. The ones queued still get a child task, and
                    // every dial is cancelled once the queue is drained: each settles its slot.
                    self.dialler.tasks.close()
                }
                while let dial = await dialler.tasks.next() {
                    group.addTask(operation: dial)
                }
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.requestStop()
        }
        table.withLock { $0.run.finish() }
        await closeEndpoints(includingCallsInFlight: Task.isCancelled)
    }

    /// Stops the client at once: ends ``run()`` (which returns once its work is done) and closes
    /// every session the client opened; calls in flight fail with 102 and later calls with
    /// 1 "Client Closed". The peer stays open. A client closed before it ran cannot run.
    public func close() async {
        requestStop()
        dialler.tasks.close()
        await closeEndpoints(includingCallsInFlight: true)
    }

    /// Asks ``run()`` to return (or marks a client that never ran as stopped), and wakes the
    /// calls waiting for a list of nodes: they fail with "Client Closed".
    func requestStop() {
        let (runWaiter, callWaiters) = table.withLock { table in
            defer { table.waiters = [:] }
            return (table.run.requestStop(), Array(table.waiters.values))
        }
        runWaiter?.resume()
        for waiter in callWaiters { waiter.resume() }
    }

    /// Suspends until a stop is asked for or the task is cancelled.
    private func stopRequested() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                if !table.withLock({ $0.run.waitForStop(continuation) }) { continuation.resume() }
            }
        } onCancel: {
            requestStop()
        }
    }

    /// Follows the registry until the task is cancelled.
    private func followRegistry() async {
        let resolver = FerryResolver(registry: registry, service: service, route: nil, retryDelay: configuration.resolverRetryDelay)
        for await nodes in resolver {
            await apply(nodes)
        }
    }

    /// Empties the endpoint table and closes the sessions: all of them, or only those with no
    /// call in flight (the others close when their last call is answered, in that call's task).
    private func closeEndpoints(includingCallsInFlight: Bool) async {
        let endpoints = table.withLock { $0.endpoints.removeAll() }
        for endpoint in endpoints where endpoint.retire() || includingCallsInFlight {
            await endpoint.pool.close()
        }
    }
}

/// Makes a client of `service`, runs it while `body` runs, and stops it when `body` returns:
/// the client takes no new calls, and ``FerryClient/run()`` has returned (its registry watch
/// and its dials are done) before this function returns. If `body` throws, `run()` is
/// cancelled, which closes the client's sessions at once.
///
/// ```swift
/// let sum = try await withFerryClient(service: "math", registry: registry) { math in
///     try await math.call("/math/add", Add(a: 1, b: 2), as: Int.self)
/// }
/// ```
///
/// The parameters are those of ``FerryClient/init(service:registry:peer:configuration:)``.
public func withFerryClient<Result: Sendable>(
    service: String, registry: any FerryRegistry, peer: FerryPeer = FerryPeer(),
    configuration: FerryClient.Configuration = FerryClient.Configuration(),
    isolation: isolated (any Actor)? = #isolation,
    _ body: (FerryClient) async throws -> Result
) async throws -> Result {
    let client = FerryClient(service: service, registry: registry, peer: peer, configuration: configuration)
    return try await withRunning(client, body)
}

/// ``withFerryClient(service:registry:peer:configuration:isolation:_:)`` for a client of every
/// service in `registry` (see ``FerryClient/init(registry:peer:configuration:)``).
public func withFerryClient<Result: Sendable>(
    registry: any FerryRegistry, peer: FerryPeer = FerryPeer(),
    configuration: FerryClient.Configuration = FerryClient.Configuration(),
    isolation: isolated (any Actor)? = #isolation,
    _ body: (FerryClient) async throws -> Result
) async throws -> Result {
    let client = FerryClient(registry: registry, peer: peer, configuration: configuration)
    return try await withRunning(client, body)
}

/// Runs `client` in a child task while `body` runs; stops it and waits for `run()` to return.
private func withRunning<Result: Sendable>(
    _ client: FerryClient, isolation: isolated (any Actor)? = #isolation, _ body: (FerryClient) async throws -> Result
) async throws -> Result {
    try await withThrowingDiscardingTaskGroup { group in
        group.addTask {
            do {
                try await client.run()
            } catch let error as FerryRunError where error.code == .stopped {
                // The body returned (or closed the client) before run() began: nothing ran.
            }
        }
        // A throwing body cancels the group, so run() closes every session at once.
        let result = try await body(client)
        client.requestStop()
        return result
    }
}
