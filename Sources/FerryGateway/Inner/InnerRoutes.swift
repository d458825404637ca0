import Ferry
import FerryPush
import NIOCore

extension FerryGateway {
    /// The routes of the gateway's inner listener, which internal services call to reach
    /// connected users. Pushes here are best effort: written to the sessions connected now.
    ///
    /// - ``push``: pushes the call's body, with its codec, to route `X-Ferry-Push-Route` on every
    ///   session of each user named in `X-Ferry-User` and each session named in `X-Ferry-Session`
    ///   (both may repeat). Replies the number of sessions written to.
    /// - ``kick``: closes every session of the users in `X-Ferry-User` and the sessions in
    ///   `X-Ferry-Session`. Replies the number closed.
    /// - ``online``: takes a JSON array of user IDs and replies those connected.
    /// - ``count``: replies `{"users": N, "sessions": M}`.
    /// - ``send``: at least once (with ``Configuration/durablePush``): stores the call's body for
    ///   each user named in `X-Ferry-User`, to route `X-Ferry-Push-Route`, and replies once it is
    ///   stored with a ``Stored`` per user; the users' sessions that resumed their stream get it,
    ///   and those offline get it when they resume.
    public enum InnerRoute {
        /// Push to users or sessions.
        public static let push = "/gateway/push"
        /// Close the sessions of users or sessions.
        public static let kick = "/gateway/kick"
        /// Which of the given users are connected.
        public static let online = "/gateway/online"
        /// How many users and sessions are connected.
        public static let count = "/gateway/count"
        /// Store and push, at least once.
        public static let send = "/gateway/send"
        /// Between the gateways of a cluster: messages were stored for users held here (body:
        /// an array of ``Stored``).
        public static let notify = "/gateway/notify"
    }

    /// The meta keys the gateway sets on inward calls and reads on inner calls.
    public enum MetaKey {
        /// The user ID of the session an inward call came from; on inner calls, a target user.
        public static let user = "X-Ferry-User"
        /// The session ID an inward call came from; on inner calls, a target session.
        public static let session = "X-Ferry-Session"
        /// The IP address of the outside client.
        public static let realIP = "X-Real-IP"
        /// On ``InnerRoute/push``: the route the pushed message goes to on the clients.
        public static let pushRoute = "X-Ferry-Push-Route"
    }

    /// The route the gateway pushes to a client just before it closes the client's session on
    /// purpose, so that the client does not dial again: a JSON body ``Closing``. A client that
    /// serves no such route drops the push and sees only the close.
    public static let closingRoute = "/gateway/closing"

    /// Why the gateway closes a session (the body of ``closingRoute``).
    public struct Closing: Codable, Sendable, Hashable {
        /// `kicked` (``InnerRoute/kick``) or `replaced` (a newer login of the same user).
        public var reason: String

        /// Creates a closing notice.
        public init(reason: String) {
            self.reason = reason
        }

        /// The session was closed through ``InnerRoute/kick``.
        public static let kicked = Closing(reason: "kicked")
        /// A newer login of the same user took the session's place (single login).
        public static let replaced = Closing(reason: "replaced")
    }

    /// Where ``InnerRoute/send`` stored a message for one user.
    public struct Stored: Codable, Sendable, Hashable {
        /// The user.
        public var user: String
        /// The user's stream epoch.
        public var epoch: String
        /// The message's offset.
        public var offset: UInt64

        /// Creates a record.
        public init(user: String, epoch: String, offset: UInt64) {
            self.user = user
            self.epoch = epoch
            self.offset = offset
        }
    }

    /// The reply of ``InnerRoute/count``.
    public struct OnlineCount: Codable, Sendable, Hashable {
        /// Users with at least one session.
        public var users: Int
        /// Sessions.
        public var sessions: Int

        /// Creates a count.
        public init(users: Int, sessions: Int) {
            self.users = users
            self.sessions = sessions
        }
    }
}

/// The handlers of ``FerryGateway/InnerRoute``, over the outer peer's sessions.
struct InnerRoutes: Sendable {
    let users: UserDirectory
    let hub: FerrySessionHub
    let pushTimeout: Duration
    let pushService: FerryPushService?
    let cluster: ClusterForwarding?

    func register(on router: FerryRouter) {
        router.call(FerryGateway.InnerRoute.push) { (_: ByteBuffer, context) async throws -> Int in
            let message = context.message
            guard let route = message.meta[FerryGateway.MetaKey.pushRoute], !route.isEmpty else {
                throw FerryStatus.badMessage("\(FerryGateway.MetaKey.pushRoute) names no route to push to")
            }
            let here = await FerrySessionHub.push(
                route, body: message.body, codec: message.bodyCodec, to: targets(of: message), options: .timeout(pushTimeout))
            guard let cluster, message.meta[ClusterForwarding.forwardedKey] == nil else { return here }
            let elsewhere = await cluster.forwardPush(
                to: message.meta.values(for: FerryGateway.MetaKey.user), route: route, body: message.body, codec: message.bodyCodec,
                timeout: pushTimeout)
            return here + elsewhere
        }
        router.call(FerryGateway.InnerRoute.send) { [pushService] (_: ByteBuffer, context) async throws -> [FerryGateway.Stored] in
            guard let pushService else {
                throw FerryStatus.messageTypeNotAllowed("this gateway keeps no mailbox: at-least-once pushes are off")
            }
            // The records are JSON whatever codec the message itself is in.
            context.replyCodec = .json
            let message = context.message
            guard let route = message.meta[FerryGateway.MetaKey.pushRoute], !route.isEmpty else {
                throw FerryStatus.badMessage("\(FerryGateway.MetaKey.pushRoute) names no route to push to")
            }
            let entry = FerryMailboxEntry(route: route, codec: message.bodyCodec, body: message.body)
            var stored: [FerryGateway.Stored] = []
            for user in message.meta.values(for: FerryGateway.MetaKey.user) {
                let result = try await pushService.push([entry], to: user)
                stored.append(FerryGateway.Stored(user: user, epoch: result.epoch, offset: result.offsets.lowerBound))
            }
            await cluster?.notifyStored(stored, timeout: pushTimeout)
            return stored
        }
        router.call(FerryGateway.InnerRoute.notify) { [pushService] (stored: [FerryGateway.Stored], _: FerryContext) -> Void in
            for record in stored { pushService?.storedElsewhere(for: record.user, through: record.offset) }
        }
        router.call(FerryGateway.InnerRoute.kick) { (_: Void, context) async -> Int in
            let targets = targets(of: context.message)
            await withTaskGroup(of: Void.self) { group in
                for session in targets {
                    group.addTask { await FerryGateway.close(session, because: .kicked) }
                }
            }
            return targets.count
        }
        router.call(FerryGateway.InnerRoute.online) { (asked: [String], _) -> [String] in
            asked.filter { !users.sessions(of: $0).isEmpty }
        }
        router.call(FerryGateway.InnerRoute.count) { (_: Void, _) -> FerryGateway.OnlineCount in
            let (userCount, sessionCount) = users.counts()
            return FerryGateway.OnlineCount(users: userCount, sessions: sessionCount)
        }
    }

    /// The sessions a message's `X-Ferry-User` and `X-Ferry-Session` meta name, each once.
    private func targets(of message: FerryMessage) -> [FerrySession] {
        var seen = Set<ObjectIdentifier>()
        var sessions: [FerrySession] = []
        func add(_ session: FerrySession) {
            if seen.insert(ObjectIdentifier(session)).inserted { sessions.append(session) }
        }
        for user in message.meta.values(for: FerryGateway.MetaKey.user) {
            users.sessions(of: user).forEach(add)
        }
        for id in message.meta.values(for: FerryGateway.MetaKey.session) {
            hub.session(id: id).map(add)
        }
        return sessions
    }
}

extension FerryGateway {
    /// Tells a client why its session ends (``closingRoute``; best effort, within a second), then
    /// closes the session.
    static func close(_ session: FerrySession, because closing: Closing) async {
        try? await session.push(closingRoute, closing, options: .timeout(.seconds(1)))
        await session.close()
    }
}
