@testable import Ferry
import FerryCore
import Logging
import NIOCore
import NIOEmbedded
import Synchronization

/// A peer's session served over an in-memory channel (`NIOAsyncTestingChannel`) as an accepted
/// connection. The test plays the remote: it writes frames in, reads what the session writes,
/// and moves the channel's event-loop time itself, so that the session's timers (heartbeat,
/// idle, read, age, call deadlines) run on time the test controls, not on the wall clock.
///
/// ```swift
/// let embedded = try await EmbeddedSession.start(FerryPeer.Configuration(idleTimeout: .seconds(1)))
/// await embedded.advance(by: .seconds(1))
/// #expect(!embedded.isOpen)
/// ```
final class EmbeddedSession: Sendable {
    /// A decision of the session's timer handler, at the loop time it was taken.
    struct TimerEvent: Sendable, Equatable, CustomStringConvertible {
        /// True for "send a heartbeat", false for "close: a limit passed".
        var isHeartbeatDue: Bool
        /// Why the session is closed, for a limit.
        var reason: String?
        /// The loop time of the decision, since the channel was created.
        var at: Duration

        var description: String { isHeartbeatDue ? "heartbeat due at \(at)" : "limit passed at \(at): \(reason ?? "")" }
    }

    let peer: FerryPeer
    let channel: NIOAsyncTestingChannel
    let session: FerrySession
    /// Every decision of the timer handler so far, in order.
    let timerEvents: Recorder<TimerEvent>
    private let unread = Mutex(ByteBuffer())

    private init(peer: FerryPeer, channel: NIOAsyncTestingChannel, session: FerrySession, timerEvents: Recorder<TimerEvent>) {
        self.peer = peer
        self.channel = channel
        self.session = session
        self.timerEvents = timerEvents
    }

    /// Serves a new in-memory connection with a peer of `configuration` that has the standard
    /// routes and those `routes` adds. The connection becomes active at loop time zero.
    static func start(
        _ configuration: FerryPeer.Configuration = FerryPeer.Configuration(),
        logger: Logger = quietLogger(),
        routes: (FerryRouter) -> Void = { _ in }
    ) async throws -> EmbeddedSession {
        let peer = FerryPeer(configuration: configuration, logger: logger)
        addStandardRoutes(peer.router)
        routes(peer.router)
        let channel = NIOAsyncTestingChannel()
        let events = Recorder<TimerEvent>()
        let session = try await channel.testingEventLoop.submit {
            let session = try peer.serve(channel, remoteAddress: "memory")
            let timers = try channel.pipeline.syncOperations.handler(type: SessionTimerHandler.self)
            try channel.pipeline.syncOperations.addHandler(TimerEventTap(events: events), position: .after(timers))
            return session
        }.get()
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        return EmbeddedSession(peer: peer, channel: channel, session: session, timerEvents: events)
    }

    /// The loop time since the channel was created.
    var elapsed: Duration { Duration(channel.testingEventLoop.now - .uptimeNanoseconds(0)) }

    /// Whether the connection is still open.
    var isOpen: Bool { channel.isActive }

    /// Moves the loop's time forward by `duration`, running the timers due meanwhile.
    func advance(by duration: Duration) async {
        await channel.testingEventLoop.advanceTime(by: TimeAmount(duration))
    }

    /// Writes the raw-proto frame of `message` into the connection, as the remote would.
    func send(_ message: FerryMessage) async throws {
        try await send(bytes: RawConnection.frame(message))
    }

    /// Writes `bytes` into the connection as they are.
    func send(bytes: [UInt8]) async throws {
        try await channel.writeInbound(ByteBuffer(bytes: bytes))
    }

    /// The whole messages the session has written and the test has not taken yet.
    func written() async throws -> [FerryMessage] {
        await channel.testingEventLoop.run()
        try await collectOutbound()
        var messages: [FerryMessage] = []
        while let message = try takeMessage() { messages.append(message) }
        return messages
    }

    /// The next message the session writes, waiting for work it does in a task (a heartbeat,
    /// a call). `within` only guards against a hang; it measures nothing.
    func nextWritten(within limit: Duration = .seconds(10)) async throws -> FerryMessage {
        let giveUp = ContinuousClock.now + limit
        while true {
            // Runs what the session queued on the loop for now (a flush, an outbox drain).
            await channel.testingEventLoop.run()
            try await collectOutbound()
            if let message = try takeMessage() { return message }
            guard ContinuousClock.now < giveUp else { throw TimeoutError(what: "the session wrote nothing within \(limit)") }
            try await Task.sleep(for: .milliseconds(2))
        }
    }

    /// Waits until the connection is closed, for a close the session makes from a task.
    /// `within` only guards against a hang; it measures nothing.
    func waitUntilClosed(within limit: Duration = .seconds(10)) async -> Bool {
        await eventually(timeout: limit) { !self.channel.isActive }
    }

    /// Closes the connection and the peer.
    func close() async {
        _ = try? await channel.finish(acceptAlreadyClosed: true)
        await peer.close()
    }

    private func collectOutbound() async throws {
        while let buffer = try await channel.readOutbound(as: ByteBuffer.self) {
            unread.withLock { unread in
                var buffer = buffer
                unread.writeBuffer(&buffer)
            }
        }
    }

    private func takeMessage() throws -> FerryMessage? {
        try unread.withLock { try FerryRawProto().decodeMessage(from: &$0) }
    }

    /// Records the timer handler's events on their way to the session handler.
    private final class TimerEventTap: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let events: Recorder<TimerEvent>

        init(events: Recorder<TimerEvent>) { self.events = events }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            let at = Duration(context.eventLoop.now - .uptimeNanoseconds(0))
            switch event as? SessionTimerEvent {
            case .heartbeatDue: events.append(TimerEvent(isHeartbeatDue: true, at: at))
            case .limitPassed(let reason): events.append(TimerEvent(isHeartbeatDue: false, reason: reason, at: at))
            case nil: break
            }
            context.fireUserInboundEventTriggered(event)
        }
    }
}

extension FerryMessage {
    /// A REPLY to the call `seq` with `status` and a JSON `body`.
    static func reply(to seq: Int32, status: FerryStatus = .ok, json body: String = "") -> FerryMessage {
        FerryMessage(type: .reply, seq: seq, status: status, bodyCodec: .json, body: ByteBuffer(string: body))
    }

    /// A CALL of `/math/add` with `seq`.
    static func add(_ a: Int, _ b: Int, seq: Int32) -> FerryMessage {
        FerryMessage(
            type: .call, seq: seq, serviceMethod: "/math/add", bodyCodec: .json,
            body: ByteBuffer(string: #"{"a":\#(a),"b":\#(b)}"#))
    }
}
