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

    private var lastRead: ContinuousClock.Instant { clock.lastRead }
    private var lastWrite = ContinuousClock.now
    private var silenceLimit: Duration?
    private enum Timer: Hashable { case ping, idle, age, silence, read }
    private var timers: [Timer: Scheduled<Void>] = [:]
    private var frames = FrameProgress()
    private var readTimerArmed = false
    private var silenceTimerArmed = false

    /// Reports through inbound user events: ``SessionTimerEvent``.
    init(settings: Settings, clock: ConnectionClock) {
        self.settings = settings
        self.clock = clock
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
        lastWrite = lastRead
        if let interval = settings.pingInterval {
            arm(.ping, context, after: interval) { handler, context in handler.checkPing(context, interval) }
        }
        if let timeout = settings.idleTimeout {
            arm(.idle, context, after: timeout) { handler, context in handler.checkIdle(context, timeout) }
        }
        if let age = settings.maximumAge {
            arm(.age, context, after: age) { _, context in
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
        silenceLimit = period * 2
        guard !silenceTimerArmed else { return }
        silenceTimerArmed = true
        arm(.silence, context, after: period * 2) { handler, context in handler.checkSilence(context) }
    }

    // MARK: Traffic

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        clock.markRead()
        frames.consume(bytes)
        if frames.isMidFrame, let timeout = settings.readTimeout, !readTimerArmed {
            readTimerArmed = true
            arm(.read, context, after: timeout) { handler, context in handler.checkRead(context, timeout) }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        lastWrite = clock.now()
        context.write(data, promise: promise)
    }

    // MARK: Checks

    private func checkPing(_ context: ChannelHandlerContext, _ interval: Duration) {
        let quietSince = max(lastRead, lastWrite)
        let now = ContinuousClock.now
        if now - quietSince >= interval {
            context.fireUserInboundEventTriggered(SessionTimerEvent.heartbeatDue)
            arm(.ping, context, after: interval) { handler, context in handler.checkPing(context, interval) }
        } else {
            arm(.ping, context, after: interval - (now - quietSince)) { handler, context in handler.checkPing(context, interval) }
        }
    }

    private func checkIdle(_ context: ChannelHandlerContext, _ timeout: Duration) {
        let quiet = ContinuousClock.now - max(lastRead, lastWrite)
        if quiet >= timeout {
            context.fireUserInboundEventTriggered(SessionTimerEvent.limitPassed("idle for \(timeout)"))
        } else {
            arm(.idle, context, after: timeout - quiet) { handler, context in handler.checkIdle(context, timeout) }
        }
    }

    private func checkSilence(_ context: ChannelHandlerContext) {
        guard let limit = silenceLimit else { return }
        // As in erpc, this side's own writes count too: a session it keeps busy is not silent.
        let quiet = ContinuousClock.now - max(lastRead, lastWrite)
        if quiet >= limit {
            context.fireUserInboundEventTriggered(SessionTimerEvent.limitPassed("no heartbeat or traffic for \(limit), twice the announced period"))
        } else {
            arm(.silence, context, after: limit - quiet) { handler, context in handler.checkSilence(context) }
        }
    }

    private func checkRead(_ context: ChannelHandlerContext, _ timeout: Duration) {
        guard frames.isMidFrame else {
            readTimerArmed = false
            return
        }
        let quiet = ContinuousClock.now - lastRead
        if quiet >= timeout {
            context.fireUserInboundEventTriggered(SessionTimerEvent.limitPassed("frame incomplete with no bytes for \(timeout)"))
        } else {
            arm(.read, context, after: timeout - quiet) { handler, context in handler.checkRead(context, timeout) }
        }
    }

    private func arm(_ timer: Timer, _ context: ChannelHandlerContext, after delay: Duration, _ body: @escaping (SessionTimerHandler, ChannelHandlerContext) -> Void) {
        let loopBound = NIOLoopBound((self, context, body), eventLoop: context.eventLoop)
        timers[timer]?.cancel()
        timers[timer] = context.eventLoop.scheduleTask(in: TimeAmount(max(delay, .milliseconds(1)))) {
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
