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
///
/// The session does not know its transport: it runs over any channel whose pipeline turns bytes
/// into ``FerryMessage``s and back. Its state and every decision about it live in a
/// ``SessionStateMachine``; this class runs that machine under one lock and does the I/O it asks for.
public final class FerrySession: FerrySessionProtocol, CustomStringConvertible {
    /// The remote address, e.g. `127.0.0.1:52100`.
    public let remoteAddress: String
    /// Whether this side dialled the connection (false: it was accepted by a listener).
    public let isDialled: Bool
    let peer: FerryPeer
    let logger: Logger
    /// The peer's routes, frozen when it started serving.
    let routes: FerryRouteTable
    /// Whether every exchange gets a debug line: the logger's level when the session opened,
    /// read once rather than once per message.
    let logsEveryExchange: Bool
    let dialTarget: DialTarget?
    /// An accepted session's place among unauthenticated connections, until it authenticates.
    let authSlot: UnauthenticatedSlot?
    /// Wakes ``waitUntilClosed()``.
    let closeNotifier = CloseNotifier()
    let state: Mutex<SessionState>
    /// The loop whose clock times this session's calls and pushes: the first connection's.
    /// Every loop of a group reads the same clock, so a redial onto another loop changes
    /// nothing, and reading it takes no lock.
    let clockLoop: any EventLoop

    init(
        channel: any Channel, peer: FerryPeer, isDialled: Bool, remoteAddress: String, dialTarget: DialTarget?,
        authSlot: UnauthenticatedSlot? = nil
    ) {
        self.peer = peer
        self.authSlot = authSlot
        self.routes = peer.routeTable
        self.isDialled = isDialled
        self.remoteAddress = remoteAddress
        self.dialTarget = dialTarget
        self.clockLoop = channel.eventLoop
        self.state = Mutex(
            SessionStateMachine(
                connection: channel, remoteAddress: remoteAddress, dialled: isDialled,
                canRedial: dialTarget != nil && peer.configuration.redial != nil, now: .now()))
        var logger = peer.logger
        logger[metadataKey: "remote"] = "\(remoteAddress)"
        self.logger = logger
        self.logsEveryExchange = logger.logLevel <= .debug
    }

    // MARK: Identity

    /// The session ID: the remote address until ``setID(_:)`` changes it.
    public var id: String { state.withLock { $0.identity.id } }

    /// Changes the session ID. An older session with the same ID is closed (single login).
    /// A session that has closed only changes its ID.
    public func setID(_ newID: String) {
        peer.hub.setID(newID, of: self)
    }

    /// The peer's codecs.
    public var codecs: FerryCodecRegistry { peer.configuration.codecs }
    /// The peer's default codec.
    public var defaultCodec: FerryCodecID { peer.configuration.defaultCodec }

    /// Whether the session has a live connection (false while redialling and once closed).
    public var isActive: Bool {
        guard let channel = state.withLock({ $0.lifecycle.writableConnection }) else { return false }
        return channel.isActive
    }

    /// Whether the session is closed for good: closed by either side with no redial, or its
    /// redial gave up. A session that is redialling is not closed.
    public var isClosed: Bool { state.withLock { $0.isClosed } }

    /// Suspends until the session is closed for good (as ``isClosed`` says), or the task is
    /// cancelled.
    public func waitUntilClosed() async {
        await closeNotifier.wait()
    }

    /// A readable form, for logs and error messages.
    public var description: String { "FerrySession(\(id), remote: \(remoteAddress))" }

    /// The current connection (the last one, while redialling or once closed).
    var channel: any Channel { state.withLock { $0.lifecycle.connection } }

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
        guard let closing = state.withLock({ $0.close(reason: "closed by this side") }) else { return }
        tellClosed(closing)
        // tellClosed started closing them; returns once they are closed.
        for connection in closing.connectionsToClose { try? await connection.closeFuture.get() }
    }

    /// What the session is holding on to: calls awaiting replies, calls not yet handed to their
    /// connection, and suspended senders. All zero when nothing is in progress; tests use it to
    /// show nothing leaks.
    var outstanding: (pendingCalls: Int, unsentCalls: Int, reconnectWaiters: Int, writabilityWaiters: Int, handlers: Int) {
        state.withLock {
            ($0.calls.count, $0.unsentCalls, $0.reconnectWaiters.count, $0.writabilityWaiters.count, $0.handlersRunning)
        }
    }

    // MARK: Identity changes (the hub's)

    /// Sets the ID; returns the old one and whether the session is closed.
    func assignID(_ newID: String) -> (oldID: String, closed: Bool) {
        state.withLock { state in
            let old = state.identity.id
            state.assignID(newID)
            return (old, state.isClosed)
        }
    }

    /// Whether the ID is still the default one (never set with ``setID(_:)``).
    var hasDefaultID: Bool {
        state.withLock { if case .remoteAddress = $0.identity { true } else { false } }
    }

    /// Replaces a default ID that another session already holds (hub use only).
    func adoptDefaultID(_ newID: String) {
        state.withLock { $0.adoptDefaultID(newID) }
    }

    // MARK: Closing

    /// Remembers why the session is closing, for the disconnect log; the first reason wins.
    func recordCloseReason(_ reason: String) {
        state.withLock { $0.recordCloseReason(reason) }
    }

    /// Records `reason` and closes the current connection (which may redial).
    func closeConnection(_ channel: any Channel, reason: String) {
        recordCloseReason(reason)
        channel.close(promise: nil)
    }

    /// Fails the waiters of a session that has just closed, closes what it says, and tells the peer.
    func tellClosed(_ closing: SessionState.Closing) {
        let status = FerryStatus.connectionClosed(closing.reason)
        for waiter in closing.reconnectWaiters { waiter.resume(throwing: status) }
        for waiter in closing.writabilityWaiters { waiter.resume(throwing: status) }
        closing.authWaiter?.resume(throwing: status)
        for connection in closing.connectionsToClose { connection.close(promise: nil) }
        logger.debug("session closed", metadata: ["id": "\(id)", "reason": "\(closing.reason)"])
        peer.sessionClosed(self, wasReady: closing.wasReady, reason: closing.reason)
        closeNotifier.close()
    }
}

/// A session's state: its machine over NIO channels, resuming callers with continuations.
typealias SessionState = SessionStateMachine<any Channel, UnsafeContinuation<FerryMessage, any Error>>

/// A call awaiting its reply.
typealias PendingCall = CallTable<UnsafeContinuation<FerryMessage, any Error>>.Call

/// Where and how a dialled session connects, kept for redials.
struct DialTarget: Sendable {
    var address: FerryAddress
    var tls: NIOSSLContext?
    var serverHostname: String?
}
