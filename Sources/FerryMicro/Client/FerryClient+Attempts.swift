import Logging

/// The attempts of one call: choosing endpoints, retrying, and racing a backup request.
extension FerryClient {
    /// Why no endpoint could be chosen.
    enum PickFailure: Error {
        /// No endpoint serves the route (or the client has none).
        case noEndpoint
        /// Every endpoint left has its breaker open.
        case circuitOpen
        /// Endpoints serve the route, but the call tried them all.
        case exhausted
    }

    /// What an attempt produces: the reply of a CALL, nil for a PUSH that was written.
    typealias Outcome = FerryReply?

    /// One event of a call with a backup request.
    private enum RaceEvent: Sendable {
        case finished(Result<Outcome, FerryStatus>)
        case backupDue
        case timerCancelled
    }

    /// Runs `operation` on a session of a chosen endpoint, retrying and racing as configured,
    /// and returns what the deciding attempt produced. A reply's status counts too, so that
    /// replies such as 503 or 106 count as failures and can be retried. Whether a failure is
    /// sent again is ``Configuration/Retry/allowsRetry(after:route:)``'s decision.
    func perform(
        route: String, hashKey: String?, timeout: Duration?, backupDelay: Duration?,
        operation: @Sendable (FerrySession) async throws -> Outcome
    ) async throws -> Outcome {
        try await instruments.traced(route: route) {
            try await performAttempts(route: route, hashKey: hashKey, timeout: timeout, backupDelay: backupDelay, operation: operation)
        }
    }

    private func performAttempts(
        route: String, hashKey: String?, timeout: Duration?, backupDelay: Duration?,
        operation: @Sendable (FerrySession) async throws -> Outcome
    ) async throws -> Outcome {
        let set: EndpointSet
        if let ready = try readyEndpoints() {
            set = ready
        } else {
            set = try await currentEndpoints(timeout: timeout)
        }
        let (first, admission) = try pickOrThrow(route: route, hashKey: hashKey, in: set, excluding: [])
        budget.recordCall()
        instruments.attempt(.first)
        let maximumAttempts = max(configuration.retry.maximumAttempts, 1)

        guard let backupDelay else {
            var endpoint = first
            var current = admission
            var tried: [Endpoint] = []  // filled only when a call is retried
            while true {
                let result = await attempt(on: endpoint, current, timeout: timeout, operation: operation)
                tried.append(endpoint)
                guard tried.count < maximumAttempts, let failure = undecided(result), mayResend(after: failure, route: route),
                    let next = nextAttempt(route: route, hashKey: hashKey, excluding: tried, after: failure.code, from: endpoint)
                else { return try result.get() }
                (endpoint, current) = next
            }
        }
        return try await withoutActuallyEscaping(operation) { operation in
            try await race(
                route: route, hashKey: hashKey, timeout: timeout, backupDelay: backupDelay, first: (first, admission),
                maximumAttempts: maximumAttempts, operation: operation)
        }
    }

    /// The attempts of a call with a backup request: the first attempt, a second one on another
    /// endpoint when the first has no reply after `backupDelay`, and retries; the first decisive
    /// outcome wins.
    private func race(
        route: String, hashKey: String?, timeout: Duration?, backupDelay: Duration, first: (Endpoint, Endpoint.Admission),
        maximumAttempts: Int,
        operation: @escaping @Sendable (FerrySession) async throws -> Outcome
    ) async throws -> Outcome {
        let (first, admission) = first
        var tried = [first]
        let backupClock = configuration.clock
        let result: Result<Outcome, FerryStatus> = await withTaskGroup(of: RaceEvent.self) { group in
            group.addTask { .finished(await self.attempt(on: first, admission, timeout: timeout, operation: operation)) }
            group.addTask {
                do {
                    try await backupClock.sleep(for: backupDelay)
                    return .backupDue
                } catch {
                    return .timerCancelled
                }
            }
            var running = 1
            var attempts = 1
            var backupSent = false
            var last: Result<Outcome, FerryStatus>?
            while let event = await group.next() {
                switch event {
                case .timerCancelled:
                    continue
                case .backupDue:
                    guard running > 0, !backupSent, !Task.isCancelled else { continue }
                    backupSent = true
                    guard let next = nextAttempt(route: route, hashKey: hashKey, excluding: tried, after: nil, from: tried[0]) else {
                        continue
                    }
                    let (endpoint, admission) = next
                    tried.append(endpoint)
                    running += 1
                    group.addTask { .finished(await self.attempt(on: endpoint, admission, timeout: timeout, operation: operation)) }
                case .finished(let result):
                    running -= 1
                    last = result
                    guard let failure = undecided(result) else {
                        // The first decisive outcome wins; the other attempt is cancelled.
                        group.cancelAll()
                        return result
                    }
                    // A failure waits for the attempt still running, which was sent already.
                    if running > 0 { continue }
                    if attempts < maximumAttempts, mayResend(after: failure, route: route),
                        let next = nextAttempt(route: route, hashKey: hashKey, excluding: tried, after: failure.code, from: tried.last!)
                    {
                        let (endpoint, admission) = next
                        tried.append(endpoint)
                        attempts += 1
                        running += 1
                        group.addTask { .finished(await self.attempt(on: endpoint, admission, timeout: timeout, operation: operation)) }
                        continue
                    }
                    group.cancelAll()
                    return result
                }
            }
            return last ?? .failure(.cancelled())
        }
        return try result.get()
    }

    /// An endpoint for a retry (`code` set) or a backup request (`code` nil), if the budget and
    /// the endpoints allow one.
    private func nextAttempt(
        route: String, hashKey: String?, excluding tried: [Endpoint], after code: FerryStatus.Code?, from previous: Endpoint
    ) -> (Endpoint, Endpoint.Admission)? {
        guard !Task.isCancelled else { return nil }
        let what = code == nil ? "backup request" : "retry"
        guard budget.withdraw() else {
            logger.debug("no \(what): the retry budget is spent", metadata: ["endpoint": "\(previous.node.address)"])
            return nil
        }
        switch pick(route: route, hashKey: hashKey, in: snapshot, excluding: tried) {
        case .success(let chosen):
            instruments.attempt(code == nil ? .backup : .retry)
            logger.debug("\(what) on another endpoint", metadata: [
                "from": "\(previous.node.address)", "to": "\(chosen.0.node.address)", "status": "\(code.map(String.init(describing:)) ?? "late")",
            ])
            return chosen
        case .failure:
            budget.refund()
            return nil
        }
    }

    /// The status of `result` when it is a failure that another attempt could make good (its
    /// code is retryable); nil when `result` decides the call.
    private func undecided(_ result: Result<Outcome, FerryStatus>) -> FerryStatus? {
        let status: FerryStatus
        switch result {
        case .success(let reply):
            guard let reply, !reply.status.isOK else { return nil }
            status = reply.status
        case .failure(let failure):
            status = failure
        }
        return configuration.retry.retryableCodes.contains(status.code) ? status : nil
    }

    /// Whether a call of `route` that failed with the retryable `status` may be sent again: not
    /// when it may have run and its route is not idempotent.
    private func mayResend(after status: FerryStatus, route: String) -> Bool {
        if configuration.retry.allowsRetry(after: status, route: route) { return true }
        logger.debug("not retried: the call may have run and its route is not idempotent", metadata: [
            "route": "\(route)", "status": "\(status)",
        ])
        return false
    }

    /// One attempt on `endpoint`, admitted with `admission`: takes a pooled session, runs the
    /// operation, and tells the endpoint how it went.
    private func attempt(
        on endpoint: Endpoint, _ admission: Endpoint.Admission, timeout: Duration?,
        operation: @Sendable (FerrySession) async throws -> Outcome
    ) async -> Result<Outcome, FerryStatus> {
        let start = clock.now
        var session: FerrySession?
        let result: Result<Outcome, FerryStatus>
        do {
            let pooled: FerrySession
            if let ready = try endpoint.pool.readySession() {
                pooled = ready
            } else {
                pooled = try await endpoint.pool.session(timeout: timeout ?? peer.configuration.defaultCallTimeout)
            }
            session = pooled
            result = .success(try await operation(pooled))
        } catch let status as FerryStatus {
            result = .failure(status)
        } catch {
            // Not a status: whether the call had left is unknown once a session was handed
            // the call, so it counts as sent.
            let origin: FerryStatus.Origin = session == nil ? .local : .localAfterSending
            if error is CancellationError {
                result = .failure(.cancelled(origin: origin, underlyingError: error))
            } else {
                result = .failure(.unknown("\(error)", origin: origin, underlyingError: error))
            }
        }
        let now = clock.now
        let code: FerryStatus.Code
        switch result {
        case .success(let reply): code = reply?.status.code ?? .ok
        case .failure(let status): code = status.code
        }
        let verdict = Self.verdict(for: code)
        if case .failure(let status) = result, status.isConnectionError || status.code == .writeFailed, let session {
            await endpoint.pool.evictIfDisconnected(session)
        }
        let finished = endpoint.finish(admission, verdict: verdict, latency: start.duration(to: now), at: now)
        if let change = finished.circuitChange {
            instruments.circuitChanged(endpoint: endpoint.node.address.description, to: Self.stateLabel(change))
            switch change {
            case .open:
                logger.warning("circuit opened", metadata: ["endpoint": "\(endpoint.node.address)", "status": "\(code)"])
            case .closed:
                logger.info("circuit closed", metadata: ["endpoint": "\(endpoint.node.address)"])
            case .halfOpen:
                break
            }
        }
        if finished.closeSessions { await endpoint.pool.close() }
        return result
    }

    /// The `state` label of a breaker change.
    private static func stateLabel(_ change: CircuitState) -> String {
        change == .halfOpen ? "half_open" : change.rawValue
    }

    /// What an attempt's status says about its endpoint.
    static func verdict(for code: FerryStatus.Code) -> CircuitBreaker.Verdict {
        switch code {
        case .connectionClosed, .writeFailed, .dialFailed, .shuttingDown, .timedOut, .unavailable: .failure
        case .cancelled: .none
        default: .success
        }
    }

    /// An endpoint for the call, or the status that says why there is none.
    private func pickOrThrow(route: String, hashKey: String?, in set: EndpointSet, excluding tried: [Endpoint]) throws -> (Endpoint, Endpoint.Admission) {
        switch pick(route: route, hashKey: hashKey, in: set, excluding: tried) {
        case .success(let chosen):
            return chosen
        case .failure(.circuitOpen):
            throw FerryStatus.circuitOpen("every node of \(scopeDescription) serving \(route) has its circuit breaker open")
        case .failure:
            throw FerryStatus.noEndpoint("no node of \(scopeDescription) serves \(route)")
        }
    }

    private var scopeDescription: String {
        service.map { "service \"\($0)\"" } ?? "any service"
    }

    /// Chooses an endpoint that serves `route`, was not tried, and whose breaker admits a call.
    func pick(route: String, hashKey: String?, in set: EndpointSet, excluding tried: [Endpoint]) -> Result<(Endpoint, Endpoint.Admission), PickFailure> {
        let now = clock.now
        let explicitRoutes = service == nil
        // Every serving endpoint not tried yet is a candidate; admission (under the endpoint's
        // lock) then refuses retired ones and open breakers, and the balancer picks again.
        var candidates: [Endpoint]
        if tried.isEmpty, !explicitRoutes, set.endpoints.allSatisfy({ $0.serves(route, explicitly: false) }) {
            candidates = set.endpoints
        } else {
            candidates = set.endpoints.filter { endpoint in
                endpoint.serves(route, explicitly: explicitRoutes) && !tried.contains(where: { $0 === endpoint })
            }
        }
        if candidates.isEmpty { return .failure(tried.isEmpty ? .noEndpoint : .exhausted) }
        while !candidates.isEmpty {
            let chosen = balancer.pick(from: candidates, hashKey: hashKey, all: set)
            if let admission = chosen.admit(at: now) { return .success((chosen, admission)) }
            candidates.removeAll { $0 === chosen }
        }
        return .failure(.circuitOpen)
    }
}
