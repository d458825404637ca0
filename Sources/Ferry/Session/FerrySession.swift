import Logging
import NIOCore
import NIOSSL
import Synchronization

/// One connection between two peers. Either side can CALL and PUSH the other.
///
/// Sessions come from ``FerryPeer/dial(_:tls:serverHostname:)`` and from accepted connections
/// (see ``FerryPeer/hub``). Calls are safe from any task; the typed `call` and `push` helpers come
/// from ``FerrySessionProtocol``. A dialled session of a peer with a ``FerryPeer/Redial`` policy
/// survives broken connections: it dials again and keeps its ID.
public final class FerrySession: FerrySessionProtocol, CustomStringConvertible {
    /// The remote address, e.g. `127.0.0.1:52100`.
    public let remoteAddress: String
    /// Whether this side dialled the connection (false: it was accepted by a listener).
    public let isDialled: Bool
    let peer: FerryPeer
    let logger: Logger
    /// Whether every exchange gets a debug line: the logger's level when the session opened,
    /// read once rather than once per message.
    private let logsEveryExchange: Bool
    private let dialTarget: DialTarget?

    private enum Phase {
        case open
        case redialling
        case closed
    }

    private struct PendingCall {
        /// Resumed exactly once: by whoever removes the call from ``State/pending``.
        var continuation: UnsafeContinuation<FerryMessage, any Error>
        var deadline: NIODeadline
        /// The call's timeout, for the 408's cause.
        var timeout: Duration
        /// The connection the call was written on.
        var connection: ObjectIdentifier
    }

    /// A CALL made off its connection's event loop, waiting in ``State/outbox`` for that loop.
    private struct OutboundCall {
        var message: FerryMessage
        var channel: any Channel
    }

    /// Where a new CALL goes, decided under the lock that makes it pending.
    private enum CallQueueing {
        /// Refused: the session is closed or redialling, or the calling task was cancelled.
        case refused(FerryStatus)
        /// Made on its connection's event loop: encoded at once.
        case encodeNow
        /// Added to the outbox, whose drain is already scheduled.
        case queued
        /// Added to an empty outbox: the caller schedules its drain.
        case drainOutbox
    }

    /// One timer for the deadlines of all pending calls, armed for the earliest deadline that
    /// is not yet covered. A reply does not disarm it: when it fires it fails the expired calls
    /// and re-arms for the earliest remaining one. Calls with the same timeout arrive in deadline
    /// order, so the common case schedules nothing per call.
    private struct DeadlineTimer {
        var firesAt: NIODeadline
        var task: Scheduled<Void>
    }

    private struct State {
        var id: String
        var channel: any Channel
        var phase = Phase.open
        var nextSeq: Int32 = 0
        var pending: [Int32: PendingCall] = [:]
        /// CALLs made off their connection's event loop since its last drain, in order. One hop
        /// to the loop carries every call that callers made meanwhile, so that callers woken
        /// together do not each schedule a task on the loop (and wake it).
        var outbox: [OutboundCall] = []
        var outboxDrainScheduled = false
        var deadlineTimer: DeadlineTimer?
        var pendingAuth: CheckedContinuation<FerryMessage, any Error>?
        var authenticated: Bool
        var closeReason: String?
        var ready = false
        var closedByThisSide = false
        var idWasSet = false
        var handlersRunning = 0
        /// Replies handed to a connection's encoder and not yet passed down to the channel; a
        /// graceful shutdown waits for them (and then for the channel to write its queue) before
        /// it closes the connection.
        var repliesUnwritten = 0
        var reconnectWaiters = WaiterList<any Channel>()
        var writabilityWaiters = WaiterList<Void>()
        /// The remote asked this side to leave the current connection (it is draining); a new
        /// one is being dialled and new calls wait for it.
        var goingAway = false
        /// Draining side: when the go-away was sent, and when the last call or push arrived.
        var goAwaySent: NIODeadline?
        var lastInbound = NIODeadline.now()
        /// Accepted side: false while the accept hook runs; messages that arrive meanwhile wait.
        var admitted: Bool
        var heldBack: [HeldBackMessage] = []
    }
    private let state: Mutex<State>

    init(channel: any Channel, peer: FerryPeer, isDialled: Bool, remoteAddress: String, dialTarget: DialTarget?) {
        self.peer = peer
        self.isDialled = isDialled
        self.remoteAddress = remoteAddress
        self.dialTarget = dialTarget
        let needsAuth = !isDialled && peer.configuration.auth?.verify != nil
        self.state = Mutex(State(id: remoteAddress, channel: channel, authenticated: !needsAuth, admitted: isDialled))
        var logger = peer.logger
        logger[metadataKey: "remote"] = "\(remoteAddress)"
        self.logger = logger
        self.logsEveryExchange = logger.logLevel <= .debug
    }

    // MARK: Identity

    /// The session ID: the remote address until ``setID(_:)`` changes it.
    public var id: String { state.withLock { $0.id } }

    /// Changes the session ID. An older session with the same ID is closed (single login).
    public func setID(_ newID: String) {
        let oldID = state.withLock { state in
            defer {
                state.id = newID
                state.idWasSet = true
            }
            return state.id
        }
        peer.hub.rename(self, from: oldID, to: newID)
    }

    /// The peer's codecs.
    public var codecs: FerryCodecRegistry { peer.configuration.codecs }
    /// The peer's default codec.
    public var defaultCodec: FerryCodecID { peer.configuration.defaultCodec }
    /// Whether the session has a live connection (false while redialling and once closed).
    public var isActive: Bool {
        let (open, channel) = state.withLock { ($0.phase == .open, $0.channel) }
        return open && channel.isActive
    }

    /// Whether the session is closed for good: closed by either side with no redial, or its
    /// redial gave up. A session that is redialling is not closed.
    public var isClosed: Bool { state.withLock { $0.phase == .closed } }

    /// A readable form, for logs and error messages.
    public var description: String { "FerrySession(\(id), remote: \(remoteAddress))" }

    /// The current connection.
    var channel: any Channel { state.withLock { $0.channel } }

    /// A task executor that runs jobs on the event loop of the session's current connection.
    ///
    /// A task that prefers it makes its calls without leaving that thread: the CALL is encoded
    /// as it is made and the task resumes on the loop that read the reply, where a task on the
    /// global concurrent executor crosses threads twice per call. Under load those crossings
    /// are about 40 % of the client's CPU per call (see BENCHMARKS.md).
    ///
    /// ```swift
    /// try await withTaskExecutorPreference(session.taskExecutor) {
    ///     for item in items { try await session.push("/feed/item", item) }
    /// }
    /// ```
    ///
    /// Whatever such a task does between its calls runs on the event loop too, holding up
    /// every connection of that loop: keep it short and never block. After a redial the
    /// session's connection may sit on another loop; the executor asked for before then still
    /// works, with the two hops back.
    public var taskExecutor: any TaskExecutor { peer.eventLoopExecutors.executor(for: channel.eventLoop) }

    /// Closes the session for good (no redial); pending calls fail with status 102.
    public func close() async {
        let channel = state.withLock { state in
            state.closedByThisSide = true
            return state.channel
        }
        recordCloseReason("closed by this side")
        try? await channel.close()
        if state.withLock({ $0.phase == .redialling }) { finishClosing() }
    }

    // MARK: Outbound

    /// Sends a CALL with an encoded body and waits for its reply, its deadline or cancellation.
    /// The deadline is the options' timeout (else the peer default), capped by the deadline of
    /// the inbound call being handled, if any; it travels to the remote in `X-Ferry-Timeout`.
    nonisolated(nonsending) public func call(_ serviceMethod: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws -> FerryReply {
        // What this function keeps across its wait is kept small: a thousand calls waiting at
        // once keep a thousand frames, and the memory they touch decides how many of them the
        // caches hold. So the message is built by a plain function (again for a resend), the
        // exchange hands it to another one that queues it, and the reply is finished by a third.
        let timeout = callTimeout(options)
        // One clock read starts both the deadline and the cost.
        let start = NIODeadline.now()
        let deadline = start + TimeAmount(timeout)
        do {
            // 106: the remote is draining and did not handle the call. A session that can redial
            // moves to a new connection and sends the call again there. (One call site: the
            // exchange is inlined here, one async frame fewer per call.)
            var resends = 0
            while true {
                let reply = try await exchange(
                    Self.callMessage(serviceMethod, body: body, codec: codec, options: options, timeout: timeout),
                    deadline: deadline, timeout: timeout)
                guard reply.status.code == .shuttingDown, canMoveConnection, resends < 3, NIODeadline.now() < deadline else {
                    return finishCall(reply, route: serviceMethod, bodyOut: body.readableBytes, start: start)
                }
                resends += 1
                leaveConnection(currentChannelID)
            }
        } catch {
            throw failedCall(error, route: serviceMethod, bodyOut: body.readableBytes, start: start)
        }
    }

    /// A call's timeout: the options' (else the peer default), no longer than what the inbound
    /// call being handled has left.
    private func callTimeout(_ options: FerryCallOptions) -> Duration {
        let timeout = options.timeout ?? peer.configuration.defaultCallTimeout
        guard let inherited = FerryDeadline.remaining else { return timeout }
        return min(timeout, max(inherited, .zero))
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
        logExchange(.callOut, route: route, cost: cost, bodyOut: bodyOut, bodyIn: reply.body.readableBytes, status: reply.status)
        return FerryReply(message: reply, cost: cost, codecs: codecs)
    }

    /// The time since `start`, on the clock of NIO's deadlines.
    private static func elapsed(since start: NIODeadline) -> Duration {
        Duration(NIODeadline.now() - start)
    }

    /// Sends a PUSH with an encoded body; returns once it is written, or fails at its deadline.
    nonisolated(nonsending) public func push(_ serviceMethod: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws {
        var message = FerryMessage(
            type: .push, seq: 0, serviceMethod: serviceMethod, meta: options.meta,
            bodyCodec: codec, body: body, filters: options.filters)
        let start = NIODeadline.now()
        let deadline = start + TimeAmount(options.timeout ?? peer.configuration.defaultCallTimeout)
        do {
            let channel = try await prepareToSend(&message, before: deadline)
            try await write(message, on: channel, before: deadline)
            logExchange(.pushOut, route: serviceMethod, cost: Self.elapsed(since: start), bodyOut: body.readableBytes, bodyIn: 0, status: .ok)
        } catch {
            let status = failure(for: error)
            logExchange(.pushOut, route: serviceMethod, cost: Self.elapsed(since: start), bodyOut: body.readableBytes, bodyIn: 0, status: status)
            throw status
        }
    }

    /// Writes `message` and waits until the socket took it, failing with 408 at `deadline` if a
    /// remote that does not read keeps it queued.
    private func write(_ message: FerryMessage, on channel: any Channel, before deadline: NIODeadline) async throws {
        let outcome = channel.eventLoop.makePromise(of: Void.self)
        // Both callbacks run on the channel's event loop, where a second completion is ignored.
        let timer = channel.eventLoop.scheduleTask(deadline: deadline) {
            outcome.fail(FerryStatus(.timedOut, "Timeout", cause: "the message was still queued at its deadline"))
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
            guard state.phase == .open, !state.goingAway, state.channel.isWritable else { return nil }
            state.nextSeq &+= 1
            return (state.nextSeq, state.channel)
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

    private func nextSeq() throws -> Int32 {
        try state.withLock { state in
            guard state.phase != .closed else { throw FerryStatus.connectionClosed(state.closeReason ?? "") }
            state.nextSeq &+= 1
            return state.nextSeq
        }
    }

    private func prepareForWrite(_ message: inout FerryMessage) throws {
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
    private func failure(for error: any Error) -> FerryStatus {
        if let status = error as? FerryStatus { return status }
        if let reason = state.withLock({ $0.phase == .closed ? ($0.closeReason ?? "") : nil }) {
            return .connectionClosed(reason)
        }
        if let error = error as? ChannelError, error == .ioOnClosedChannel || error == .alreadyClosed {
            return .connectionClosed()
        }
        return .writeFailed("\(error)")
    }

    /// The connection to write on, once it exists and can take more bytes: waits while
    /// redialling (if the policy says so) and while the socket queue is full (under back-pressure).
    private func writableChannel(before deadline: NIODeadline) async throws -> any Channel {
        let channel = try await connectedChannel(before: deadline)
        guard !channel.isWritable else { return channel }
        switch peer.configuration.limits.slowConsumerPolicy {
        case .failWrite:
            throw FerryStatus(.writeFailed, "Slow Consumer", cause: "the remote is not reading; the outbound queue is full")
        case .closeSession:
            recordCloseReason("slow consumer: the outbound queue passed \(peer.configuration.limits.maximumQueuedOutboundBytes) bytes")
            logger.warning("closing session: slow consumer")
            channel.close(promise: nil)
            throw FerryStatus.connectionClosed("slow consumer")
        case .applyBackPressure:
            try await wait(for: \.writabilityWaiters, before: deadline, on: channel.eventLoop) { _ in channel.isWritable ? () : nil }
            return channel
        }
    }

    private func connectedChannel(before deadline: NIODeadline) async throws -> any Channel {
        let (phase, channel, reason, goingAway) = state.withLock { ($0.phase, $0.channel, $0.closeReason, $0.goingAway) }
        switch phase {
        case .open where !goingAway:
            return channel
        case .open:
            return try await wait(for: \.reconnectWaiters, before: deadline, on: channel.eventLoop) { state in
                state.phase == .open && !state.goingAway ? state.channel : nil
            }
        case .closed:
            throw FerryStatus.connectionClosed(reason ?? "")
        case .redialling:
            guard peer.configuration.redial?.callsWaitForReconnect == true else {
                throw FerryStatus.connectionClosed("redialling")
            }
            return try await wait(for: \.reconnectWaiters, before: deadline, on: channel.eventLoop) { state in
                state.phase == .open && !state.goingAway ? state.channel : nil
            }
        }
    }

    /// Suspends until `ready` yields a value (checked under the lock before and after
    /// registering, so a wake-up cannot be lost), the deadline passes (408), the session closes
    /// (102) or the task is cancelled (499).
    private func wait<Value>(
        for list: WritableKeyPath<State, WaiterList<Value>> & Sendable, before deadline: NIODeadline, on eventLoop: any EventLoop,
        ready: @escaping @Sendable (State) -> Value?
    ) async throws -> Value {
        let waiterID = Mutex<UInt64?>(nil)
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Value, any Error>) in
                let immediate: Result<Value, FerryStatus>? = state.withLock { state in
                    if let value = ready(state) { return .success(value) }
                    if state.phase == .closed { return .failure(.connectionClosed(state.closeReason ?? "")) }
                    let id = state[keyPath: list].add(continuation)
                    waiterID.withLock { $0 = id }
                    return nil
                }
                if let immediate {
                    continuation.resume(with: immediate)
                    return
                }
                let id = waiterID.withLock { $0 }!
                eventLoop.scheduleTask(deadline: deadline) { [self] in
                    state.withLock { $0[keyPath: list].remove(id) }?
                        .resume(throwing: FerryStatus(.timedOut, "Timeout", cause: "deadline passed while waiting to send"))
                }
                // Re-check: the condition may have turned true between the first check and now.
                let late: Value? = state.withLock { state in
                    guard let value = ready(state), state[keyPath: list].remove(id) != nil else { return nil }
                    return value
                }
                if let late { continuation.resume(returning: late) }
            }
        } onCancel: { [self] in
            guard let id = waiterID.withLock({ $0 }) else { return }
            state.withLock { $0[keyPath: list].remove(id) }?
                .resume(throwing: FerryStatus(.cancelled, "Cancelled", cause: "the calling task was cancelled"))
        }
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
            failPending(seq, with: FerryStatus(.cancelled, "Cancelled", cause: "the calling task was cancelled"))
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
        let queueing: CallQueueing = state.withLock { state in
            if state.phase == .closed { return .refused(.connectionClosed(state.closeReason ?? "")) }
            // The connection this call took was lost since (a redial is under way): the
            // calls pending on it have been failed, and this one would wait for nothing.
            if state.phase == .redialling { return .refused(.connectionClosed("connection lost")) }
            // Cancelled before it was pending: the cancellation handler found nothing
            // to fail. (Once it is pending, the handler fails it.)
            if Task.isCancelled { return .refused(FerryStatus(.cancelled, "Cancelled", cause: "the calling task was cancelled")) }
            state.pending[message.seq] = PendingCall(
                continuation: continuation, deadline: deadline, timeout: timeout, connection: ObjectIdentifier(channel))
            armDeadlineTimer(&state, for: deadline, on: channel.eventLoop)
            if onLoop { return .encodeNow }
            state.outbox.append(OutboundCall(message: message, channel: channel))
            if state.outboxDrainScheduled { return .queued }
            state.outboxDrainScheduled = true
            return .drainOutbox
        }
        switch queueing {
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
        var calls: [OutboundCall] = []
        state.withLock { state in
            state.outboxDrainScheduled = false
            swap(&calls, &state.outbox)
            calls.removeAll { state.pending[$0.message.seq] == nil }
        }
        var current: (channel: ObjectIdentifier, encoder: MessageEncoderHandler)?
        for call in calls {
            guard call.channel.eventLoop.inEventLoop else {
                call.channel.eventLoop.execute { [self] in enqueueCall(call.message, on: call.channel) }
                continue
            }
            do {
                let id = ObjectIdentifier(call.channel)
                let encoder: MessageEncoderHandler
                if let current, current.channel == id {
                    encoder = current.encoder
                } else {
                    encoder = try self.encoder(of: call.channel)
                    current = (id, encoder)
                }
                try encoder.enqueue(call.message)
            } catch {
                failPending(call.message.seq, with: failure(for: error))
            }
        }
    }

    /// Under the state lock: makes sure the deadline timer fires no later than `deadline`.
    private func armDeadlineTimer(_ state: inout State, for deadline: NIODeadline, on eventLoop: any EventLoop) {
        if let armed = state.deadlineTimer, armed.firesAt <= deadline { return }
        state.deadlineTimer?.task.cancel()
        let task = eventLoop.scheduleTask(deadline: deadline) { [weak self] in
            guard let self else { return }
            self.expireCalls()
        }
        state.deadlineTimer = DeadlineTimer(firesAt: deadline, task: task)
    }

    /// The deadline timer fired: fails the calls whose deadline has passed with 408 and re-arms
    /// for the earliest of the rest.
    private func expireCalls() {
        let now = NIODeadline.now()
        let expired: [PendingCall] = state.withLock { state in
            state.deadlineTimer = nil
            var expiredSeqs: [Int32] = []
            var next: NIODeadline?
            for (seq, call) in state.pending {
                if call.deadline <= now {
                    expiredSeqs.append(seq)
                } else if next.map({ call.deadline < $0 }) ?? true {
                    next = call.deadline
                }
            }
            if let next { armDeadlineTimer(&state, for: next, on: state.channel.eventLoop) }
            return expiredSeqs.compactMap { state.pending.removeValue(forKey: $0) }
        }
        for call in expired {
            call.continuation.resume(throwing: FerryStatus(.timedOut, "Timeout", cause: "no reply within \(call.timeout)"))
        }
    }

    private func failPending(_ seq: Int32, with status: FerryStatus) {
        guard let call = state.withLock({ $0.pending.removeValue(forKey: seq) }) else { return }
        call.continuation.resume(throwing: status)
    }

    /// What the session is holding on to: calls awaiting replies, calls not yet handed to their
    /// connection, and suspended senders. All zero when nothing is in progress; tests use it to
    /// show nothing leaks.
    var outstanding: (pendingCalls: Int, unsentCalls: Int, reconnectWaiters: Int, writabilityWaiters: Int, handlers: Int) {
        state.withLock {
            ($0.pending.count, $0.outbox.count, $0.reconnectWaiters.count, $0.writabilityWaiters.count, $0.handlersRunning)
        }
    }

    /// Draining side: idle, and nothing arrived for `quietPeriod` since the go-away was sent or
    /// since the last refused call, so no call the remote sent before the go-away is still on
    /// its way.
    func isDrained(quietFor quietPeriod: Duration) -> Bool {
        state.withLock { state in
            guard state.pending.isEmpty, state.handlersRunning == 0, state.repliesUnwritten == 0 else { return false }
            let since = max(state.goAwaySent ?? state.lastInbound, state.lastInbound)
            return NIODeadline.now() - since >= TimeAmount(quietPeriod)
        }
    }

    /// Whether the connection has written everything handed to it: nothing waits in the
    /// channel's outbound queue (a remote that reads slowly keeps replies there). Channels that
    /// cannot tell count as written.
    func outboundWritten() async -> Bool {
        let buffered = try? await channel.getOption(ChannelOptions.bufferedWritableBytes).get()
        return (buffered ?? 0) == 0
    }

    /// Draining side: asks the remote to move to another connection. Ferry peers that can
    /// redial do so at once; others just see the route as unknown (and calls answered 106).
    func sendGoAway() {
        let channel = state.withLock { state in
            state.goAwaySent = .now()
            return state.channel
        }
        guard let seq = try? nextSeq() else { return }
        let message = FerryMessage(type: .push, seq: seq, serviceMethod: FerryPeer.goAwayRoute, bodyCodec: defaultCodec)
        channel.writeAndFlush(message, promise: nil)
    }

    /// Whether this session can leave a connection for a new one: it dialled and may redial.
    private var canMoveConnection: Bool {
        dialTarget != nil && peer.configuration.redial != nil && state.withLock { !$0.closedByThisSide }
    }

    private var currentChannelID: ObjectIdentifier { ObjectIdentifier(channel) }

    /// The remote is draining: dial a new connection in the background, move new calls to it,
    /// and close `connection` once its pending calls are answered.
    func leaveConnection(_ connection: ObjectIdentifier) {
        guard canMoveConnection, let target = dialTarget, let policy = peer.configuration.redial else { return }
        let old: (any Channel)? = state.withLock { state in
            guard ObjectIdentifier(state.channel) == connection, state.phase == .open, !state.goingAway else { return nil }
            state.goingAway = true
            return state.channel
        }
        guard let old else { return }
        logger.info("the remote is going away; moving to a new connection")
        Task {
            await redial(target, policy: policy)
            await closeWhenAnswered(old)
        }
    }

    /// Closes a replaced connection once no call written on it awaits a reply (or after the
    /// default call timeout, when none can still be waiting).
    private func closeWhenAnswered(_ channel: any Channel) async {
        let id = ObjectIdentifier(channel)
        let deadline = ContinuousClock.now + peer.configuration.defaultCallTimeout
        while ContinuousClock.now < deadline, state.withLock({ $0.pending.values.contains { $0.connection == id } }) {
            try? await Task.sleep(for: .milliseconds(5))
        }
        try? await channel.close()
    }

    // MARK: Inbound

    /// The most messages held back while the accept hook runs; more closes the session.
    static let heldBackLimit = 256

    /// Lets an accepted session's messages through (the accept hook passed), starting with those
    /// that arrived while it ran, in order.
    func admit() {
        let channel = self.channel
        channel.eventLoop.execute { [self] in
            let waiting = state.withLock { state in
                state.admitted = true
                defer { state.heldBack = [] }
                return state.heldBack
            }
            guard let handler = try? channel.pipeline.syncOperations.handler(type: SessionHandler.self) else { return }
            // The hook took time: the held messages' deadlines are checked against the present.
            handler.clock.now()
            for held in waiting {
                receive(held.message, readAt: held.readAt, clock: handler.clock, from: channel, replies: handler.replies)
            }
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
        let (admitted, authenticated) = state.withLock { state in
            if !state.admitted { state.heldBack.append(HeldBackMessage(message: message, readAt: readAt)) }
            return (state.admitted, state.authenticated)
        }
        guard admitted else {
            if state.withLock({ $0.heldBack.count > Self.heldBackLimit }) {
                recordCloseReason("more than \(Self.heldBackLimit) messages before the accept hook finished")
                channel.close(promise: nil)
            }
            return
        }
        switch message.type {
        case .reply:
            completeCall(with: message)
        case .authReply:
            let waiter = state.withLock { state in
                defer { state.pendingAuth = nil }
                return state.pendingAuth
            }
            waiter?.resume(returning: message)
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
                    let status = (error as? FerryStatus) ?? FerryStatus(.badMessage, "Bad Message", cause: "refused: \(error)")
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
            let status = FerryStatus(.messageTypeNotAllowed, "Message Type Not Allowed", cause: "type \(message.type.rawValue)")
            recordCloseReason("unsupported message type \(message.type.rawValue)")
            logger.warning("closing session: unsupported message type", metadata: ["type": "\(message.type.rawValue)"])
            channel.writeAndFlush(errorReply(to: message, status)).whenComplete { _ in channel.close(promise: nil) }
        }
    }

    private func errorReply(to message: FerryMessage, _ status: FerryStatus) -> FerryMessage {
        FerryMessage(type: .reply, seq: message.seq, status: status, filters: message.filters)
    }

    private func completeCall(with reply: FerryMessage) {
        guard let call = state.withLock({ $0.pending.removeValue(forKey: reply.seq) }) else {
            logger.debug("dropping a reply nobody waits for (late or unknown)", metadata: ["seq": "\(reply.seq)"])
            return
        }
        call.continuation.resume(returning: reply)
    }

    /// Why a new inbound message may not start a handler, if it may not. An admitted handler
    /// counts as running; one that will run in place and queue its reply before this thread
    /// does anything else (`replyInPlace`) counts as its unwritten reply from the start, so
    /// that it takes the session's lock once.
    private func admissionRefusal(replyInPlace: Bool = false) -> FerryStatus? {
        if peer.isDraining {
            state.withLock { $0.lastInbound = .now() }
            return FerryStatus(.shuttingDown, "Shutting Down", cause: "the peer is draining; the call was not handled")
        }
        guard peer.admitHandler() else {
            return FerryStatus(.unavailable, "Overloaded", cause: "\(peer.configuration.limits.maximumConcurrentHandlers) handlers already running")
        }
        if replyInPlace {
            state.withLock { $0.repliesUnwritten += 1 }
        } else {
            state.withLock { $0.handlersRunning += 1 }
        }
        return nil
    }

    private func handlerFinished() {
        state.withLock { $0.handlersRunning -= 1 }
        peer.releaseHandler()
    }

    private func handleCall(
        _ message: FerryMessage, readAt: ContinuousClock.Instant, clock: ConnectionClock, on channel: any Channel, replies: MessageEncoderHandler
    ) {
        let router = peer.router
        let route = router.handler(for: .call, path: message.serviceMethod)
        let inPlace: FerrySynchronousHandler? =
            if case .synchronous(let handler)? = route, runsInPlace(on: channel), channel.isWritable { handler } else { nil }
        if let refusal = admissionRefusal(replyInPlace: inPlace != nil) {
            logExchange(.callIn, route: message.serviceMethod, cost: .zero, bodyOut: 0, bodyIn: message.body.readableBytes, status: refusal)
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
            let reply = router.reply(
                to: message, synchronousHandler: inPlace, context: context, checkedAt: clock.latest, exposeErrorDetails: exposeErrorDetails)
            peer.releaseHandler()
            queueReply(reply, to: message, on: replies, handledSince: context.arrival, until: clock.now())
            return
        }
        let replies = NIOLoopBound(replies, eventLoop: channel.eventLoop)
        startHandler(on: channel) { [self] in
            let reply = await router.reply(to: message, route: route, context: context, exposeErrorDetails: exposeErrorDetails)
            await sendReply(reply, to: message, on: channel, replies: replies, handledSince: context.arrival)
        }
    }

    private func handlePush(_ message: FerryMessage, readAt: ContinuousClock.Instant, clock: ConnectionClock, on channel: any Channel) {
        if let refusal = admissionRefusal() {
            logger.warning("dropping a push", metadata: ["route": "\(message.serviceMethod)", "status": "\(refusal)"])
            return
        }
        let context = FerryContext(session: self, message: message, logger: logger, arrival: readAt)
        let router = peer.router
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
        logExchange(.pushIn, route: message.serviceMethod, cost: start.duration(to: end), bodyOut: 0, bodyIn: message.body.readableBytes, status: status)
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
                logExchange(.callIn, route: call.serviceMethod, cost: start.duration(to: .now), bodyOut: 0, bodyIn: call.body.readableBytes, status: reply.status)
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
        state.withLock { state in
            state.handlersRunning -= 1
            state.repliesUnwritten += 1
        }
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
            reply = errorReply(to: reply, FerryStatus(.internalServerError, "Internal Server Error", cause: "the reply could not be sent: \(encoding)"))
            do { try replies.enqueueReply(reply) } catch { repliesLeft(1) }
        } catch {
            logger.debug("could not write a reply", metadata: ["seq": "\(reply.seq)", "error": "\(error)"])
            repliesLeft(1)
        }
        logExchange(.callIn, route: call.serviceMethod, cost: start.duration(to: end), bodyOut: reply.body.readableBytes, bodyIn: call.body.readableBytes, status: reply.status)
    }

    /// Replies queued on one of this session's connections that have since been passed down to
    /// the channel, or dropped with it.
    func repliesLeft(_ count: Int) {
        state.withLock { $0.repliesUnwritten -= count }
    }

    /// Back-pressure for a reply: waits until `channel` takes writes again, at most the default
    /// call timeout; returns why the reply must be dropped, if it must.
    private func waitForWritability(of channel: any Channel) async -> String? {
        let deadline = NIODeadline.now() + TimeAmount(peer.configuration.defaultCallTimeout)
        do {
            try await wait(for: \.writabilityWaiters, before: deadline, on: channel.eventLoop) { _ in channel.isWritable ? () : nil }
            return nil
        } catch {
            return "the remote does not read: \(error)"
        }
    }

    /// The close-session slow-consumer policy; returns the reason.
    private func closeSlowConsumer(_ channel: any Channel) -> String {
        recordCloseReason("slow consumer: the outbound queue is full")
        channel.close(promise: nil)
        return "slow consumer: the session is closed"
    }

    @discardableResult
    private func writeReply(_ reply: FerryMessage, on channel: any Channel) -> EventLoopFuture<Void> {
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

    // MARK: Heartbeat

    /// Answers an inbound `/heartbeat`; returns the period the remote announced, if any.
    func answerHeartbeat(_ message: FerryMessage, on channel: any Channel) -> Duration? {
        let text = message.meta[FerryPeer.Heartbeat.periodMetaKey] ?? ""
        guard text.isEmpty || (Int(text).map { $0 >= 0 } ?? false) else {
            if message.type == .call {
                writeReply(errorReply(to: message, FerryStatus(.badMessage, "Invalid Heartbeat Rate", cause: text)), on: channel)
            }
            return nil
        }
        if message.type == .call {
            writeReply(FerryMessage(type: .reply, seq: message.seq, bodyCodec: message.bodyCodec, filters: message.filters), on: channel)
        }
        guard let seconds = Int(text), seconds > 0 else { return nil }
        return .seconds(Int64(seconds))
    }

    /// Sends a heartbeat because the connection has been quiet for the ping interval.
    func sendHeartbeat() {
        guard let interval = peer.configuration.heartbeat.pingInterval else { return }
        let seconds = max(1, Int((Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18).rounded(.up)))
        let options = FerryCallOptions(timeout: interval, meta: [FerryPeer.Heartbeat.periodMetaKey: String(seconds)], codec: defaultCodec)
        let withCall = peer.configuration.heartbeat.pingWithCall
        Task {
            do {
                if withCall {
                    let reply = try await call(FerryPeer.Heartbeat.route, body: ByteBuffer(), codec: defaultCodec, options: options)
                    guard reply.status.isOK else { throw reply.status }
                } else {
                    try await push(FerryPeer.Heartbeat.route, body: ByteBuffer(), codec: defaultCodec, options: options)
                }
            } catch {
                guard state.withLock({ $0.phase == .open }) else { return }
                recordCloseReason("heartbeat failed: \(error)")
                logger.info("closing session: heartbeat failed", metadata: ["error": "\(error)"])
                channel.close(promise: nil)
            }
        }
    }

    // MARK: Auth

    /// Dialling side: sends the credential on `channel` and waits for the AUTH_REPLY.
    func authenticate(credential: String, timeout: Duration, on channel: any Channel) async throws {
        var message = FerryMessage(type: .authCall, seq: try nextSeq(), bodyCodec: .plain, body: ByteBuffer(string: credential))
        try prepareForWrite(&message)
        let reply: FerryMessage = try await withCheckedThrowingContinuation { continuation in
            state.withLock { $0.pendingAuth = continuation }
            let deadline = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) { [self] in
                failAuth(FerryStatus(.timedOut, "Timeout", cause: "no auth reply within \(timeout)"))
            }
            channel.writeAndFlush(message).whenComplete { [self] result in
                if case .failure(let error) = result { failAuth(failure(for: error)) }
            }
            channel.closeFuture.whenComplete { [self] _ in
                deadline.cancel()
                failAuth(.connectionClosed("closed during the auth handshake"))
            }
        }
        guard reply.status.isOK else { throw AuthRefused(status: reply.status) }
    }

    /// The remote refused this side's credential (as opposed to the handshake failing).
    struct AuthRefused: Error {
        var status: FerryStatus
    }

    private func failAuth(_ status: FerryStatus) {
        let waiter = state.withLock { state in
            defer { state.pendingAuth = nil }
            return state.pendingAuth
        }
        waiter?.resume(throwing: status)
    }

    /// Listening side: verifies the credential, answers AUTH_REPLY, and either lets the session
    /// in or closes it.
    private func receiveAuthCall(_ message: FerryMessage, on channel: any Channel) {
        guard let verify = peer.configuration.auth?.verify else {
            // No auth configured here: accept the handshake so a dialler that insists still works.
            writeAuthReply(status: .ok, body: "", on: channel)
            return
        }
        guard !state.withLock({ $0.authenticated }) else {
            writeAuthReply(status: FerryStatus(.invalidOperation, "Invalid Operation", cause: "already authenticated"), body: "", on: channel)
            return
        }
        // erpc diallers may send the credential with any codec (its default is JSON), so decode
        // it with the codec it names; unknown codecs and raw text fall back to the bytes as text.
        let credential = (try? codecs.decode(String.self, from: message.body, codec: message.bodyCodec)) ?? String(buffer: message.body)
        Task {
            do {
                let answer = try await verify(credential, self)
                state.withLock { $0.authenticated = true }
                writeAuthReply(status: .ok, body: answer, on: channel)
                peer.sessionReady(self)
            } catch {
                let status = (error as? FerryStatus) ?? FerryStatus(.unauthorized, "Unauthorized", cause: "\(error)")
                logger.info("closing session: auth refused", metadata: ["status": "\(status)"])
                recordCloseReason("auth refused: \(status)")
                writeAuthReply(status: status, body: "", on: channel, thenClose: true)
            }
        }
    }

    private func writeAuthReply(status: FerryStatus, body: String, on channel: any Channel, thenClose: Bool = false) {
        guard let seq = try? nextSeq() else { return }
        let reply = FerryMessage(type: .authReply, seq: seq, status: status, bodyCodec: body.isEmpty ? .none : .plain, body: ByteBuffer(string: body))
        channel.writeAndFlush(reply).whenComplete { _ in
            if thenClose { channel.close(promise: nil) }
        }
    }

    private func refuseUnauthenticated(_ message: FerryMessage, on channel: any Channel) {
        let status = FerryStatus(.unauthorized, "Unauthorized", cause: "auth message(1st) expected AUTH_CALL, received \(message.type)")
        recordCloseReason("message before auth")
        logger.info("closing session: message before auth", metadata: ["type": "\(message.type)"])
        let reply = FerryMessage(type: message.type == .call ? .reply : .authReply, seq: message.seq, status: status, filters: message.filters)
        channel.writeAndFlush(reply).whenComplete { _ in channel.close(promise: nil) }
    }

    /// Closes an accepted session that has not authenticated within `timeout`.
    func enforceAuthDeadline(_ timeout: Duration) {
        let channel = self.channel
        channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) { [self] in
            if !state.withLock({ $0.authenticated }) {
                recordCloseReason("no auth within \(timeout)")
                channel.close(promise: nil)
            }
        }
    }

    // MARK: Connection changes

    /// Whether the ID is still the default one (never set with ``setID(_:)``).
    var hasDefaultID: Bool { state.withLock { !$0.idWasSet } }

    /// Replaces a default ID that another session already holds (hub use only).
    func adoptDefaultID(_ newID: String) {
        state.withLock { $0.id = newID }
    }

    func markReady() {
        state.withLock { $0.ready = true }
    }

    /// Remembers why the session is closing, for the disconnect log; the first reason wins.
    func recordCloseReason(_ reason: String) {
        state.withLock { state in
            if state.closeReason == nil { state.closeReason = reason }
        }
    }

    /// The socket queue of `channel` drained below its low-water mark (or filled up).
    func writabilityChanged(_ channel: any Channel) {
        guard channel.isWritable else { return }
        let waiters = state.withLock { $0.writabilityWaiters.removeAll() }
        for waiter in waiters { waiter.resume() }
    }

    /// `channel` is gone: fail every call pending on it at once with 102; if it was the
    /// current connection, redial or close.
    func connectionClosed(_ channel: any Channel) {
        let connection = ObjectIdentifier(channel)
        let outcome: (pending: [PendingCall], auth: CheckedContinuation<FerryMessage, any Error>?, reason: String, next: AfterLoss) = state.withLock { state in
            let pendingOnIt = state.pending.filter { $0.value.connection == connection }
            for seq in pendingOnIt.keys { state.pending[seq] = nil }
            let reason = state.closeReason ?? "connection lost"
            guard state.channel === channel, state.phase != .closed else {
                return (Array(pendingOnIt.values), nil, reason, .nothing)
            }
            let auth = state.pendingAuth
            state.pendingAuth = nil
            // A redial (or a move after a go-away) already in progress owns what happens next.
            if state.phase == .redialling || state.goingAway {
                state.phase = .redialling
                return (Array(pendingOnIt.values), auth, reason, .nothing)
            }
            let redial = dialTarget != nil && peer.configuration.redial != nil && state.ready
                && !state.closedByThisSide && !peer.isDraining
            if redial {
                state.phase = .redialling
                state.closeReason = nil
                return (Array(pendingOnIt.values), auth, reason, .redial)
            }
            // Closed before the failed calls are resumed: a caller they wake that calls again
            // is refused with 102 at once, instead of waiting on a connection that is gone.
            return (Array(pendingOnIt.values), auth, reason, Self.markClosed(&state).map(AfterLoss.close) ?? .nothing)
        }
        let status = FerryStatus.connectionClosed(outcome.reason)
        for call in outcome.pending {
            call.continuation.resume(throwing: status)
        }
        outcome.auth?.resume(throwing: status)
        switch outcome.next {
        case .nothing:
            break
        case .redial:
            guard let policy = peer.configuration.redial, let target = dialTarget else { break }
            logger.info("connection lost; redialling", metadata: ["reason": "\(outcome.reason)", "failed_calls": "\(outcome.pending.count)"])
            Task { await redial(target, policy: policy) }
        case .close(let closing):
            logger.debug("session closed", metadata: ["id": "\(id)", "reason": "\(outcome.reason)", "failed_calls": "\(outcome.pending.count)"])
            tellClosed(closing)
        }
    }

    /// What follows the loss of a connection, once its calls have failed.
    private enum AfterLoss {
        /// Not the current connection, or a redial already owns what happens next.
        case nothing
        /// Dial again.
        case redial
        /// The session has closed; tell its waiters and its peer.
        case close(Closing)
    }

    /// What a session that has just closed must still tell: its waiters and its peer.
    private struct Closing {
        var wasReady: Bool
        var reconnectWaiters: [CheckedContinuation<any Channel, any Error>]
        var writeWaiters: [CheckedContinuation<Void, any Error>]
        var reason: String
    }

    /// Leaves the session closed for good: waiters fail, the hub forgets it, the disconnect hook
    /// runs (once).
    private func finishClosing() {
        if let closing = state.withLock({ Self.markClosed(&$0) }) { tellClosed(closing) }
    }

    /// Under the state lock: moves the session to closed; nil if it already was.
    private static func markClosed(_ state: inout State) -> Closing? {
        guard state.phase != .closed else { return nil }
        state.phase = .closed
        if state.pending.isEmpty {
            state.deadlineTimer?.task.cancel()
            state.deadlineTimer = nil
        }
        return Closing(
            wasReady: state.ready, reconnectWaiters: state.reconnectWaiters.removeAll(),
            writeWaiters: state.writabilityWaiters.removeAll(), reason: state.closeReason ?? "closed")
    }

    private func tellClosed(_ closing: Closing) {
        let status = FerryStatus.connectionClosed(closing.reason)
        for waiter in closing.reconnectWaiters { waiter.resume(throwing: status) }
        for waiter in closing.writeWaiters { waiter.resume(throwing: status) }
        peer.sessionClosed(self, wasReady: closing.wasReady)
    }

    private func redial(_ target: DialTarget, policy: FerryPeer.Redial) async {
        for attempt in 0..<policy.maximumAttempts {
            try? await Task.sleep(for: policy.delay(beforeAttempt: attempt))
            guard state.withLock({ !$0.closedByThisSide }), !peer.isDraining else { break }
            do {
                let channel = try await peer.connect(target, reusing: self)
                let stillWanted = state.withLock { state in
                    guard !state.closedByThisSide, state.phase != .closed else { return false }
                    state.channel = channel
                    return true
                }
                guard stillWanted else {
                    try? await channel.close()
                    return
                }
                try await peer.configuration.hooks.onDial?(self)
                if let auth = peer.configuration.auth, let credential = auth.credential {
                    try await authenticate(credential: try await credential(), timeout: auth.timeout, on: channel)
                }
                let waiters: [CheckedContinuation<any Channel, any Error>]? = state.withLock { state in
                    // Closed by this side while the connection was being made: stay closed.
                    guard !state.closedByThisSide, state.phase != .closed else { return nil }
                    state.phase = .open
                    state.goingAway = false
                    return state.reconnectWaiters.removeAll()
                }
                guard let waiters else {
                    try? await channel.close()
                    return
                }
                for waiter in waiters { waiter.resume(returning: channel) }
                logger.info("redialled", metadata: ["attempt": "\(attempt + 1)"])
                if !channel.isActive { connectionClosed(channel) }
                return
            } catch let refused as AuthRefused {
                recordCloseReason("redial stopped: auth refused: \(refused.status)")
                logger.warning("redial stopped: auth refused", metadata: ["status": "\(refused.status)"])
                channel.close(promise: nil)
                break
            } catch {
                logger.info("redial attempt failed", metadata: ["attempt": "\(attempt + 1)", "of": "\(policy.maximumAttempts)", "error": "\(error)"])
                channel.close(promise: nil)
            }
        }
        recordCloseReason("redial gave up")
        logger.warning("session closed: redial gave up", metadata: ["id": "\(id)"])
        finishClosing()
    }

    // MARK: Logging

    /// A duration in milliseconds with microsecond precision, e.g. `1.234ms`.
    static func describe(_ duration: Duration) -> String {
        let micros = duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
        let millis = micros / 1000
        let fraction = String(micros % 1000)
        return "\(millis).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)ms"
    }

    /// Which way a logged exchange went.
    private enum Exchange: String {
        case callIn = "call-in", callOut = "call-out", pushIn = "push-in", pushOut = "push-out"

        var isCall: Bool { self == .callIn || self == .callOut }
    }

    private func logExchange(_ kind: Exchange, route: String, cost: Duration, bodyOut: Int, bodyIn: Int, status: FerryStatus) {
        let slow = kind.isCall && cost > peer.configuration.slowCallThreshold
        guard slow || logsEveryExchange else { return }
        let metadata: Logger.Metadata = [
            "route": "\(route)",
            "cost": "\(Self.describe(cost))",
            "body_out": "\(bodyOut)B",
            "body_in": "\(bodyIn)B",
            "status": "\(status.code)",
        ]
        if slow {
            logger.warning("\(kind.rawValue) slow", metadata: metadata)
        } else {
            logger.debug("\(kind.rawValue)", metadata: metadata)
        }
    }
}

/// A message read before the accept hook let the session's messages through, with when it was
/// read.
struct HeldBackMessage {
    var message: FerryMessage
    var readAt: ContinuousClock.Instant
}

/// Where and how a dialled session connects, kept for redials.
struct DialTarget: Sendable {
    var address: FerryAddress
    var tls: NIOSSLContext?
    var serverHostname: String?
}
