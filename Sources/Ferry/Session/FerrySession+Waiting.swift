import NIOCore
import Synchronization

/// Writers that wait: for a connection (while the session redials or moves) and for room in
/// the socket queue (under back-pressure).
extension FerrySession {
    /// The connection to write on, once it exists and can take more bytes: waits while
    /// redialling (if the policy says so) and while the socket queue is full (under back-pressure).
    func writableChannel(before deadline: NIODeadline) async throws -> any Channel {
        let channel = try await connectedChannel(before: deadline)
        guard !channel.isWritable else { return channel }
        switch peer.configuration.limits.slowConsumerPolicy {
        case .failWrite:
            throw FerryStatus.slowConsumer("the remote is not reading; the outbound queue is full")
        case .closeSession:
            logger.warning("closing session: slow consumer")
            closeConnection(channel, reason: "slow consumer: the outbound queue passed \(peer.configuration.limits.maximumQueuedOutboundBytes) bytes")
            throw FerryStatus.connectionClosed("slow consumer")
        case .applyBackPressure:
            try await wait(for: \.writabilityWaiters, before: deadline, on: channel.eventLoop) { _ in channel.isWritable ? () : nil }
            return channel
        }
    }

    private func connectedChannel(before deadline: NIODeadline) async throws -> any Channel {
        let lifecycle = state.withLock { $0.lifecycle }
        if let channel = lifecycle.writableConnection { return channel }
        switch lifecycle {
        case .closed(let reason, _):
            throw FerryStatus.connectionClosed(reason)
        case .redialling where peer.configuration.redial?.callsWaitForReconnect != true:
            throw FerryStatus.connectionClosed("redialling")
        default:
            return try await wait(for: \.reconnectWaiters, before: deadline, on: lifecycle.connection.eventLoop) { state in
                state.lifecycle.writableConnection
            }
        }
    }

    /// Suspends until `ready` yields a value (checked under the lock before and after
    /// registering, so a wake-up cannot be lost), the deadline passes (408), the session closes
    /// (102) or the task is cancelled (499) — before or after it started waiting.
    func wait<Value>(
        for list: WritableKeyPath<SessionState, WaiterList<Value>> & Sendable, before deadline: NIODeadline,
        on eventLoop: any EventLoop, ready: @escaping @Sendable (SessionState) -> Value?
    ) async throws -> Value {
        let registration = Mutex<WaiterRegistration>(.none)
        // Resumed, one way or another: a deadline timer that did not fire has nothing left to do.
        defer { if case .timed(_, let timer) = registration.withLock({ $0 }) { timer.cancel() } }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
                let immediate: Result<Value, FerryStatus>? = state.withLock { state in
                    if let value = ready(state) { return .success(value) }
                    if let reason = state.lifecycle.closedReason { return .failure(.connectionClosed(reason)) }
                    // Registered and cancelled are decided under one lock: a cancellation that
                    // came first is seen here, one that comes later finds the waiter.
                    return registration.withLock { registration in
                        if case .cancelled = registration { return .failure(Self.cancelled) }
                        registration = .waiting(state[keyPath: list].add(continuation))
                        return nil
                    }
                }
                if let immediate {
                    continuation.resume(with: immediate)
                    return
                }
                guard case .waiting(let id) = registration.withLock({ $0 }) else { return }
                let timer = eventLoop.scheduleTask(deadline: deadline) { [self] () -> Void in
                    state.withLock { $0[keyPath: list].remove(id) }?
                        .resume(throwing: FerryStatus.timedOut("deadline passed while waiting to send"))
                }
                // Re-check: the condition may have turned true between the first check and now.
                let late: Value? = state.withLock { state in
                    guard let value = ready(state), state[keyPath: list].remove(id) != nil else { return nil }
                    return value
                }
                if let late {
                    timer.cancel()
                    continuation.resume(returning: late)
                    return
                }
                registration.withLock { $0 = .timed(id, timer) }
            }
        } onCancel: { [self] in
            let id: UInt64? = registration.withLock { registration in
                switch registration {
                case .none:
                    registration = .cancelled
                    return nil
                case .waiting(let id), .timed(let id, _):
                    return id
                case .cancelled:
                    return nil
                }
            }
            guard let id else { return }
            state.withLock { $0[keyPath: list].remove(id) }?.resume(throwing: Self.cancelled)
        }
    }

    static var cancelled: FerryStatus { FerryStatus.cancelled("the calling task was cancelled") }

    /// Back-pressure for a reply: waits until `channel` takes writes again, at most the default
    /// call timeout; returns why the reply must be dropped, if it must.
    func waitForWritability(of channel: any Channel) async -> String? {
        let deadline = NIODeadline.now() + TimeAmount(peer.configuration.defaultCallTimeout)
        do {
            try await wait(for: \.writabilityWaiters, before: deadline, on: channel.eventLoop) { _ in channel.isWritable ? () : nil }
            return nil
        } catch {
            return "the remote does not read: \(error)"
        }
    }

    /// The socket queue of `channel` drained below its low-water mark (or filled up).
    func writabilityChanged(_ channel: any Channel) {
        guard channel.isWritable else { return }
        let waiters = state.withLock { $0.writabilityWaiters.removeAll() }
        for waiter in waiters { waiter.resume() }
        peer.drainProgressMade()
    }
}

/// Where one waiter stands, for its cancellation handler and its deadline timer.
private enum WaiterRegistration {
    /// Not registered yet.
    case none
    /// Cancelled before it registered: it must not register.
    case cancelled
    /// Registered under `id`; its deadline timer is being scheduled.
    case waiting(UInt64)
    /// Registered under `id`, with its deadline timer.
    case timed(UInt64, Scheduled<Void>)
}
