import Ferry
import FerryPush
import NIOCore

extension FerryGateway {
    /// Rooms at the gateway: outside clients join and leave them, internal services broadcast
    /// to them and ask who is in them.
    public struct Rooms: Sendable {
        /// Rate cap, rooms per session, clock.
        public var configuration: FerryRooms.Configuration
        /// Whether `user` may join `room` (nil: anyone may join any room).
        public var mayJoin: (@Sendable (_ user: String, _ room: String) async -> Bool)?

        /// Creates room settings.
        public init(
            configuration: FerryRooms.Configuration = FerryRooms.Configuration(),
            mayJoin: (@Sendable (_ user: String, _ room: String) async -> Bool)? = nil
        ) {
            self.configuration = configuration
            self.mayJoin = mayJoin
        }
    }

    /// The routes outside clients call for rooms (served by the gateway, not proxied).
    public enum RoomRoute {
        /// CALL with the room name (a JSON string): join it. 403 when not allowed.
        public static let join = "/gateway/rooms/join"
        /// CALL with the room name: leave it.
        public static let leave = "/gateway/rooms/leave"
    }

    /// The inner routes for rooms.
    public enum InnerRoomRoute {
        /// Pushes the call's body to route `X-Ferry-Push-Route` on every member of room
        /// `X-Ferry-Room`; replies the number written, or 429 when the room is over its rate.
        public static let broadcast = "/gateway/room/broadcast"
        /// Replies `{room: members}` for every room with members.
        public static let list = "/gateway/rooms"
        /// Takes a room name (JSON string) and replies the users in it.
        public static let members = "/gateway/room/members"
    }
}

extension FerryGateway.MetaKey {
    /// On ``FerryGateway/InnerRoomRoute/broadcast``: the room.
    public static let room = "X-Ferry-Room"
}

/// The handlers of ``FerryGateway/RoomRoute`` and ``FerryGateway/InnerRoomRoute``.
struct RoomRoutes: Sendable {
    let rooms: FerryRooms
    let users: UserDirectory
    let mayJoin: (@Sendable (String, String) async -> Bool)?

    func registerOuter(on router: FerryRouter) {
        router.call(FerryGateway.RoomRoute.join) { (room: String, context: FerryContext) async throws -> Void in
            guard let session = context.session as? FerrySession, let user = users.user(ofSessionID: session.id) else {
                throw FerryStatus.unauthorized("only users join rooms")
            }
            guard !room.isEmpty, room.utf8.count <= 256 else {
                throw FerryStatus.badMessage("a room name is 1 to 256 bytes")
            }
            if let mayJoin, await !mayJoin(user, room) {
                throw FerryStatus(code: 403, message: "Forbidden", cause: "\(user) may not join \(room)")
            }
            try rooms.join(room, session)
        }
        router.call(FerryGateway.RoomRoute.leave) { (room: String, context: FerryContext) -> Void in
            guard let session = context.session as? FerrySession else { return }
            rooms.leave(room, session)
        }
    }

    func registerInner(on router: FerryRouter) {
        router.call(FerryGateway.InnerRoomRoute.broadcast) { (_: ByteBuffer, context: FerryContext) async throws -> Int in
            let message = context.message
            guard let room = message.meta[FerryGateway.MetaKey.room], !room.isEmpty else {
                throw FerryStatus.badMessage("\(FerryGateway.MetaKey.room) names no room")
            }
            guard let route = message.meta[FerryGateway.MetaKey.pushRoute], !route.isEmpty else {
                throw FerryStatus.badMessage("\(FerryGateway.MetaKey.pushRoute) names no route to push to")
            }
            switch await rooms.broadcast(room, route: route, body: message.body, codec: message.bodyCodec) {
            case .delivered(let count): return count
            case .rateLimited: throw FerryStatus(code: 429, message: "Too Many Requests", cause: "room \(room) is over its broadcast rate")
            }
        }
        router.call(FerryGateway.InnerRoomRoute.list) { (_: Void, _: FerryContext) -> [String: Int] in
            rooms.counts
        }
        router.call(FerryGateway.InnerRoomRoute.members) { (room: String, _: FerryContext) -> [String] in
            Array(Set(rooms.members(of: room).compactMap { users.user(ofSessionID: $0.id) })).sorted()
        }
    }
}
