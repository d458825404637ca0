import NIOCore

/// Outbound CALLs and PUSHes: seqs, deadlines, the outbox and the deadline timer.
extension FerrySession {
    /// Sends a CALL with an encoded body and waits for its reply, its deadline or cancellation.
    /// The deadline is the options' timeout (else the peer default), capped by the deadline of
    /// the inbound call being handled, if any; it travels to the remote in `X-Ferry-Timeout`.
    nonisolated(nonsending) public func call(_ serviceMethod: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws -> FerryReply {
        let instruments = peer.instruments
        if instruments.tracer != nil || instruments.metrics != nil {
            return try await instrumentedCall(serviceMethod, body: body, codec: codec, options: options, instruments: instruments)
        }
        return try await sendCall(serviceMethod, body: body, codec: codec, options: options)
    }

    /// ``call(_:body:codec:options:)`` counted as in flight, inside a client span whose context
    /// travels in the meta.
    @inline(never)
    nonisolated(nonsending) private func instrumentedCall(
        _ serviceMethod: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions, instruments: PeerInstruments
    ) async throws -> FerryReply {
        let inFlight = instruments.metrics?.callsInFlightOut
        inFlight?.increment()
        defer { inFlight?.decrement() }
        guard let tracer = instruments.tracer else {
            return try await sendCall(serviceMethod, body: body, codec: codec, options: options)
        }
        var options = options
        let span = CallSpans.startClient(serviceMethod, remote: remoteAddress, tracer: tracer, meta: &options.meta)
        do {
            let reply = try await sendCall(serviceMethod, body: body, codec: codec, options: options)
            CallSpans.end(span, status: reply.status)
            return reply
        } catch {
            CallSpans.end(span, error: error)
            throw error
        }
    }

    /// Sends the CALL and waits for its reply.
    @inline(__always)
    nonisolated(nonsending) private func sendCall(_ serviceMethod: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws -> FerryReply {
        // What this function keeps across its wait is kept small: a thousand calls waiting at
        // once keep a thousand frames, and the memory they touch decides how many of them the
        // caches hold. So the message is built by a plain function (again for a resend), the
        // exchange hands it to another one that queues it, and the reply is finished by a third.
        let timeout = sendTimeout(options)
        // One clock read starts both the deadline and the cost.
        let start = clockLoop.now
        let deadline = start + TimeAmount(timeout)
        do {
            try Self.refuseExpired(timeout)
            // 106: the remote is draining and did not handle the call. A session that can redial
            // moves to a new connection and sends the call again there.
            var resends = 0
            while true {
                let reply = try await exchange(
                    Self.callMessage(serviceMethod, body: body, codec: codec, options: options, timeout: timeout),
                    deadline: deadline, timeout: timeout)
                guard reply.status.code == .shuttingDown, state.withLock({ $0.canRedial && !$0.isClosed }), resends < 3, NIODeadline.now() < deadline else {
                    return finishCall(reply, route: serviceMethod, bodyOut: body.readableBytes, start: start)
                }
                resends += 1
                leaveConnection(ObjectIdentifier(channel))
            }
        } catch {
            throw failedCall(error, route: serviceMethod, bodyOut: body.readableBytes, start: start)
        }
    }

    /// Sends a PUSH with an encoded body; returns once it is written, or fails at its deadline.
    /// From a handler, the deadline is no later than the handler's own.
    nonisolated(nonsending) public func push(_ serviceMethod: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws {
        var message = FerryMessage(
            type: .push, seq: 0, serviceMethod: serviceMethod, meta: options.meta,
            bodyCodec: codec, body: body, filters: options.filters)
        let start = clockLoop.now
        let timeout = sendTimeout(options)
        let deadline = start + TimeAmount(timeout)
        do {
            try Self.refuseExpired(timeout)
            let channel = try await prepareToSend(&message, before: deadline)
            try await write(message, on: channel, before: deadline)
            logExchange(.pushOut, route: serviceMethod, seq: message.seq, cost: Self.elapsed(since: start), bodyOut: body.readableBytes, bodyIn: 0, status: .ok)
        } catch {
            let status = failure(for: error)
            logExchange(.pushOut, route: serviceMethod, cost: Self.elapsed(since: start), bodyOut: body.readableBytes, bodyIn: 0, status: status)
            throw status
        }
    }

    /// A message's timeout: the options' (else the peer default), no longer than what the
    /// inbound call being handled has left.
    private func sendTimeout(_ options: FerryCallOptions) -> Duration {
        let timeout = options.timeout ?? peer.configuration.defaultCallTimeout
        guard let inherited = FerryDeadline.remaining else { return timeout }
        return min(timeout, max(inherited, .zero))
    }

    /// A message with no time left is not worth sending: it fails with 408 before it is written.
    private static func refuseExpired(_ timeout: Duration) throws {
        guard timeout <= .zero else { return }
        throw FerryStatus.timedOut("the deadline had passed before the message was sent")
    }

    /// The CALL message of ``call(_:body:codec:options:)``, before it gets its seq.
    @inline(never)
    private static func callMessage(
        _ serviceMethod: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions, timeout: Duration
    ) -> FerryMessage {
        var message = FerryMessage(
            type: .call, seq: 0, serviceMethod: serviceMethod, meta: options.meta,
            bodyCodec: codec, body: body, filters: options.filters)
        if let accept = options.acceptCodec {
            message.meta.set(FerryCallOptions.acceptCodecMetaKey, String(accept.rawValue))
        }
        if message.meta[FerryDeadline.metaKey] == nil {
            message.meta.add(FerryDeadline.metaKey, String(FerryDeadline.milliseconds(timeout)))
        }
        return message
    }

    /// Logs a call that failed on this side, and returns its error to throw.
    @inline(never)
    private func failedCall(_ error: any Error, route: String, bodyOut: Int, start: NIODeadline) -> any Error {
        if let status = error as? FerryStatus {
            logExchange(.callOut, route: route, cost: Self.elapsed(since: start), bodyOut: bodyOut, bodyIn: 0, status: status)
        }
        return error
    }

    /// Logs a call that got its reply and wraps the reply.
    @inline(never)
    private func finishCall(_ reply: consuming FerryMessage, route: String, bodyOut: Int, start: NIODeadline) -> FerryReply {
        let cost = Self.elapsed(since: start)
        logExchange(.callOut, route: route, seq: reply.seq, cost: cost, bodyOut: bodyOut, bodyIn: reply.body.readableBytes, status: reply.status)
        return FerryReply(message: reply, cost: cost, codecs: codecs)
    }

    /// The time since `start`, on the clock of NIO's deadlines.
    static func elapsed(since start: NIODeadline) -> Duration {
        Duration(NIODeadline.now() - start)
    }

    /// Writes `message` and waits until the socket took it, failing with 408 at `deadline` if a
    /// remote that does not read keeps it queued.
    private func write(_ message: FerryMessage, on channel: any Channel, before deadline: NIODeadline) async throws {
        let outcome = channel.eventLoop.makePromise(of: Void.self)
        // Both callbacks run on the channel's event loop, where a second completion is ignored.
        let timer = channel.eventLoop.scheduleTask(deadline: deadline) {
            outcome.fail(FerryStatus.timedOut("the message was still queued at its deadline"))
        }
        channel.writeAndFlush(message).whenComplete { result in
            timer.cancel()
            outcome.completeWith(result)
        }
        try await outcome.futureResult.get()
    }

    /// Gives `message` its seq, runs the before-write hook on it, and returns the connection to
    /// write it on, waiting as ``writableChannel(before:)`` does while it cannot take bytes.
    /// Without a hook, when the connection is open and writable, the seq and the connection
    /// come from one turn of the lock. A hook runs before the connection is chosen, so that a
    /// connection lost while it runs is waited for (or refused) like any other.
    @inline(__always)
    nonisolated(nonsending) private func prepareToSend(_ message: inout FerryMessage, before deadline: NIODeadline) async throws -> any Channel {
        if let ready = readyToSend() {
            message.seq = ready.seq
            return ready.channel
        }
        return try await prepareToSendWithHookOrWait(&message, before: deadline)
    }

    /// The next seq and the connection to write on, from one turn of the lock, when there is
    /// no before-write hook and the connection is open and writable; else nil.
    private func readyToSend() -> (seq: Int32, channel: any Channel)? {
        guard peer.configuration.hooks.beforeWrite == nil else { return nil }
        return state.withLock { state in
            guard let channel = state.lifecycle.writableConnection, channel.isWritable, let seq = state.nextSeq() else { return nil }
            return (seq, channel)
        }
    }

    /// The rest of ``prepareToSend(_:before:)``: a before-write hook to run, or a connection
    /// that is not ready yet. Out of line, so that the common case keeps a smaller frame.
    @inline(never)
    nonisolated(nonsending) private func prepareToSendWithHookOrWait(_ message: inout FerryMessage, before deadline: NIODeadline) async throws -> any Channel {
        message.seq = try nextSeq()
        try prepareForWrite(&message)
        return try await writableChannel(before: deadline)
    }

    /// The next seq; 102 once the session is closed.
    func nextSeq() throws -> Int32 {
        try state.withLock { state in
            guard let seq = state.nextSeq() else { throw FerryStatus.connectionClosed(state.lifecycle.closedReason ?? "") }
            return seq
        }
    }

    /// Runs the before-write hook on `message`.
    func prepareForWrite(_ message: inout FerryMessage) throws {
        guard let hook = peer.configuration.hooks.beforeWrite else { return }
        do {
            try hook(&message, self)
        } catch let status as FerryStatus {
            throw status
        } catch {
            throw FerryStatus.writeFailed("refused by the before-write hook: \(error)")
        }
    }

    /// The status a failed send turns into: 102 once the connection is gone, else 104.
    func failure(for error: any Error) -> FerryStatus {
        if let status = error as? FerryStatus { return status }
        if let reason = state.withLock({ $0.lifecycle.closedReason }) {
            return .connectionClosed(reason)
        }
        if let error = error as? ChannelError, error == .ioOnClosedChannel || error == .alreadyClosed {
            return .connectionClosed()
        }
        return .writeFailed("\(error)")
    }

    /// Writes a CALL and waits for its reply, the deadline or cancellation.
    nonisolated(nonsending) private func exchange(_ message: consuming FerryMessage, deadline: NIODeadline, timeout: Duration) async throws -> FerryMessage {
        let channel = try await prepareToSend(&message, before: deadline)
        let seq = message.seq
        return try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { continuation in
                startCall(message, on: channel, deadline: deadline, timeout: timeout, continuation: continuation)
            }
        } onCancel: {
            failPending(seq, with: FerryStatus.cancelled(origin: .localAfterSending))
        }
    }

    /// Makes a CALL pending and hands it to its connection: encoded at once on the connection's
    /// event loop, else through the outbox. A plain function, so that its work keeps no room
    /// in the waiting call's frame.
    @inline(never)
    private func startCall(
        _ message: FerryMessage, on channel: any Channel, deadline: NIODeadline, timeout: Duration,
        continuation: UnsafeContinuation<FerryMessage, any Error>
    ) {
        let onLoop = channel.eventLoop.inEventLoop
        let call = CallTable.Call(waiter: continuation, deadline: deadline, timeout: timeout, connection: ObjectIdentifier(channel))
        var arm: NIODeadline?
        let start = state.withLock { state in
            state.startCall(message, on: channel, call: call, onLoop: onLoop, cancelled: Task.isCancelled, arm: &arm)
        }
        if let arm { armDeadlineTimer(for: arm, on: channel.eventLoop) }
        switch start {
        case .refused(let status):
            continuation.resume(throwing: status)
        case .encodeNow:
            enqueueCall(message, on: channel)
        case .queued:
            break
        case .drainOutbox:
            channel.eventLoop.execute { [self] in drainOutbox() }
        }
    }

    /// Queues a pending CALL on its connection's encoder (on that connection's event loop); fails
    /// the call at once if it cannot be encoded or the connection is gone.
    private func enqueueCall(_ message: FerryMessage, on channel: any Channel) {
        do {
            try encoder(of: channel).enqueue(message)
        } catch {
            failPending(message.seq, with: failure(for: error))
        }
    }

    private func encoder(of channel: any Channel) throws -> MessageEncoderHandler {
        try channel.pipeline.syncOperations.handler(type: MessageEncoderHandler.self)
    }

    /// On the event loop the drain was scheduled on: hands the outbox's CALLs to their
    /// connections' encoders, in the order they were made. A call whose connection is on
    /// another loop (one dialled since the drain was scheduled) hops there. A call that has
    /// failed meanwhile (cancelled, past its deadline, its connection lost) is not sent: nobody
    /// waits for its reply.
    private func drainOutbox() {
        let calls = state.withLock { $0.takeOutbox() }
        var current: (channel: ObjectIdentifier, encoder: MessageEncoderHandler)?
        for call in calls {
            let channel = call.connection
            guard channel.eventLoop.inEventLoop else {
                channel.eventLoop.execute { [self] in enqueueCall(call.message, on: channel) }
                continue
            }
            do {
                let id = ObjectIdentifier(channel)
                let encoder: MessageEncoderHandler
                if let current, current.channel == id {
                    encoder = current.encoder
                } else {
                    encoder = try self.encoder(of: channel)
                    current = (id, encoder)
                }
                try encoder.enqueue(call.message)
            } catch {
                failPending(call.message.seq, with: failure(for: error))
            }
        }
    }

    /// Schedules the deadline timer for `deadline`. A timer made stale by an earlier deadline
    /// still fires; it finds nothing expired and costs one turn of the lock.
    private func armDeadlineTimer(for deadline: NIODeadline, on eventLoop: any EventLoop) {
        eventLoop.scheduleTask(deadline: deadline) { [weak self] in
            self?.expireCalls(at: eventLoop.now)
        }
    }

    /// The deadline timer fired at `now` (its event loop's time): fails the calls whose
    /// deadline has passed with 408 and re-arms for the earliest of the rest.
    private func expireCalls(at now: NIODeadline) {
        let (expired, rearm, retired, eventLoop) = state.withLock { state in
            let (expired, rearm, retired) = state.expireCalls(now: now)
            return (expired, rearm, retired, state.lifecycle.connection.eventLoop)
        }
        if let rearm { armDeadlineTimer(for: rearm, on: eventLoop) }
        for call in expired {
            call.waiter.resume(throwing: FerryStatus.timedOut("no reply within \(call.timeout)", origin: .localAfterSending))
        }
        for connection in retired { connection.close(promise: nil) }
    }

    /// Fails the pending call `seq`, if it still waits.
    func failPending(_ seq: Int32, with status: FerryStatus) {
        guard let call = removePending(seq) else { return }
        call.waiter.resume(throwing: status)
    }

    /// Removes the pending call `seq`; closes a moved-from connection it was the last call of.
    func removePending(_ seq: Int32) -> PendingCall? {
        var retired: (any Channel)?
        let call = state.withLock { $0.removeCall(seq, retired: &retired) }
        retired?.close(promise: nil)
        return call
    }
}
