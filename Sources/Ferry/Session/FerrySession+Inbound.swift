import NIOCore

/// Inbound messages: admission, the auth gate, CALL and PUSH handlers and their replies.
extension FerrySession {
    /// Lets an accepted session's messages through (the accept hook passed), starting with those
    /// that arrived while it ran, in order. Without auth the session is ready at once.
    func admit(requiresAuth: Bool) {
        let channel = self.channel
        // On the connection's loop, so that no message is read between the change and the
        // messages held back until it.
        if channel.eventLoop.inEventLoop {
            admitOnLoop(requiresAuth: requiresAuth, channel: channel)
        } else {
            channel.eventLoop.execute { [self] in admitOnLoop(requiresAuth: requiresAuth, channel: channel) }
        }
    }

    private func admitOnLoop(requiresAuth: Bool, channel: any Channel) {
        let (waiting, ready) = state.withLock { state in
            (state.admit(requiresAuth: requiresAuth), state.lifecycle.isReady)
        }
        if ready { peer.sessionReady(self) }
        guard !waiting.isEmpty, let handler = try? channel.pipeline.syncOperations.handler(type: SessionHandler.self) else { return }
        // The hook took time: the held messages' deadlines are checked against the present.
        handler.clock.now()
        for held in waiting {
            receive(held.message, readAt: held.readAt, clock: handler.clock, from: channel, replies: handler.replies)
        }
    }

    /// Handles one decoded message from `channel`; runs on its event loop. Handlers' replies go
    /// to `replies`, the encoder of that connection.
    func receive(_ message: FerryMessage, clock: ConnectionClock, from channel: any Channel, replies: MessageEncoderHandler) {
        receive(message, readAt: clock.lastRead, clock: clock, from: channel, replies: replies)
    }

    /// ``receive(_:clock:from:replies:)`` for a message read at `readAt`.
    private func receive(
        _ message: FerryMessage, readAt: ContinuousClock.Instant, clock: ConnectionClock, from channel: any Channel, replies: MessageEncoderHandler
    ) {
        let authenticated: Bool
        switch state.withLock({ $0.gate(message, readAt: readAt) }) {
        case .pass(let passed):
            authenticated = passed
        case .heldBack:
            return
        case .tooManyHeldBack:
            closeConnection(channel, reason: "more than \(SessionState.heldBackLimit) messages before the accept hook finished")
            return
        }
        switch message.type {
        case .reply:
            completeCall(with: message)
        case .authReply:
            state.withLock { $0.takeAuthWaiter() }?.resume(returning: message)
        case .authCall:
            receiveAuthCall(message, on: channel)
        case .call, .push:
            guard authenticated else {
                refuseUnauthenticated(message, on: channel)
                return
            }
            if let hook = peer.configuration.hooks.onHeaderRead {
                do {
                    try hook(message, self)
                } catch {
                    let status = (error as? FerryStatus) ?? FerryStatus.badMessage("refused: \(error)")
                    logger.debug("message refused after its header was read", metadata: ["route": "\(message.serviceMethod)", "status": "\(status)"])
                    if message.type == .call { writeReply(errorReply(to: message, status), on: channel) }
                    return
                }
            }
            if message.type == .call {
                handleCall(message, readAt: readAt, clock: clock, on: channel, replies: replies)
            } else {
                handlePush(message, readAt: readAt, clock: clock, on: channel)
            }
        default:
            let status = FerryStatus.messageTypeNotAllowed("type \(message.type.rawValue)")
            recordCloseReason("unsupported message type \(message.type.rawValue)")
            logger.warning("closing session: unsupported message type", metadata: ["type": "\(message.type.rawValue)"])
            channel.writeAndFlush(errorReply(to: message, status)).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    func errorReply(to message: FerryMessage, _ status: FerryStatus) -> FerryMessage {
        FerryMessage(type: .reply, seq: message.seq, status: status, filters: message.filters)
    }

    private func completeCall(with reply: FerryMessage) {
        guard let call = removePending(reply.seq) else {
            logger.debug("dropping a reply nobody waits for (late or unknown)", metadata: ["seq": "\(reply.seq)"])
            return
        }
        call.waiter.resume(returning: reply)
    }

    /// Why a new inbound message may not start a handler, if it may not. An admitted handler
    /// counts as running; one that will run in place and queue its reply before this thread
    /// does anything else (`replyInPlace`) counts as its unwritten reply from the start, so
    /// that it takes the session's lock once.
    private func admissionRefusal(replyInPlace: Bool = false) -> FerryStatus? {
        if peer.isDraining {
            state.withLock { $0.refusedWhileDraining(at: .now()) }
            return FerryStatus.shuttingDown("the peer is draining; the call was not handled")
        }
        guard peer.admitHandler() else {
            return FerryStatus.overloaded("\(peer.configuration.limits.maximumConcurrentHandlers) handlers already running")
        }
        state.withLock { $0.handlerStarted(replyInPlace: replyInPlace) }
        return nil
    }

    private func handlerFinished() {
        state.withLock { $0.handlerFinished() }
        peer.releaseHandler()
    }

    private func handleCall(
        _ message: FerryMessage, readAt: ContinuousClock.Instant, clock: ConnectionClock, on channel: any Channel, replies: MessageEncoderHandler
    ) {
        let router = routes
        let route = router.handler(for: .call, path: message.serviceMethod)
        let inPlace: FerrySynchronousHandler? =
            if case .synchronous(let handler)? = route, runsInPlace(on: channel), channel.isWritable { handler } else { nil }
        if let refusal = admissionRefusal(replyInPlace: inPlace != nil) {
            logExchange(.callIn, route: message.serviceMethod, seq: message.seq, cost: .zero, bodyOut: 0, bodyIn: message.body.readableBytes, status: refusal)
            writeReply(errorReply(to: message, refusal), on: channel)
            return
        }
        // The deadline and the cost in the log are measured from the read that completed the
        // message; in place, the deadline is checked against the connection's latest clock
        // reading, and the cost ends with the one reading after the handler.
        let context = FerryContext(session: self, message: message, logger: logger, arrival: readAt)
        let exposeErrorDetails = peer.configuration.exposeErrorDetails
        if let inPlace {
            // Counted as an unwritten reply since admission; the handler cannot make its
            // connection unwritable (nothing is written while it runs), so the reply is queued.
            let reply =
                if let tracer = peer.instruments.tracer {
                    CallSpans.serve(message, tracer: tracer) {
                        router.reply(
                            to: message, synchronousHandler: inPlace, context: context, checkedAt: clock.latest,
                            exposeErrorDetails: exposeErrorDetails)
                    }
                } else {
                    router.reply(
                        to: message, synchronousHandler: inPlace, context: context, checkedAt: clock.latest, exposeErrorDetails: exposeErrorDetails)
                }
            peer.releaseHandler()
            queueReply(reply, to: message, on: replies, handledSince: context.arrival, until: clock.now())
            return
        }
        let replies = NIOLoopBound(replies, eventLoop: channel.eventLoop)
        let tracer = peer.instruments.tracer
        startHandler(on: channel) { [self] in
            let reply =
                if let tracer {
                    await CallSpans.serve(message, tracer: tracer) {
                        await router.reply(to: message, route: route, context: context, exposeErrorDetails: exposeErrorDetails)
                    }
                } else {
                    await router.reply(to: message, route: route, context: context, exposeErrorDetails: exposeErrorDetails)
                }
            await sendReply(reply, to: message, on: channel, replies: replies, handledSince: context.arrival)
        }
    }

    private func handlePush(_ message: FerryMessage, readAt: ContinuousClock.Instant, clock: ConnectionClock, on channel: any Channel) {
        if let refusal = admissionRefusal() {
            logger.warning("dropping a push", metadata: ["route": "\(message.serviceMethod)", "status": "\(refusal)"])
            return
        }
        let context = FerryContext(session: self, message: message, logger: logger, arrival: readAt)
        let router = routes
        let route = router.handler(for: .push, path: message.serviceMethod)
        if case .synchronous(let handler)? = route, runsInPlace(on: channel) {
            let status = router.receivePush(message, synchronousHandler: handler, context: context, checkedAt: clock.latest)
            pushHandled(message, status: status, since: context.arrival, until: clock.now())
            return
        }
        startHandler(on: channel) { [self] in
            pushHandled(message, status: await router.receivePush(message, route: route, context: context), since: context.arrival, until: .now)
        }
    }

    private func pushHandled(_ message: FerryMessage, status: FerryStatus, since start: ContinuousClock.Instant, until end: ContinuousClock.Instant) {
        if status.code == .notFound {
            logger.warning("dropping a push to an unknown route", metadata: ["route": "\(message.serviceMethod)"])
        }
        logExchange(.pushIn, route: message.serviceMethod, seq: message.seq, cost: start.duration(to: end), bodyOut: 0, bodyIn: message.body.readableBytes, status: status)
        handlerFinished()
    }

    /// Whether a synchronous handler may run right here: handlers run on the event loop and
    /// this is the connection's loop (every inbound message is read on it).
    private func runsInPlace(on channel: any Channel) -> Bool {
        peer.configuration.handlerExecution == .eventLoop && channel.eventLoop.inEventLoop
    }

    /// Starts a handler's task where ``FerryPeer/Configuration/handlerExecution`` says.
    private func startHandler(on channel: any Channel, _ body: sending @escaping () async -> Void) {
        switch peer.configuration.handlerExecution {
        case .eventLoop:
            let executor = peer.eventLoopExecutors.executor(for: channel.eventLoop)
            // On the connection's own loop (every inbound message is), the handler starts at
            // once, on this thread, and is queued only if it suspends.
            if #available(macOS 26, iOS 26, watchOS 26, tvOS 26, visionOS 26, *), channel.eventLoop.inEventLoop {
                Task.immediate(executorPreference: executor, operation: body)
            } else {
                Task(executorPreference: executor, operation: body)
            }
        case .globalExecutor:
            Task(operation: body)
        }
    }

    /// Writes a handler's reply on the connection its call came from, applying the
    /// slow-consumer policy. The handler's slot is free once the reply is handed to the
    /// connection (a remote that stops reading then fills the outbound queue, and later replies
    /// wait for room at most the default call timeout); a graceful shutdown still waits for the
    /// reply to be written. A reply the peer cannot encode (a frame over the size limit) is
    /// answered with a 500 instead.
    private func sendReply(
        _ reply: FerryMessage, to call: FerryMessage, on channel: any Channel, replies: NIOLoopBound<MessageEncoderHandler>,
        handledSince start: ContinuousClock.Instant
    ) async {
        if !channel.isWritable {
            let dropped: String? = switch peer.configuration.limits.slowConsumerPolicy {
            case .applyBackPressure:
                await waitForWritability(of: channel)
            case .failWrite:
                "slow consumer"
            case .closeSession:
                closeSlowConsumer(channel)
            }
            if let dropped {
                logger.warning("dropping a reply", metadata: ["seq": "\(reply.seq)", "reason": "\(dropped)"])
                logExchange(.callIn, route: call.serviceMethod, seq: call.seq, cost: start.duration(to: .now), bodyOut: 0, bodyIn: call.body.readableBytes, status: reply.status)
                handlerFinished()
                return
            }
        }
        replyHandedOver()
        if channel.eventLoop.inEventLoop {
            queueReply(reply, to: call, on: replies.value, handledSince: start, until: .now)
        } else {
            channel.eventLoop.execute { [self] in queueReply(reply, to: call, on: replies.value, handledSince: start, until: .now) }
        }
    }

    /// A handler is done and its reply handed over: its slot is free (one lock for both
    /// counts), its reply unwritten until the encoder says otherwise.
    private func replyHandedOver() {
        state.withLock { $0.replyHandedOver() }
        peer.releaseHandler()
    }

    /// Queues a reply counted as unwritten on its connection's encoder (on that connection's
    /// event loop). A reply that cannot be encoded (a frame over the size limit) is replaced
    /// with a 500; one that cannot be queued at all (the connection is gone) counts as gone.
    private func queueReply(
        _ reply: FerryMessage, to call: FerryMessage, on replies: MessageEncoderHandler, handledSince start: ContinuousClock.Instant,
        until end: ContinuousClock.Instant
    ) {
        var reply = reply
        do {
            try prepareForWrite(&reply)
        } catch {
            reply = errorReply(to: reply, (error as? FerryStatus) ?? .writeFailed("\(error)"))
        }
        do {
            try replies.enqueueReply(reply)
        } catch let encoding as FerryProtocolError {
            logger.warning("replacing a reply that cannot be sent", metadata: ["seq": "\(reply.seq)", "error": "\(encoding)"])
            reply = errorReply(to: reply, FerryStatus.internalServerError("the reply could not be sent: \(encoding)"))
            do { try replies.enqueueReply(reply) } catch { repliesLeft(1) }
        } catch {
            logger.debug("could not write a reply", metadata: ["seq": "\(reply.seq)", "error": "\(error)"])
            repliesLeft(1)
        }
        logExchange(.callIn, route: call.serviceMethod, seq: call.seq, cost: start.duration(to: end), bodyOut: reply.body.readableBytes, bodyIn: call.body.readableBytes, status: reply.status)
    }

    /// Replies queued on one of this session's connections that have since been passed down to
    /// the channel, or dropped with it.
    func repliesLeft(_ count: Int) {
        state.withLock { $0.repliesLeft(count) }
        peer.drainProgressMade()
    }

    /// The close-session slow-consumer policy; returns the reason.
    private func closeSlowConsumer(_ channel: any Channel) -> String {
        closeConnection(channel, reason: "slow consumer: the outbound queue is full")
        return "slow consumer: the session is closed"
    }

    @discardableResult
    func writeReply(_ reply: FerryMessage, on channel: any Channel) -> EventLoopFuture<Void> {
        var reply = reply
        do {
            try prepareForWrite(&reply)
        } catch {
            let status = (error as? FerryStatus) ?? .writeFailed("\(error)")
            reply = FerryMessage(type: reply.type, seq: reply.seq, status: status, filters: reply.filters)
        }
        let seq = reply.seq
        let written = channel.writeAndFlush(reply)
        written.whenFailure { [logger] error in
            logger.debug("could not write a reply", metadata: ["seq": "\(seq)", "error": "\(error)"])
        }
        return written
    }

}
