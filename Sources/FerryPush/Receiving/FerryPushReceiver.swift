import Ferry
import NIOCore
import Synchronization

/// One message delivered to a ``FerryPushReceiver``.
public struct FerryDelivery: Sendable {
    /// The route it was pushed to.
    public var route: String
    /// Its offset in its stream's epoch.
    public var offset: UInt64
    /// The stream's epoch.
    public var epoch: String
    /// Messages before it that were lost (the mailbox's cap or time to live).
    public var lost: UInt64
    /// The body's codec.
    public var codec: FerryCodecID
    /// The encoded body.
    public var body: ByteBuffer
    /// The codecs to decode it with.
    public var codecs: FerryCodecRegistry

    /// The body decoded as `Value`.
    public func decode<Value>(_ type: Value.Type = Value.self) throws -> Value {
        try codecs.decode(type, from: body, codec: codec)
    }
}

/// The client side of at-least-once pushes (``FerryPushProtocol``): resumes the stream on a
/// session, hands each new message to a handler in order, acknowledges it when the handler
/// returns, and drops the duplicates that resends bring, by offset.
///
/// ```swift
/// let receiver = FerryPushReceiver(router: peer.router)     // before the peer dials
/// let session = try await peer.dial(gateway)
/// try await receiver.receive(on: session) { delivery in
///     print(delivery.offset, try delivery.decode(String.self))
/// }
/// // after a reconnect, receive again: it resumes from receiver.position
/// ```
public final class FerryPushReceiver: Sendable {
    private struct State {
        var position: FerryStreamPosition?
        var inboxes: [ObjectIdentifier: AsyncStream<FerryDelivery>.Continuation] = [:]
        var duplicates = 0
        var lost: UInt64 = 0
        var resumed: FerryPushProtocol.Resumed?
    }
    private let box: StateBox

    /// Registers the delivery route on `router` (the router of the peer that dials). Starts
    /// from `position`, a position saved earlier (nil: from the oldest message kept).
    public init(router: FerryRouter, position: FerryStreamPosition? = nil) {
        let box = StateBox(State(position: position))
        self.box = box
        router.addRoute(.push, FerryPushProtocol.deliverRoute) { message, context in
            let meta = message.meta
            guard let route = meta[FerryPushProtocol.MetaKey.route],
                let offset = meta[FerryPushProtocol.MetaKey.offset].flatMap(UInt64.init),
                let epoch = meta[FerryPushProtocol.MetaKey.epoch]
            else {
                throw FerryStatus.badMessage("a delivery without route, offset or epoch")
            }
            let delivery = FerryDelivery(
                route: route, offset: offset, epoch: epoch, lost: meta[FerryPushProtocol.MetaKey.lost].flatMap(UInt64.init) ?? 0,
                codec: message.bodyCodec, body: message.body, codecs: context.session.codecs)
            let inbox = box.state.withLock { $0.inboxes[ObjectIdentifier(context.session)] }
            inbox?.yield(delivery)
            return FerryResponse()
        }
    }

    private final class StateBox: Sendable {
        let state: Mutex<State>
        init(_ initial: State) { state = Mutex(initial) }
    }

    /// The last message processed: resume from here.
    public var position: FerryStreamPosition? { box.state.withLock { $0.position } }
    /// The server's answer to the latest resume (set before the first message is handed over).
    public var lastResumed: FerryPushProtocol.Resumed? { box.state.withLock { $0.resumed } }
    /// Deliveries dropped because their offset was already processed.
    public var duplicatesDropped: Int { box.state.withLock { $0.duplicates } }
    /// Messages the server reported lost (cap or time to live) so far.
    public var lostMessages: UInt64 { box.state.withLock { $0.lost } }

    /// Resumes the stream on `session` from ``position`` and calls `handler` with each new
    /// message, in offset order; a message is acknowledged once the handler returns. Returns
    /// when the session closes or the task is cancelled; rethrows the handler's error (that
    /// message is not acknowledged and will come again).
    ///
    /// - Returns: the server's answer to the resume.
    @discardableResult
    public func receive(
        on session: FerrySession, _ handler: @Sendable (FerryDelivery) async throws -> Void
    ) async throws -> FerryPushProtocol.Resumed {
        let (inbox, continuation) = AsyncStream.makeStream(of: FerryDelivery.self)
        let key = ObjectIdentifier(session)
        box.state.withLock { $0.inboxes[key] = continuation }
        defer {
            box.state.withLock { $0.inboxes[key] = nil }
            continuation.finish()
        }
        let resumed: FerryPushProtocol.Resumed = try await session.call(
            FerryPushProtocol.resumeRoute, FerryPushProtocol.Resume(epoch: position?.epoch, offset: position?.offset ?? 0))
        box.state.withLock { state in
            if resumed.epochChanged || state.position?.epoch != resumed.epoch {
                state.position = FerryStreamPosition(epoch: resumed.epoch, offset: 0)
            }
            state.lost += resumed.lost
            state.resumed = resumed
        }
        let acks = Signal()
        let clock = PushClock(ContinuousClock())
        try await withThrowingDiscardingTaskGroup { group in
            // Acknowledges the latest position, one ack in flight at a time: acks coalesce.
            group.addTask { [box] in
                    var acknowledged: FerryStreamPosition?
                while !Task.isCancelled {
                    await acks.wait(timeout: nil, clock: clock)
                    guard let position = box.state.withLock({ $0.position }), position != acknowledged, position.offset > 0 else { continue }
                    _ = try? await session.callForReply(
                        FerryPushProtocol.ackRoute, FerryPushProtocol.Ack(epoch: position.epoch, offset: position.offset))
                    acknowledged = position
                }
            }
            // The session's close ends the inbox.
            group.addTask {
                await session.waitUntilClosed()
                continuation.finish()
            }
            for await delivery in inbox {
                let fresh = box.state.withLock { state -> Bool in
                    if let position = state.position, position.epoch == delivery.epoch, delivery.offset <= position.offset {
                        state.duplicates += 1
                        return false
                    }
                    return true
                }
                if fresh {
                    try await handler(delivery)
                    box.state.withLock { state in
                        state.position = FerryStreamPosition(epoch: delivery.epoch, offset: delivery.offset)
                        state.lost += delivery.lost
                    }
                }
                acks.signal()
            }
            group.cancelAll()
        }
        return resumed
    }
}
