import NIOCore

/// Losing a connection, and what follows: redialling, moving away from a draining remote,
/// going away from a draining peer.
extension FerrySession {
    /// `channel` is gone: every call pending on it fails at once with 102; if it was the
    /// current connection, the session redials or closes.
    func connectionClosed(_ channel: any Channel) {
        let waitsForReconnect = peer.configuration.redial?.callsWaitForReconnect == true
        var stranded = SessionState.StrandedSenders()
        let loss = state.withLock { state in
            state.connectionLost(channel, peerDraining: peer.isDraining, callsWaitForReconnect: waitsForReconnect, stranded: &stranded)
        }
        let lost = FerryStatus.connectionClosed("connection lost")
        for writer in stranded.writers { writer.resume(throwing: lost) }
        for sender in stranded.reconnecting { sender.resume(throwing: lost) }
        switch loss {
        case .failCalls(let calls, let auth, let reason):
            fail(calls, auth: auth, reason: reason)
        case .redial(let calls, let auth, let reason):
            fail(calls, auth: auth, reason: reason)
            logger.info("connection lost; redialling", metadata: ["reason": "\(reason)", "failed_calls": "\(calls.count)"])
            startRedial()
        case .closed(let calls, let closing):
            // Closed before the failed calls are resumed: a caller they wake that calls again
            // is refused with 102 at once, instead of waiting on a connection that is gone.
            fail(calls, auth: nil, reason: closing.reason)
            tellClosed(closing)
        }
    }

    private func fail(_ calls: [PendingCall], auth: CheckedContinuation<FerryMessage, any Error>?, reason: String) {
        // The calls were handed to the connection: the remote may have handled them.
        let status = FerryStatus.connectionClosed(reason, origin: .localAfterSending)
        for call in calls { call.waiter.resume(throwing: status) }
        auth?.resume(throwing: FerryStatus.connectionClosed(reason))
    }

    /// The remote is draining (it sent a go-away, or answered 106): dial a new connection in
    /// the background and move new calls to it; `connection` closes once its pending calls
    /// are answered.
    func leaveConnection(_ connection: ObjectIdentifier) {
        guard state.withLock({ $0.beginMove(from: connection) }) else { return }
        logger.info("the remote is going away; moving to a new connection")
        startRedial()
    }

    /// Runs the redial loop as a task the peer owns; a peer that has stopped closes the session instead.
    private func startRedial() {
        guard let target = dialTarget, let policy = peer.configuration.redial else { return }
        let started = peer.tasks.start { [self] in await redial(target, policy: policy) }
        if !started { stopRedialling(reason: "the peer has stopped") }
    }

    /// Dials until a connection is ready, the policy gives up, or the session closes.
    private func redial(_ target: DialTarget, policy: FerryPeer.Redial) async {
        for attempt in 0..<policy.maximumAttempts {
            try? await Task.sleep(for: policy.delay(beforeAttempt: attempt))
            guard !Task.isCancelled, !state.withLock({ $0.isClosed }), !peer.isDraining else { break }
            var connected: (any Channel)?
            do {
                let channel = try await peer.connect(target, reusing: self)
                connected = channel
                var retired: (any Channel)?
                let stillWanted = state.withLock { $0.redialConnected(channel, retired: &retired) }
                retired?.close(promise: nil)
                guard stillWanted else {
                    try? await channel.close()
                    return
                }
                try await peer.configuration.hooks.onDial?(self)
                if let auth = peer.configuration.auth, let credential = auth.credential {
                    try await authenticate(credential: try await credential(), timeout: auth.timeout, on: channel)
                }
                guard let waiters = state.withLock({ $0.redialFinished(channel) }) else {
                    try? await channel.close()
                    return
                }
                for waiter in waiters { waiter.resume(returning: channel) }
                peer.instruments.metrics?.redial("connected")
                logger.info("redialled", metadata: ["attempt": "\(attempt + 1)"])
                if !channel.isActive { connectionClosed(channel) }
                return
            } catch let refused as AuthRefused {
                logger.warning("redial stopped: auth refused", metadata: ["status": "\(refused.status)"])
                peer.instruments.metrics?.redial("refused")
                connected?.close(promise: nil)
                stopRedialling(reason: "redial stopped: auth refused: \(refused.status)")
                return
            } catch {
                peer.instruments.metrics?.redial("failed")
                logger.info("redial attempt failed", metadata: ["attempt": "\(attempt + 1)", "of": "\(policy.maximumAttempts)", "error": "\(error)"])
                // Only the connection this attempt made: a connection being moved away from
                // still carries calls that await their replies.
                connected?.close(promise: nil)
            }
        }
        if !state.withLock({ $0.isClosed }) {
            logger.warning("session closed: redial gave up", metadata: ["id": "\(id)"])
            peer.instruments.metrics?.redial("gave_up")
        }
        stopRedialling(reason: "redial gave up")
    }

    private func stopRedialling(reason: String) {
        if let closing = state.withLock({ $0.redialStopped(reason: reason) }) { tellClosed(closing) }
    }

    // MARK: Draining side

    /// Draining side: asks the remote to move to another connection. Ferry peers that can
    /// redial do so at once; others just see the route as unknown (and calls answered 106).
    func sendGoAway() {
        let (channel, seq) = state.withLock { state in
            state.goAwaySent(at: .now())
            return (state.lifecycle.connection, state.nextSeq())
        }
        guard let seq else { return }
        let message = FerryMessage(type: .push, seq: seq, serviceMethod: FerryPeer.goAwayRoute, bodyCodec: defaultCodec)
        channel.writeAndFlush(message, promise: nil)
    }

    /// Draining side: idle, and nothing arrived for `quietPeriod` since the go-away was sent or
    /// since the last refused call, so no call the remote sent before the go-away is still on
    /// its way.
    func isDrained(quietFor quietPeriod: Duration) -> Bool {
        state.withLock { $0.isDrained(quietFor: TimeAmount(quietPeriod), now: .now()) }
    }

    /// Whether the connection has written everything handed to it: nothing waits in the
    /// channel's outbound queue (a remote that reads slowly keeps replies there). Channels that
    /// cannot tell count as written.
    func outboundWritten() async -> Bool {
        let buffered = try? await channel.getOption(ChannelOptions.bufferedWritableBytes).get()
        return (buffered ?? 0) == 0
    }
}
