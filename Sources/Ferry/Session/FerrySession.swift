import Logging
import NIOCore
import Synchronization

/// One connection between two peers. Either side can CALL and PUSH the other.
///
/// Sessions come from ``FerryPeer/dial(_:tls:serverHostname:)`` and from accepted connections
/// (see ``FerryPeer/hub``). Calls are safe from any task; the typed `call` and `push` helpers come
/// from ``FerrySessionProtocol``.
public final class FerrySession: FerrySessionProtocol, CustomStringConvertible {
    /// The remote address, e.g. `127.0.0.1:52100`.
    public let remoteAddress: String
    /// Whether this side dialled the connection (false: it was accepted by a listener).
    public let isDialled: Bool
    let channel: any Channel
    let peer: FerryPeer
    let logger: Logger

    private struct PendingCall {
        var continuation: CheckedContinuation<FerryMessage, any Error>
        var timeout: Scheduled<Void>?
    }

    private struct State {
        var id: String
        var nextSeq: Int32 = 0
        var pending: [Int32: PendingCall] = [:]
        var pendingAuth: CheckedContinuation<FerryMessage, any Error>?
        var authenticated: Bool
        var closeReason: String?
        var closed = false
        var ready = false
    }
    private let state: Mutex<State>

    init(channel: any Channel, peer: FerryPeer, isDialled: Bool, remoteAddress: String) {
        self.channel = channel
        self.peer = peer
        self.isDialled = isDialled
        self.remoteAddress = remoteAddress
        let needsAuth = !isDialled && peer.configuration.auth?.verify != nil
        self.state = Mutex(State(id: remoteAddress, authenticated: !needsAuth))
        var logger = peer.logger
        logger[metadataKey: "remote"] = "\(remoteAddress)"
        self.logger = logger
    }

    // MARK: Identity

    /// The session ID: the remote address until ``setID(_:)`` changes it.
    public var id: String { state.withLock { $0.id } }

    /// Changes the session ID. An older session with the same ID is closed (single login).
    public func setID(_ newID: String) {
        let oldID = state.withLock { state in
            defer { state.id = newID }
            return state.id
        }
        peer.hub.rename(self, from: oldID, to: newID)
    }

    /// The peer's codecs.
    public var codecs: FerryCodecRegistry { peer.configuration.codecs }
    /// The peer's default codec.
    public var defaultCodec: FerryCodecID { peer.configuration.defaultCodec }
    /// Whether the connection is still open.
    public var isActive: Bool { !state.withLock { $0.closed } && channel.isActive }

    public var description: String { "FerrySession(\(id), remote: \(remoteAddress))" }

    /// Closes the connection; pending calls fail with status 102.
    public func close() async {
        recordCloseReason("closed by this side")
        try? await channel.close()
    }

    // MARK: Outbound

    public func call(_ serviceMethod: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws -> FerryReply {
        var message = FerryMessage(
            type: .call, seq: 0, serviceMethod: serviceMethod, meta: options.meta,
            bodyCodec: codec, body: body, filters: options.filters)
        if let accept = options.acceptCodec {
            message.meta.set(FerryCallOptions.acceptCodecMetaKey, String(accept.rawValue))
        }
        let timeout = options.timeout ?? peer.configuration.defaultCallTimeout
        let start = ContinuousClock.now
        let reply: FerryMessage
        do {
            reply = try await exchange(message, timeout: timeout)
        } catch let status as FerryStatus {
            logExchange("call-out", route: serviceMethod, cost: start.duration(to: .now), bodyOut: body.readableBytes, bodyIn: 0, status: status)
            throw status
        }
        let cost = start.duration(to: .now)
        logExchange("call-out", route: serviceMethod, cost: cost, bodyOut: body.readableBytes, bodyIn: reply.body.readableBytes, status: reply.status)
        return FerryReply(message: reply, cost: cost, codecs: codecs)
    }

    public func push(_ serviceMethod: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws {
        var message = FerryMessage(
            type: .push, seq: try nextSeq(), serviceMethod: serviceMethod, meta: options.meta,
            bodyCodec: codec, body: body, filters: options.filters)
        let start = ContinuousClock.now
        do {
            try prepareForWrite(&message)
            try await channel.writeAndFlush(message)
            logExchange("push-out", route: serviceMethod, cost: start.duration(to: .now), bodyOut: body.readableBytes, bodyIn: 0, status: .ok)
        } catch {
            let status = failure(for: error)
            logExchange("push-out", route: serviceMethod, cost: start.duration(to: .now), bodyOut: body.readableBytes, bodyIn: 0, status: status)
            throw status
        }
    }

    private func nextSeq() throws -> Int32 {
        try state.withLock { state in
            guard !state.closed else { throw FerryStatus.connectionClosed(state.closeReason ?? "") }
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

    /// The status a failed write turns into: 102 once the connection is gone, else 104.
    private func failure(for error: any Error) -> FerryStatus {
        if let status = error as? FerryStatus { return status }
        if let reason = state.withLock({ $0.closed ? ($0.closeReason ?? "") : nil }) {
            return .connectionClosed(reason)
        }
        if let error = error as? ChannelError, error == .ioOnClosedChannel || error == .alreadyClosed {
            return .connectionClosed()
        }
        return .writeFailed("\(error)")
    }

    /// Writes a CALL and waits for its reply, the deadline or cancellation.
    private func exchange(_ message: FerryMessage, timeout: Duration) async throws -> FerryMessage {
        var message = message
        message.seq = try nextSeq()
        try prepareForWrite(&message)
        let seq = message.seq
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<FerryMessage, any Error>) in
                let closedReason: String? = state.withLock { state in
                    if state.closed { return state.closeReason ?? "" }
                    state.pending[seq] = PendingCall(continuation: continuation, timeout: nil)
                    return nil
                }
                if let closedReason {
                    continuation.resume(throwing: FerryStatus.connectionClosed(closedReason))
                    return
                }
                if Task.isCancelled {
                    failPending(seq, with: FerryStatus(.cancelled, "Cancelled", cause: "the calling task was cancelled"))
                    return
                }
                let deadline = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) { [self] in
                    failPending(seq, with: FerryStatus(.timedOut, "Timeout", cause: "no reply within \(timeout)"))
                }
                let stillPending = state.withLock { state in
                    guard state.pending[seq] != nil else { return false }
                    state.pending[seq]!.timeout = deadline
                    return true
                }
                if !stillPending { deadline.cancel() }
                channel.writeAndFlush(message).whenFailure { [self] error in
                    failPending(seq, with: failure(for: error))
                }
            }
        } onCancel: {
            failPending(seq, with: FerryStatus(.cancelled, "Cancelled", cause: "the calling task was cancelled"))
        }
    }

    private func failPending(_ seq: Int32, with status: FerryStatus) {
        guard let call = state.withLock({ $0.pending.removeValue(forKey: seq) }) else { return }
        call.timeout?.cancel()
        call.continuation.resume(throwing: status)
    }

    /// The number of calls waiting for a reply.
    var pendingCallCount: Int { state.withLock { $0.pending.count } }

    // MARK: Inbound

    /// Handles one decoded message; runs on the event loop.
    func receive(_ message: FerryMessage) {
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
            receiveAuthCall(message)
        case .call, .push:
            guard state.withLock({ $0.authenticated }) else {
                refuseUnauthenticated(message)
                return
            }
            if let hook = peer.configuration.hooks.onHeaderRead {
                do {
                    try hook(message, self)
                } catch {
                    let status = (error as? FerryStatus) ?? FerryStatus(.badMessage, "Bad Message", cause: "refused: \(error)")
                    logger.debug("message refused after its header was read", metadata: ["route": "\(message.serviceMethod)", "status": "\(status)"])
                    if message.type == .call { writeReply(FerryMessage(type: .reply, seq: message.seq, status: status, filters: message.filters)) }
                    return
                }
            }
            if message.type == .call { handleCall(message) } else { handlePush(message) }
        default:
            let status = FerryStatus(.messageTypeNotAllowed, "Message Type Not Allowed", cause: "type \(message.type.rawValue)")
            recordCloseReason("unsupported message type \(message.type.rawValue)")
            logger.warning("closing session: unsupported message type", metadata: ["type": "\(message.type.rawValue)"])
            let reply = FerryMessage(type: .reply, seq: message.seq, status: status, filters: message.filters)
            channel.writeAndFlush(reply).whenComplete { [channel] _ in channel.close(promise: nil) }
        }
    }

    private func completeCall(with reply: FerryMessage) {
        guard let call = state.withLock({ $0.pending.removeValue(forKey: reply.seq) }) else {
            logger.debug("dropping a reply nobody waits for (late or unknown)", metadata: ["seq": "\(reply.seq)"])
            return
        }
        call.timeout?.cancel()
        call.continuation.resume(returning: reply)
    }

    private func handleCall(_ message: FerryMessage) {
        let context = FerryContext(session: self, message: message, logger: logger)
        let router = peer.router
        let exposeErrorDetails = peer.configuration.exposeErrorDetails
        Task {
            let start = ContinuousClock.now
            let reply = await router.reply(to: message, context: context, exposeErrorDetails: exposeErrorDetails)
            writeReply(reply)
            logExchange("call-in", route: message.serviceMethod, cost: start.duration(to: .now), bodyOut: reply.body.readableBytes, bodyIn: message.body.readableBytes, status: reply.status)
        }
    }

    private func handlePush(_ message: FerryMessage) {
        let context = FerryContext(session: self, message: message, logger: logger)
        let router = peer.router
        Task {
            let start = ContinuousClock.now
            let status = await router.receivePush(message, context: context)
            if status.code == .notFound {
                logger.warning("dropping a push to an unknown route", metadata: ["route": "\(message.serviceMethod)"])
            }
            logExchange("push-in", route: message.serviceMethod, cost: start.duration(to: .now), bodyOut: 0, bodyIn: message.body.readableBytes, status: status)
        }
    }

    private func writeReply(_ reply: FerryMessage) {
        var reply = reply
        do {
            try prepareForWrite(&reply)
        } catch {
            let status = (error as? FerryStatus) ?? .writeFailed("\(error)")
            reply = FerryMessage(type: reply.type, seq: reply.seq, status: status, filters: reply.filters)
        }
        let seq = reply.seq
        channel.writeAndFlush(reply).whenFailure { [logger] error in
            logger.debug("could not write a reply", metadata: ["seq": "\(seq)", "error": "\(error)"])
        }
    }

    // MARK: Auth

    /// Dialling side: sends the credential and waits for the AUTH_REPLY.
    func authenticate(credential: String, timeout: Duration) async throws {
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
        guard reply.status.isOK else { throw reply.status }
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
    private func receiveAuthCall(_ message: FerryMessage) {
        guard let verify = peer.configuration.auth?.verify else {
            // No auth configured here: accept the handshake so a dialler that insists still works.
            writeAuthReply(status: .ok, body: "")
            return
        }
        guard !state.withLock({ $0.authenticated }) else {
            writeAuthReply(status: FerryStatus(.invalidOperation, "Invalid Operation", cause: "already authenticated"), body: "")
            return
        }
        // erpc diallers may send the credential with any codec (its default is JSON), so decode
        // it with the codec it names; unknown codecs and raw text fall back to the bytes as text.
        let credential = (try? codecs.decode(String.self, from: message.body, codec: message.bodyCodec)) ?? String(buffer: message.body)
        Task {
            do {
                let answer = try await verify(credential, self)
                state.withLock { $0.authenticated = true }
                writeAuthReply(status: .ok, body: answer)
                peer.sessionReady(self)
            } catch {
                let status = (error as? FerryStatus) ?? FerryStatus(.unauthorized, "Unauthorized", cause: "\(error)")
                logger.info("closing session: auth refused", metadata: ["status": "\(status)"])
                recordCloseReason("auth refused: \(status)")
                writeAuthReply(status: status, body: "", thenClose: true)
            }
        }
    }

    private func writeAuthReply(status: FerryStatus, body: String, thenClose: Bool = false) {
        guard let seq = try? nextSeq() else { return }
        let reply = FerryMessage(type: .authReply, seq: seq, status: status, bodyCodec: body.isEmpty ? .none : .plain, body: ByteBuffer(string: body))
        channel.writeAndFlush(reply).whenComplete { [channel] _ in
            if thenClose { channel.close(promise: nil) }
        }
    }

    private func refuseUnauthenticated(_ message: FerryMessage) {
        let status = FerryStatus(.unauthorized, "Unauthorized", cause: "auth message(1st) expected AUTH_CALL, received \(message.type)")
        recordCloseReason("message before auth")
        logger.info("closing session: message before auth", metadata: ["type": "\(message.type)"])
        let reply = FerryMessage(type: message.type == .call ? .reply : .authReply, seq: message.seq, status: status, filters: message.filters)
        channel.writeAndFlush(reply).whenComplete { [channel] _ in channel.close(promise: nil) }
    }

    /// Closes an accepted session that has not authenticated within `timeout`.
    func enforceAuthDeadline(_ timeout: Duration) {
        guard !state.withLock({ $0.authenticated }) else { return }
        channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) { [self] in
            if !state.withLock({ $0.authenticated }) {
                recordCloseReason("no auth within \(timeout)")
                channel.close(promise: nil)
            }
        }
    }

    // MARK: Closing

    func markReady() {
        state.withLock { $0.ready = true }
    }

    /// Remembers why the session is closing, for the disconnect log; the first reason wins.
    func recordCloseReason(_ reason: String) {
        state.withLock { state in
            if state.closeReason == nil { state.closeReason = reason }
        }
    }

    /// The connection is gone: fail every pending call at once with 102 and leave the hub.
    func connectionClosed() {
        let (pending, auth, reason, wasClosed, wasReady) = state.withLock { state in
            defer {
                state.closed = true
                state.pending = [:]
                state.pendingAuth = nil
            }
            return (Array(state.pending.values), state.pendingAuth, state.closeReason ?? "connection lost", state.closed, state.ready)
        }
        guard !wasClosed else { return }
        let status = FerryStatus.connectionClosed(reason)
        for call in pending {
            call.timeout?.cancel()
            call.continuation.resume(throwing: status)
        }
        auth?.resume(throwing: status)
        logger.debug("session closed", metadata: ["id": "\(id)", "reason": "\(reason)", "failed_calls": "\(pending.count)"])
        peer.sessionClosed(self, wasReady: wasReady)
    }

    // MARK: Logging

    /// A duration in milliseconds with microsecond precision, e.g. `1.234ms`.
    static func describe(_ duration: Duration) -> String {
        let micros = duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
        let millis = micros / 1000
        let fraction = String(micros % 1000)
        return "\(millis).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)ms"
    }

    private func logExchange(_ kind: String, route: String, cost: Duration, bodyOut: Int, bodyIn: Int, status: FerryStatus) {
        let slow = cost > peer.configuration.slowCallThreshold && (kind == "call-in" || kind == "call-out")
        guard slow || logger.logLevel <= .debug else { return }
        let metadata: Logger.Metadata = [
            "route": "\(route)",
            "cost": "\(Self.describe(cost))",
            "body_out": "\(bodyOut)B",
            "body_in": "\(bodyIn)B",
            "status": "\(status.code)",
        ]
        if slow {
            logger.warning("\(kind) slow", metadata: metadata)
        } else {
            logger.debug("\(kind)", metadata: metadata)
        }
    }
}
