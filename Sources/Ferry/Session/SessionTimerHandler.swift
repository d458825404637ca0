import NIOCore

/// Keeps time for one connection, at the front of its pipeline where it sees raw bytes:
///
/// - ping: after `pingInterval` without traffic in either direction, asks the session to send a
///   heartbeat;
/// - silence: after twice the remote's announced heartbeat period without traffic, closes;
/// - idle: after `idleTimeout` without traffic in either direction, closes;
/// - read: while a raw-proto frame is incomplete, closes when no byte of it arrives for
///   `readTimeout` (a peer that sends half a frame and stalls);
/// - age: closes when the connection is older than `maximumAge`.
///
/// Timers re-arm lazily, as NIO's `IdleStateHandler` does: each fires once per period and checks
/// whether traffic came in the meantime, so an idle session costs one scheduled task per timer.
///
/// Every decision is taken on the time of the channel's event loop (`EventLoop.now`), the clock
/// its timers are scheduled on, so that a test loop's virtual time (`EmbeddedEventLoop`,
/// `NIOAsyncTestingEventLoop`) drives them. The loop's time is read only when a timer needs it:
/// for a read that leaves a frame incomplete, and for any traffic while the ping, idle or
/// silence timer runs (writes once per flush). The connection's ``ConnectionClock`` still takes
/// the arrival of every read, on the continuous clock that inbound deadlines are measured on.
final class SessionTimerHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Settings {
        var pingInterval: Duration?
        var idleTimeout: Duration?
        var readTimeout: Duration?
        var maximumAge: Duration?
    }

    private let settings: Settings
    private let clock: ConnectionClock

    /// On the loop's time: the latest read that counts for a running timer, and the latest flush.
    private var lastRead = NIODeadline.uptimeNanoseconds(0)
    private var lastWrite = NIODeadline.uptimeNanoseconds(0)
    /// Whether a timer that measures quiet in both directions (ping, idle, silence) runs, so that
    /// every read and flush takes the loop's time.
    private var tracksTraffic = false
    /// Whether bytes were written since the latest flush: a flush of nothing is no traffic.
    private var unflushedWrites = false
    private var silenceLimit: TimeAmount?
    private enum Timer: Hashable { case ping, idle, age, silence, read }
    private var timers: [Timer: Scheduled<Void>] = [:]
    private var frames = FrameProgress()
    private var readTimerArmed = false
    private var silenceTimerArmed = false

    /// Reports through inbound user events: ``SessionTimerEvent``.
    init(settings: Settings, clock: ConnectionClock) {
        self.settings = settings
        self.clock = clock
        tracksTraffic = settings.pingInterval != nil || settings.idleTimeout != nil
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        for task in timers.values { task.cancel() }
        timers = [:]
    }

    func channelInactive(context: ChannelHandlerContext) {
        handlerRemoved(context: context)
        context.fireChannelInactive()
    }

    private var started = false

    private func start(_ context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        clock.markRead()
        let now = context.eventLoop.now
        lastRead = now
        lastWrite = now
        if let interval = settings.pingInterval.map(TimeAmount.init) {
            arm(.ping, context, at: now + interval) { handler, context in handler.checkPing(context, interval) }
        }
        if let timeout = settings.idleTimeout.map(TimeAmount.init) {
            arm(.idle, context, at: now + timeout) { handler, context in handler.checkIdle(context, timeout) }
        }
        if let age = settings.maximumAge {
            arm(.age, context, at: now + TimeAmount(age)) { _, context in
                context.fireUserInboundEventTriggered(SessionTimerEvent.limitPassed("older than its maximum age of \(age)"))
            }
        }
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        if let announced = event as? HeartbeatAnnounced {
            expectHeartbeats(every: announced.period, context: context)
            promise?.succeed()
        } else {
            context.triggerUserOutboundEvent(event, promise: promise)
        }
    }

    /// Starts closing the session when no inbound bytes arrive for twice `period` (the remote
    /// announced it pings every `period`).
    private func expectHeartbeats(every period: Duration, context: ChannelHandlerContext) {
        let limit = TimeAmount(period * 2)
        silenceLimit = limit
        guard !silenceTimerArmed else { return }
        silenceTimerArmed = true
        // The announcement was just read; reads before it were not timed unless a timer needed them.
        let now = context.eventLoop.now
        if !tracksTraffic {
            tracksTraffic = true
            lastRead = now
        }
        arm(.silence, context, at: now + limit) { handler, context in handler.checkSilence(context) }
    }

    // MARK: Traffic

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        clock.markRead()
        frames.consume(bytes)
        if tracksTraffic || frames.isMidFrame {
            lastRead = context.eventLoop.now
        }
        if frames.isMidFrame, let timeout = settings.readTimeout.map(TimeAmount.init), !readTimerArmed {
            readTimerArmed = true
            arm(.read, context, at: lastRead + timeout) { handler, context in handler.checkRead(context, timeout) }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        unflushedWrites = true
        context.write(data, promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        if unflushedWrites {
            unflushedWrites = false
            if tracksTraffic { lastWrite = context.eventLoop.now }
        }
        context.flush()
    }

    // MARK: Checks

    private func checkPing(_ context: ChannelHandlerContext, _ interval: TimeAmount) {
        let quietSince = max(lastRead, lastWrite)
        if context.eventLoop.now - quietSince >= interval {
            context.fireUserInboundEventTriggered(SessionTimerEvent.heartbeatDue)
            arm(.ping, context, at: context.eventLoop.now + interval) { handler, context in handler.checkPing(context, interval) }
        } else {
            arm(.ping, context, at: quietSince + interval) { handler, context in handler.checkPing(context, interval) }
        }
    }

    private func checkIdle(_ context: ChannelHandlerContext, _ timeout: TimeAmount) {
        let quietSince = max(lastRead, lastWrite)
        if context.eventLoop.now - quietSince >= timeout {
            context.fireUserInboundEventTriggered(SessionTimerEvent.limitPassed("idle for \(Duration(timeout))"))
        } else {
            arm(.idle, context, at: quietSince + timeout) { handler, context in handler.checkIdle(context, timeout) }
        }
    }

    private func checkSilence(_ context: ChannelHandlerContext) {
        guard let limit = silenceLimit else { return }
        // As in erpc, this side's own writes count too: a session it keeps busy is not silent.
        let quietSince = max(lastRead, lastWrite)
        if context.eventLoop.now - quietSince >= limit {
            context.fireUserInboundEventTriggered(
                SessionTimerEvent.limitPassed("no heartbeat or traffic for \(Duration(limit)), twice the announced period"))
        } else {
            arm(.silence, context, at: quietSince + limit) { handler, context in handler.checkSilence(context) }
        }
    }

    private func checkRead(_ context: ChannelHandlerContext, _ timeout: TimeAmount) {
        guard frames.isMidFrame else {
            readTimerArmed = false
            return
        }
        if context.eventLoop.now - lastRead >= timeout {
            context.fireUserInboundEventTriggered(SessionTimerEvent.limitPassed("frame incomplete with no bytes for \(Duration(timeout))"))
        } else {
            arm(.read, context, at: lastRead + timeout) { handler, context in handler.checkRead(context, timeout) }
        }
    }

    private func arm(_ timer: Timer, _ context: ChannelHandlerContext, at deadline: NIODeadline, _ body: @escaping (SessionTimerHandler, ChannelHandlerContext) -> Void) {
        let loopBound = NIOLoopBound((self, context, body), eventLoop: context.eventLoop)
        timers[timer]?.cancel()
        timers[timer] = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context, body) = loopBound.value
            body(handler, context)
        }
    }
}

@available(*, unavailable)
extension SessionTimerHandler: Sendable {}

/// What the timer handler tells the session handler.
enum SessionTimerEvent {
    /// No traffic for the ping interval: send a heartbeat.
    case heartbeatDue
    /// A time limit passed: close the session for this reason.
    case limitPassed(String)
}

/// Sent outbound by the session handler when the remote announces its heartbeat period.
struct HeartbeatAnnounced {
    var period: Duration
}

/// Follows raw-proto frame boundaries (a 4-byte total size, then the rest) to tell whether a
/// frame is partly received.
struct FrameProgress {
    private var sizeBytes: UInt32 = 0
    private var sizeBytesSeen = 0
    private var remaining = 0

    var isMidFrame: Bool { sizeBytesSeen > 0 || remaining > 0 }

    mutating func consume(_ buffer: ByteBuffer) {
        var available = buffer.readableBytes
        var offset = buffer.readerIndex
        while available > 0 {
            if remaining > 0 {
                let step = min(remaining, available)
                remaining -= step
                available -= step
                offset += step
                continue
            }
            sizeBytes = sizeBytes << 8 | UInt32(buffer.getInteger(at: offset, as: UInt8.self)!)
            sizeBytesSeen += 1
            offset += 1
            available -= 1
            if sizeBytesSeen == 4 {
                remaining = max(Int(sizeBytes) - 4, 0)
                sizeBytes = 0
                sizeBytesSeen = 0
            }
        }
    }
}
