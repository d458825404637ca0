import FerryCore
import NIOCore

/// The state of one session, and every decision about it, as a value: no sockets, no event
/// loops, no tasks. Each method changes the state and returns what its caller must do (resume
/// these continuations, close that connection, dial again); the session runs it under one lock
/// and does the work after unlocking.
///
/// `Connection` is the session's connection type, a class (a NIO channel in a session; any
/// class in a test); connections are told apart by identity. `CallWaiter` is what resumes a
/// caller awaiting its reply (a continuation in a session; anything in a test).
package struct SessionStateMachine<Connection, CallWaiter> {
    /// The session's ID: the remote address until it is set.
    package enum Identity {
        /// The remote address (or what the hub made of it to keep IDs unique).
        case remoteAddress(String)
        /// Set by ``SessionStateMachine/assignID(_:)``.
        case assigned(String)

        /// The ID.
        package var id: String {
            switch self {
            case .remoteAddress(let id), .assigned(let id): id
            }
        }
    }

    /// A CALL made off its connection's event loop, waiting for that loop.
    package struct OutboundCall {
        package var message: FerryMessage
        package var connection: Connection
    }

    /// Where a new CALL goes, decided where it becomes pending.
    package enum CallStart {
        /// Refused with this status: the session is closed or redialling, or the caller cancelled.
        case refused(FerryStatus)
        /// Made on its connection's event loop: encode it at once.
        case encodeNow
        /// Added to the outbox, whose drain is already scheduled.
        case queued
        /// Added to an empty outbox: schedule its drain.
        case drainOutbox
    }

    /// What the session must still tell once it has closed: its waiters and its peer.
    package struct Closing {
        /// Whether the session was ready (its disconnect is reported).
        package var wasReady: Bool
        package var reconnectWaiters: [CheckedContinuation<Connection, any Error>]
        package var writabilityWaiters: [CheckedContinuation<Void, any Error>]
        package var authWaiter: CheckedContinuation<FerryMessage, any Error>?
        /// Connections to close now (the current one, retired ones with nothing left to answer).
        package var connectionsToClose: [Connection]
        package var reason: String
    }

    /// What follows the loss of a connection.
    package enum ConnectionLoss {
        /// Fail these calls; nothing else (not the current connection, or a redial owns what follows).
        case failCalls([CallTable<CallWaiter>.Call], auth: CheckedContinuation<FerryMessage, any Error>?, reason: String)
        /// Fail these calls and dial again.
        case redial([CallTable<CallWaiter>.Call], auth: CheckedContinuation<FerryMessage, any Error>?, reason: String)
        /// Fail these calls; the session has closed.
        case closed([CallTable<CallWaiter>.Call], Closing)
    }

    /// Senders suspended for a connection that is gone and has no successor yet.
    package struct StrandedSenders {
        /// Waiting for room on the lost connection: they would wait for nothing.
        package var writers: [CheckedContinuation<Void, any Error>] = []
        /// Waiting for a move to finish, where the policy does not make calls wait for a redial.
        package var reconnecting: [CheckedContinuation<Connection, any Error>] = []

        package init() {}
    }

    /// What an inbound message may do, given the lifecycle.
    package enum InboundGate {
        /// Handle it.
        case pass(authenticated: Bool)
        /// It waits for the accept hook.
        case heldBack
        /// Too many messages wait for the accept hook: close the session.
        case tooManyHeldBack
    }

    /// The most messages held back while the accept hook runs; more closes the session.
    package static var heldBackLimit: Int { 256 }

    package private(set) var lifecycle: SessionLifecycle<Connection>
    package private(set) var identity: Identity
    /// Whether the session dialled and may dial again (it has a redial policy).
    package let canRedial: Bool
    private var seq: Int32 = 0
    package private(set) var calls = CallTable<CallWaiter>()
    private var outbox: [OutboundCall] = []
    private var outboxDrainScheduled = false
    package var reconnectWaiters = WaiterList<Connection>()
    package var writabilityWaiters = WaiterList<Void>()
    private var authWaiter: CheckedContinuation<FerryMessage, any Error>?
    /// Why the current connection is closing: the first reason given wins.
    private var closeReason: String?
    package private(set) var handlersRunning = 0
    /// Replies handed to a connection's encoder and not yet passed down to the channel.
    package private(set) var repliesUnwritten = 0
    /// Connections left after a move that close once no call written on them awaits a reply.
    private var retiring: [Connection] = []
    /// Draining side: when the go-away was sent, and when the last refused message arrived.
    private var goAwaySent: NIODeadline?
    private var lastInbound: NIODeadline

    /// An accepted session (`dialled: false`) starts admitting; a dialled one handshaking.
    package init(connection: Connection, remoteAddress: String, dialled: Bool, canRedial: Bool, now: NIODeadline) {
        self.lifecycle = dialled ? .handshaking(connection) : .admitting(connection, heldBack: [])
        self.identity = .remoteAddress(remoteAddress)
        self.canRedial = dialled && canRedial
        self.lastInbound = now
    }

    // MARK: Identity

    /// Sets the ID.
    package mutating func assignID(_ id: String) {
        identity = .assigned(id)
    }

    /// Replaces a default ID that another session already holds (the hub's job).
    package mutating func adoptDefaultID(_ id: String) {
        if case .remoteAddress = identity { identity = .remoteAddress(id) }
    }

    // MARK: Sending

    /// The next seq, for a message about to be written; nil once closed.
    package mutating func nextSeq() -> Int32? {
        guard !lifecycle.isClosed else { return nil }
        seq &+= 1
        return seq
    }

    /// Makes a CALL with `seq` pending on `connection` (which the caller took earlier) and
    /// decides how it reaches the connection; `arm` is set when the deadline timer must be
    /// armed for a new, earlier deadline.
    package mutating func startCall(
        _ message: FerryMessage, on connection: Connection, call: CallTable<CallWaiter>.Call, onLoop: Bool, cancelled: Bool,
        arm: inout NIODeadline?
    ) -> CallStart {
        switch lifecycle {
        case .closed(let reason, _):
            return .refused(.connectionClosed(reason))
        case .redialling:
            // The connection this call took was lost since: the calls on it have failed, and
            // this one would wait for nothing.
            return .refused(.connectionClosed("connection lost"))
        case .admitting, .authenticating, .handshaking, .open, .movingAway:
            break
        }
        // Cancelled before it was pending: the cancellation handler found nothing to fail.
        if cancelled { return .refused(FerryStatus.cancelled("the calling task was cancelled")) }
        arm = calls.add(message.seq, call)
        if onLoop { return .encodeNow }
        outbox.append(OutboundCall(message: message, connection: connection))
        if outboxDrainScheduled { return .queued }
        outboxDrainScheduled = true
        return .drainOutbox
    }

    /// The outbox's calls that still await replies, in order; the outbox is empty after.
    package mutating func takeOutbox() -> [OutboundCall] {
        outboxDrainScheduled = false
        var taken: [OutboundCall] = []
        swap(&taken, &outbox)
        taken.removeAll { !calls.contains($0.message.seq) }
        return taken
    }

    /// The number of calls waiting in the outbox.
    package var unsentCalls: Int { outbox.count }

    // MARK: Replies and deadlines

    /// Removes the call with `seq` (its reply came, or it failed); `retired` is a moved-from
    /// connection that has nothing left to answer and can close.
    package mutating func removeCall(_ seq: Int32, retired: inout Connection?) -> CallTable<CallWaiter>.Call? {
        guard let call = calls.remove(seq) else { return nil }
        if !retiring.isEmpty { retired = retire(call.connection) }
        return call
    }

    /// The deadline timer fired at `now`: the expired calls, and when to fire next.
    package mutating func expireCalls(now: NIODeadline) -> (expired: [CallTable<CallWaiter>.Call], rearm: NIODeadline?, retired: [Connection]) {
        let (expired, rearm) = calls.expire(now: now)
        var retired: [Connection] = []
        if !retiring.isEmpty {
            for call in expired { if let connection = retire(call.connection) { retired.append(connection) } }
        }
        return (expired, rearm, retired)
    }

    /// The retiring connection with `id`, removed from the list, if nothing on it awaits a reply.
    private mutating func retire(_ id: ObjectIdentifier) -> Connection? {
        guard let index = retiring.firstIndex(where: { Self.id($0) == id }), !calls.hasCalls(on: id) else { return nil }
        return retiring.remove(at: index)
    }

    // MARK: Inbound

    /// Whether an inbound message may be handled now.
    package mutating func gate(_ message: FerryMessage, readAt: ContinuousClock.Instant) -> InboundGate {
        switch lifecycle {
        case .admitting(let connection, var heldBack):
            heldBack.append(HeldBackMessage(message: message, readAt: readAt))
            lifecycle = .admitting(connection, heldBack: heldBack)
            return heldBack.count > Self.heldBackLimit ? .tooManyHeldBack : .heldBack
        case .authenticating:
            return .pass(authenticated: false)
        case .handshaking, .open, .movingAway, .redialling, .closed:
            return .pass(authenticated: true)
        }
    }

    /// The accept hook passed: the session becomes ready, or waits for the remote's credential.
    /// Returns the messages held back meanwhile, in order (none if the session closed).
    package mutating func admit(requiresAuth: Bool) -> [HeldBackMessage] {
        guard case .admitting(let connection, let heldBack) = lifecycle else { return [] }
        lifecycle = requiresAuth ? .authenticating(connection) : .open(connection)
        return heldBack
    }

    /// The remote's credential passed; false if the session is not waiting for one.
    package mutating func authenticated() -> Bool {
        guard case .authenticating(let connection) = lifecycle else { return false }
        lifecycle = .open(connection)
        return true
    }

    /// A dialled session's hooks and handshake passed; false if it closed meanwhile.
    package mutating func handshakeFinished() -> Bool {
        guard case .handshaking(let connection) = lifecycle else { return false }
        lifecycle = .open(connection)
        return true
    }

    /// Dialling side: waits for the AUTH_REPLY.
    package mutating func awaitAuthReply(_ waiter: CheckedContinuation<FerryMessage, any Error>) {
        authWaiter = waiter
    }

    /// The AUTH_REPLY came, or the handshake failed: who waits for it.
    package mutating func takeAuthWaiter() -> CheckedContinuation<FerryMessage, any Error>? {
        defer { authWaiter = nil }
        return authWaiter
    }

    // MARK: Handlers and draining

    /// A handler was admitted: it runs (or, `replyInPlace`, its reply is as good as queued).
    package mutating func handlerStarted(replyInPlace: Bool) {
        if replyInPlace { repliesUnwritten += 1 } else { handlersRunning += 1 }
    }

    /// A handler finished without a reply to write.
    package mutating func handlerFinished() { handlersRunning -= 1 }

    /// A handler finished and handed its reply over.
    package mutating func replyHandedOver() {
        handlersRunning -= 1
        repliesUnwritten += 1
    }

    /// Replies passed down to the channel, or dropped with it.
    package mutating func repliesLeft(_ count: Int) { repliesUnwritten -= count }

    /// Draining side: a message arrived and was refused.
    package mutating func refusedWhileDraining(at now: NIODeadline) { lastInbound = now }

    /// Draining side: the go-away was sent.
    package mutating func goAwaySent(at now: NIODeadline) { goAwaySent = now }

    /// Draining side: idle, and nothing arrived for `quietPeriod` since the go-away was sent or
    /// since the last refused message.
    package func isDrained(quietFor quietPeriod: TimeAmount, now: NIODeadline) -> Bool {
        guard calls.isEmpty, handlersRunning == 0, repliesUnwritten == 0 else { return false }
        return now - max(goAwaySent ?? lastInbound, lastInbound) >= quietPeriod
    }

    // MARK: Closing, moving and redialling

    /// Remembers why the current connection is closing; the first reason wins.
    package mutating func recordCloseReason(_ reason: String) {
        if closeReason == nil { closeReason = reason }
    }

    /// This side closes the session for good; nil if it already was closed.
    package mutating func close(reason: String) -> Closing? {
        recordCloseReason(reason)
        return markClosed(closeCurrent: true)
    }

    /// `connection` is gone: its calls fail; if it was the current one, the session redials
    /// (`peerDraining` false, ready, and allowed to) or closes. Senders stranded on it are
    /// handed over in `stranded` (reconnect waiters only unless `callsWaitForReconnect`).
    package mutating func connectionLost(
        _ connection: Connection, peerDraining: Bool, callsWaitForReconnect: Bool, stranded: inout StrandedSenders
    ) -> ConnectionLoss {
        let failed = calls.removeAll(on: Self.id(connection))
        retiring.removeAll { Self.id($0) == Self.id(connection) }
        let reason = closeReason ?? "connection lost"
        guard lifecycle.isConnection(connection), !lifecycle.isClosed else {
            return .failCalls(failed, auth: nil, reason: reason)
        }
        let auth = takeAuthWaiter()
        switch lifecycle {
        case .movingAway, .redialling:
            // The redial already under way owns what happens next.
            lifecycle = .redialling(connection)
            strand(&stranded, callsWaitForReconnect: callsWaitForReconnect)
            return .failCalls(failed, auth: auth, reason: reason)
        case .open where canRedial && !peerDraining:
            lifecycle = .redialling(connection)
            closeReason = nil
            strand(&stranded, callsWaitForReconnect: callsWaitForReconnect)
            return .redial(failed, auth: auth, reason: reason)
        default:
            authWaiter = auth
            return .closed(failed, markClosed(closeCurrent: false)!)
        }
    }

    private mutating func strand(_ stranded: inout StrandedSenders, callsWaitForReconnect: Bool) {
        stranded.writers = writabilityWaiters.removeAll()
        if !callsWaitForReconnect { stranded.reconnecting = reconnectWaiters.removeAll() }
    }

    /// The remote asked this side to leave connection `id`: true when the session starts moving
    /// (it was open on it and may redial).
    package mutating func beginMove(from id: ObjectIdentifier) -> Bool {
        guard canRedial, case .open(let connection) = lifecycle, Self.id(connection) == id else { return false }
        lifecycle = .movingAway(from: connection)
        return true
    }

    /// A redial connected `connection`, whose hooks and handshake now run; false when the
    /// session closed meanwhile (close the new connection). A connection moved away from keeps
    /// answering its calls and closes once none is left; `retired` is set when it can close now.
    package mutating func redialConnected(_ connection: Connection, retired: inout Connection?) -> Bool {
        switch lifecycle {
        case .movingAway(let old):
            if calls.hasCalls(on: Self.id(old)) { retiring.append(old) } else { retired = old }
        case .redialling:
            break
        case .admitting, .authenticating, .handshaking, .open, .closed:
            return false
        }
        lifecycle = .redialling(connection)
        return true
    }

    /// A redialled `connection` is ready: the session is open on it. Returns the writers that
    /// waited for it; nil when the session closed meanwhile (close the connection).
    package mutating func redialFinished(_ connection: Connection) -> [CheckedContinuation<Connection, any Error>]? {
        guard case .redialling = lifecycle, lifecycle.isConnection(connection) else { return nil }
        lifecycle = .open(connection)
        return reconnectWaiters.removeAll()
    }

    /// The redial gave up (or stopped): the session closes; a connection moved away from still
    /// answers its calls and closes once none is left.
    package mutating func redialStopped(reason: String) -> Closing? {
        recordCloseReason(reason)
        if case .movingAway(let old) = lifecycle, calls.hasCalls(on: Self.id(old)) {
            retiring.append(old)
            return markClosed(closeCurrent: false)
        }
        return markClosed(closeCurrent: true)
    }

    /// Whether the session may still dial: a redial stops once it is closed.
    package var isClosed: Bool { lifecycle.isClosed }

    /// The identity of a connection, as the call table records it.
    package static func id(_ connection: Connection) -> ObjectIdentifier {
        ObjectIdentifier(connection as AnyObject)
    }

    private mutating func markClosed(closeCurrent: Bool) -> Closing? {
        guard !lifecycle.isClosed else { return nil }
        let connection = lifecycle.connection
        let wasReady = lifecycle.isReady
        let reason = closeReason ?? "closed"
        lifecycle = .closed(reason: reason, last: connection)
        var toClose = closeCurrent && !retiring.contains(where: { Self.id($0) == Self.id(connection) }) ? [connection] : []
        // Retired connections with nothing left to answer close too; the rest close when
        // their last call is answered or expires.
        toClose += retiring.filter { !calls.hasCalls(on: Self.id($0)) }
        retiring.removeAll { !calls.hasCalls(on: Self.id($0)) }
        return Closing(
            wasReady: wasReady, reconnectWaiters: reconnectWaiters.removeAll(),
            writabilityWaiters: writabilityWaiters.removeAll(), authWaiter: takeAuthWaiter(),
            connectionsToClose: toClose, reason: reason)
    }
}

extension SessionStateMachine.OutboundCall: Sendable where Connection: Sendable {}
