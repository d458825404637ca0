import Ferry
import Logging
import Synchronization

/// Sends one session its user's stream: reads the mailbox from where the session is, pushes
/// each message to ``FerryPushProtocol/deliverRoute``, and goes on as acks make room and new
/// messages are stored. Its ``run(_:)`` is a child task of ``FerryPushService/run()``.
final class DeliveryStream: Sendable {
    let user: String
    let session: FerrySession
    private let window: Mutex<DeliveryWindow>
    private let signal = Signal()
    private let stopped = Atomic<Bool>(false)
    private let metrics: PushMetrics?

    init(user: String, session: FerrySession, window: DeliveryWindow, metrics: PushMetrics?) {
        self.user = user
        self.session = session
        self.window = Mutex(window)
        self.metrics = metrics
    }

    /// Changes the window, keeping the unacknowledged and resend metrics in step with it.
    private func withWindow<Value>(_ body: (inout DeliveryWindow) -> Value) -> Value {
        guard let metrics else { return window.withLock { body(&$0) } }
        let (value, inflight, resends) = window.withLock { window in
            let (inflight, resends) = (window.inflight.count, window.resends)
            let value = body(&window)
            return (value, window.inflight.count - inflight, window.resends - resends)
        }
        if inflight > 0 { metrics.unacknowledged.increment(by: Double(inflight)) }
        if inflight < 0 { metrics.unacknowledged.decrement(by: Double(-inflight)) }
        if resends > 0 { metrics.resends.increment(by: resends) }
        return value
    }

    /// The epoch the stream delivers in.
    var epoch: String { window.withLock { $0.epoch } }

    /// Go-back-N rounds so far.
    var resends: Int { window.withLock { $0.resends } }

    /// More messages were stored, through `offset`.
    func stored(through offset: UInt64) {
        withWindow { $0.stored(through: offset) }
        signal.signal()
    }

    /// The client acknowledged through `offset` of `epoch`.
    func acknowledge(epoch: String, through offset: UInt64) -> Result<Void, DeliveryWindow.AckRefusal> {
        let result = withWindow { $0.acknowledge(epoch: epoch, through: offset) }
        if case .success = result { metrics?.acks.increment() }
        signal.signal()
        return result
    }

    /// Ends ``run(_:)``.
    func stop() {
        stopped.store(true, ordering: .relaxed)
        signal.signal()
    }

    struct Context: Sendable {
        let mailbox: any FerryMailbox
        let clock: PushClock
        let writeTimeout: Duration
        let logger: Logger
    }

    /// Delivers until stopped, cancelled, or the session closes.
    func run(_ context: Context) async {
        metrics?.streams.increment()
        defer {
            metrics?.streams.decrement()
            // What this stream still awaits is no longer awaited by anyone here.
            withWindow { window in
                let (epoch, known) = (window.epoch, window.known)
                window.restart(epoch: epoch, known: known)
            }
        }
        while !stopped.load(ordering: .relaxed), !Task.isCancelled, !session.isClosed {
            let action = withWindow { $0.nextAction(now: context.clock.now()) }
            switch action {
            case .wait(let deadline):
                await signal.wait(timeout: deadline.map { $0 - context.clock.now() }, clock: context.clock)
            case .read(let after, let limit):
                do {
                    try await deliver(after: after, limit: limit, context)
                } catch {
                    if session.isClosed { return }
                    context.logger.warning(
                        "push delivery paused", metadata: ["user": "\(user)", "session": "\(session.id)", "error": "\(error)"])
                    // The messages count as sent and go again when the resend time comes.
                }
            }
        }
    }

    private func deliver(after offset: UInt64, limit: Int, _ context: Context) async throws {
        let page = try await context.mailbox.read(user, after: offset, limit: limit)
        let current = withWindow { window -> Bool in
            guard page.epoch == window.epoch else {
                window.restart(epoch: page.epoch, known: page.lastOffset)
                return false
            }
            window.read(lost: page.lost, lastOffset: page.lastOffset, firstReturned: page.messages.first?.offset)
            return true
        }
        guard current else { return }
        for message in page.messages {
            let lost = withWindow { $0.sent(message.offset, at: context.clock.now()) }
            var meta: FerryMeta = [
                FerryPushProtocol.MetaKey.route: message.entry.route,
                FerryPushProtocol.MetaKey.offset: String(message.offset),
                FerryPushProtocol.MetaKey.epoch: page.epoch,
            ]
            if lost > 0 { meta.add(FerryPushProtocol.MetaKey.lost, String(lost)) }
            try await session.push(
                FerryPushProtocol.deliverRoute, body: message.entry.body, codec: message.entry.codec,
                options: FerryCallOptions(timeout: context.writeTimeout, meta: meta))
            metrics?.deliveries.increment()
        }
    }
}
