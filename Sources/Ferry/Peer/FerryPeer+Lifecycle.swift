import Logging
import NIOCore
import ServiceLifecycle
import UnixSignals

extension FerryPeer {
    // MARK: Lifecycle

    /// Whether a graceful shutdown has begun: inbound calls are refused with 106.
    public var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Shuts down gracefully: stops accepting, runs the `onShutdown` hook, asks every accepted
    /// session to go away (a `/ferry/goaway` push: redialling Ferry clients move to another
    /// connection), answers new inbound calls with 106 "Shutting Down" (not handled, safe to
    /// retry), lets running handlers finish and their replies go out, closes sessions once they
    /// are idle and quiet, and closes the rest when `drainTimeout` (default: the configured one)
    /// expires. Calling it again waits for the first call to finish.
    public func shutdown(drainTimeout: Duration? = nil) async {
        let first: Bool = shutdownFinished.withLock { progress in
            guard case .running = progress else { return false }
            progress = .draining([])
            return true
        }
        guard first else {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done: Bool = shutdownFinished.withLock { progress in
                    if case .draining(var waiters) = progress {
                        waiters.append(continuation)
                        progress = .draining(waiters)
                        return false
                    }
                    return true
                }
                if done { continuation.resume() }
            }
            return
        }
        draining.store(true, ordering: .relaxed)
        let timeout = drainTimeout ?? configuration.drainTimeout
        logger.info("shutting down", metadata: ["drain_timeout": "\(timeout)"])
        let listeners = self.listeners.withLock { listeners in
            defer { listeners = [] }
            return listeners
        }
        for listener in listeners { await listener.close() }
        await configuration.hooks.onShutdown?()

        // Tell every accepted session to go away: Ferry clients move to a new connection and
        // close this one themselves; calls that still arrive are answered 106 (not handled).
        for session in connections.withLock({ Array($0.values) }) where !session.isDialled {
            session.sendGoAway()
        }
        let deadline = ContinuousClock.now + timeout
        let quietPeriod = min(Self.goAwayQuietPeriod, timeout)
        while true {
            let open = connections.withLock { Array($0.values) }
            if open.isEmpty { break }
            let expired = ContinuousClock.now >= deadline
            for session in open where expired || session.isDrained(quietFor: quietPeriod) {
                // A drained session may still have replies in its channel's queue (a remote that
                // reads slowly): closing now would drop them.
                if !expired, await !session.outboundWritten() { continue }
                session.recordCloseReason(expired ? "shutdown: drain timeout expired" : "shutdown")
                await session.close()
            }
            if expired { break }
            // Woken when a handler ends, a reply is written, a queue drains or a session closes;
            // else when the quiet period of the latest arrival may have passed, or at the deadline.
            await drainProgress.wait(until: min(deadline, ContinuousClock.now + quietPeriod))
        }
        await tasks.cancelAllAndWait()
        let waiters: [CheckedContinuation<Void, Never>] = shutdownFinished.withLock { progress in
            defer { progress = .finished }
            if case .draining(let waiters) = progress { return waiters }
            return []
        }
        for waiter in waiters { waiter.resume() }
        logger.info("shut down")
    }

    /// Closes every listener and every session at once. Pending calls fail with status 102.
    public func close() async {
        await shutdown(drainTimeout: .zero)
    }

    /// How long a draining session must have been idle and silent (since the go-away was sent
    /// and since its last inbound message) before it is closed: long enough for calls the
    /// remote sent before it saw the go-away to arrive and be answered.
    static let goAwayQuietPeriod = Duration.milliseconds(250)

    /// The accept queue length asked of the kernel (capped by `net.core.somaxconn`): large, so a
    /// burst of connections waits to be accepted instead of having its SYNs dropped and retried
    /// a second later.
    static let acceptBacklog: Int32 = 4096

    /// The PUSH a draining peer sends to ask the remote to move to another connection.
    public static let goAwayRoute = "/ferry/goaway"

    /// Restarts without downtime: starts a copy of this process (same executable, arguments
    /// and environment) that inherits the listening sockets, waits until it listens on them,
    /// then shuts this peer down gracefully. If the copy does not come up (it exits, closes its
    /// readiness pipe or misses `readyTimeout`), it is stopped, this peer keeps serving, and
    /// ``FerryLifecycleError/restartFailed(_:)`` says why (with the copy's exit status).
    public func restart(readyTimeout: Duration = .seconds(30)) async throws {
        let listeners = self.listeners.withLock { $0 }
        try await ListenerHandoff.startSuccessor(
            listeners: listeners.map { ($0.requestedAddress, $0.descriptor) }, readyTimeout: readyTimeout, logger: logger)
        logger.info("successor is listening; draining this process")
        await shutdown()
    }
}

extension FerryPeer: Service {
    private enum Trigger: Sendable {
        case shutdown
        case restart
        case cancelled
    }

    /// With ``Configuration/restartsOnSIGUSR2``, traps SIGUSR2 from the first listen on, so that
    /// one that arrives before ``run()`` is kept for it instead of ending the process.
    func armRestartSignal() async {
        guard configuration.restartsOnSIGUSR2, restartSignals.withLock({ $0 == nil }) else { return }
        let signals = await UnixSignalsSequence(trapping: .sigusr2)
        restartSignals.withLock { armed in
            if armed == nil { armed = signals }
        }
    }

    /// Runs until a graceful shutdown is requested (SIGTERM or SIGINT in a `ServiceGroup`), then
    /// drains with ``Configuration/drainTimeout``. With ``Configuration/restartsOnSIGUSR2``,
    /// SIGUSR2 performs a ``restart(readyTimeout:)``. Cancellation closes at once.
    public func run() async throws {
        while true {
            let trigger = await withTaskGroup(of: Trigger.self) { group in
                group.addTask {
                    do {
                        try await gracefulShutdown()
                        return .shutdown
                    } catch {
                        return .cancelled
                    }
                }
                if configuration.restartsOnSIGUSR2 {
                    // The trap armed when the peer first listened holds a SIGUSR2 that came
                    // before run() started, which would otherwise have ended the process.
                    let armed = restartSignals.withLock { armed in
                        defer { armed = nil }
                        return armed
                    }
                    group.addTask {
                        let signals = if let armed { armed } else { await UnixSignalsSequence(trapping: .sigusr2) }
                        for await _ in signals { return .restart }
                        return .cancelled
                    }
                }
                let first = await group.next() ?? .cancelled
                group.cancelAll()
                return first
            }
            switch trigger {
            case .shutdown:
                await shutdown()
                return
            case .cancelled:
                await close()
                return
            case .restart:
                do {
                    try await restart()
                    return
                } catch {
                    logger.error("restart failed; still serving", metadata: ["error": "\(error)"])
                }
            }
        }
    }
}
