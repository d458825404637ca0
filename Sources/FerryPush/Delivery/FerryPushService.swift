import Ferry
import Logging
import Metrics
import NIOCore
import ServiceLifecycle
import Synchronization

/// At-least-once pushes to users: each push is stored in a ``FerryMailbox`` before it is
/// acknowledged to the sender, then delivered to every session of the user that has resumed
/// its stream, in order, within an inflight window, and sent again until acknowledged (the
/// exchange is ``FerryPushProtocol``). A user who was offline gets what they missed when a
/// session resumes from the last offset it processed.
///
/// It works on any peer whose sessions are authenticated users: `user` says whose a session is.
///
/// ```swift
/// let push = FerryPushService(mailbox: FerryMemoryMailbox()) { session in session.id }
/// push.install(on: peer.router)
/// // run push.run() (a swift-service-lifecycle Service) beside the peer, and call
/// // push.sessionClosed(_:) from the peer's onDisconnect hook.
/// try await push.push(to: "alice", route: "/chat/msg", "hello")
/// ```
public final class FerryPushService: Sendable {
    /// Delivery settings.
    public struct Configuration: Sendable {
        /// Messages sent to one session and not yet acknowledged, at most.
        public var window: Int
        /// How long a message may go unacknowledged before it (and what follows) is sent again.
        public var resendAfter: Duration
        /// How long one delivery may wait to be written to a session that reads slowly.
        public var writeTimeout: Duration
        /// The clock of resends (tests pass their own).
        public var clock: any Clock<Duration> & Sendable
        /// Where the service's metrics go (``FerryPushMetricNames``); nil records none.
        public var metrics: (any MetricsFactory)?

        /// Creates settings: a window of 256 messages, resends after 10 s.
        public init(
            window: Int = 256, resendAfter: Duration = .seconds(10), writeTimeout: Duration = .seconds(5),
            clock: any Clock<Duration> & Sendable = ContinuousClock(), metrics: (any MetricsFactory)? = nil
        ) {
            self.window = window
            self.resendAfter = resendAfter
            self.writeTimeout = writeTimeout
            self.clock = clock
            self.metrics = metrics
        }
    }

    /// Where the streams are stored.
    public let mailbox: any FerryMailbox
    /// The delivery settings.
    public let configuration: Configuration
    let user: @Sendable (FerrySession) -> String?
    let logger: Logger
    let clock: PushClock
    private let metrics: PushMetrics?
    private let streams = Mutex<[String: [ObjectIdentifier: DeliveryStream]]>([:])
    private let started: AsyncStream<DeliveryStream>
    private let start: AsyncStream<DeliveryStream>.Continuation

    /// Creates the service.
    ///
    /// - Parameters:
    ///   - mailbox: Where pushes are stored.
    ///   - configuration: Window, resend time and clock.
    ///   - logger: Where delivery problems are logged.
    ///   - user: The user a session belongs to; nil refuses the session's resume with 401.
    public init(
        mailbox: any FerryMailbox, configuration: Configuration = Configuration(), logger: Logger = Logger(label: "ferry.push"),
        user: @escaping @Sendable (FerrySession) -> String?
    ) {
        self.mailbox = mailbox
        self.configuration = configuration
        self.user = user
        self.logger = logger
        self.clock = PushClock(configuration.clock)
        self.metrics = configuration.metrics.map(PushMetrics.init(factory:))
        (started, start) = AsyncStream.makeStream(of: DeliveryStream.self)
    }

    // MARK: Routes

    /// Adds ``FerryPushProtocol/resumeRoute`` and ``FerryPushProtocol/ackRoute`` to `router`.
    public func install(on router: FerryRouter) {
        router.call(FerryPushProtocol.resumeRoute) { [self] (resume: FerryPushProtocol.Resume, context: FerryContext) in
            try await self.resume(resume, context: context)
        }
        router.call(FerryPushProtocol.ackRoute) { [self] (ack: FerryPushProtocol.Ack, context: FerryContext) -> Void in
            guard let stream = stream(of: context.session) else {
                throw FerryStatus.badMessage("this session has not resumed a stream")
            }
            switch stream.acknowledge(epoch: ack.epoch, through: ack.offset) {
            case .success: return
            case .failure(.otherEpoch(let epoch)):
                throw FerryStatus.badMessage("epoch \(epoch) is not this session's stream")
            case .failure(.notSent(let offset)):
                throw FerryStatus.badMessage("offset \(offset) was not sent to this session")
            }
        }
    }

    private func resume(_ request: FerryPushProtocol.Resume, context: FerryContext) async throws -> FerryPushProtocol.Resumed {
        guard let session = context.session as? FerrySession, let user = user(session) else {
            throw FerryStatus.unauthorized("pushes are delivered to authenticated users only")
        }
        let position = try await mailbox.position(of: user)
        var next: UInt64
        let epochChanged: Bool
        if request.epoch == position.epoch {
            guard request.offset <= position.offset else {
                throw FerryStatus.badMessage("offset \(request.offset) is past the stream's end (\(position.offset))")
            }
            next = request.offset + 1
            epochChanged = false
        } else {
            next = 1
            epochChanged = request.epoch != nil
        }
        var lost: UInt64 = 0
        if next <= position.offset {
            // What the cap or the time to live dropped is told here, once, and skipped.
            let first = try await mailbox.read(user, after: next - 1, limit: 1)
            lost = first.lost
            next = first.messages.first?.offset ?? (first.lastOffset + 1)
        }
        let stream = DeliveryStream(
            user: user, session: session,
            window: DeliveryWindow(
                epoch: position.epoch, next: next, known: position.offset, window: configuration.window,
                resendAfter: configuration.resendAfter),
            metrics: metrics)
        let replaced = streams.withLock { streams in
            streams[user, default: [:]].updateValue(stream, forKey: ObjectIdentifier(session))
        }
        replaced?.stop()
        start.yield(stream)
        return FerryPushProtocol.Resumed(epoch: position.epoch, offset: position.offset, epochChanged: epochChanged, lost: lost)
    }

    private func stream(of session: any FerrySessionProtocol) -> DeliveryStream? {
        guard let session = session as? FerrySession, let user = user(session) else { return nil }
        return streams.withLock { $0[user]?[ObjectIdentifier(session)] }
    }

    // MARK: Pushing

    /// Stores `entries` for `user` and returns once they are stored (their offsets); the
    /// user's resumed sessions get them after.
    @discardableResult
    public func push(_ entries: [FerryMailboxEntry], to user: String) async throws -> FerryAppendResult {
        let result = try await mailbox.append(entries, to: user)
        metrics?.stored.increment(by: entries.count)
        let targets = streams.withLock { $0[user].map { Array($0.values) } ?? [] }
        for stream in targets { stream.stored(through: result.offsets.upperBound) }
        return result
    }

    /// Encodes `value` with `codec` and pushes it to `route` of `user`'s sessions, at least
    /// once; returns once it is stored.
    @discardableResult
    public func push<Value>(to user: String, route: String, _ value: Value, codec: FerryCodecID = .json, codecs: FerryCodecRegistry = .standard) async throws -> FerryAppendResult {
        let body: ByteBuffer
        do {
            body = try codecs.encode(value, codec: codec)
        } catch {
            throw FerryStatus.badMessage("cannot encode the push: \(error)")
        }
        return try await push([FerryMailboxEntry(route: route, codec: codec, body: body)], to: user)
    }

    /// Messages for `user` were stored through `offset` by another node that shares the
    /// mailbox: this node's deliveries to the user go on from there.
    public func storedElsewhere(for user: String, through offset: UInt64) {
        let targets = streams.withLock { $0[user].map { Array($0.values) } ?? [] }
        for stream in targets { stream.stored(through: offset) }
    }

    /// Stops delivering to a session that closed. Call it from the peer's `onDisconnect` hook.
    public func sessionClosed(_ session: FerrySession) {
        guard let user = user(session) else { return }
        let removed = streams.withLock { streams -> DeliveryStream? in
            let removed = streams[user]?.removeValue(forKey: ObjectIdentifier(session))
            if streams[user]?.isEmpty == true { streams[user] = nil }
            return removed
        }
        removed?.stop()
    }

    /// The sessions of `user` being delivered to.
    public func deliveringSessions(of user: String) -> Int {
        streams.withLock { $0[user]?.count ?? 0 }
    }

    // MARK: Running

    /// Runs the deliveries: each resumed session's stream is a child task of this call. Returns
    /// when the task is cancelled or a graceful shutdown begins; the streams stop with it.
    public func run() async {
        let context = DeliveryStream.Context(
            mailbox: mailbox, clock: clock, writeTimeout: configuration.writeTimeout, logger: logger)
        await withDiscardingTaskGroup { group in
            for await stream in started.cancelOnGracefulShutdown() {
                group.addTask { [self] in
                    await stream.run(context)
                    streams.withLock { streams in
                        if streams[stream.user]?[ObjectIdentifier(stream.session)] === stream {
                            streams[stream.user]?[ObjectIdentifier(stream.session)] = nil
                            if streams[stream.user]?.isEmpty == true { streams[stream.user] = nil }
                        }
                    }
                }
            }
            group.cancelAll()
        }
    }
}
