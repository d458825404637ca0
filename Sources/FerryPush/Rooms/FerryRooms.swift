import Ferry
import FerryMicro
import NIOCore
import Synchronization

/// Named rooms of sessions (chat rooms, topics, channels): join, leave, who is in a room, and
/// broadcast to its members. A broadcast encodes its body once and pushes the same bytes to
/// every member, at most ``FerrySessionHub/maximumConcurrentPushes`` at a time. Each room may be
/// capped in messages per second; past the cap a broadcast is dropped and counted.
///
/// Rooms hold sessions, not users: a user with two devices in a room is two members. A session
/// leaves its rooms when it closes (call ``leaveAll(_:)`` from the peer's `onDisconnect` hook).
public final class FerryRooms: Sendable {
    /// Room settings.
    public struct Configuration: Sendable {
        /// The most broadcasts per second in one room, with a burst of the same size (nil: no
        /// cap).
        public var maximumBroadcastsPerSecond: Double?
        /// The most rooms one session may be in.
        public var maximumRoomsPerSession: Int
        /// How long one broadcast may wait to be written to one member.
        public var writeTimeout: Duration
        /// The clock of the rate cap (tests pass their own).
        public var clock: any Clock<Duration> & Sendable

        /// Creates settings: no rate cap, 100 rooms per session.
        public init(
            maximumBroadcastsPerSecond: Double? = nil, maximumRoomsPerSession: Int = 100, writeTimeout: Duration = .seconds(5),
            clock: any Clock<Duration> & Sendable = ContinuousClock()
        ) {
            self.maximumBroadcastsPerSecond = maximumBroadcastsPerSecond
            self.maximumRoomsPerSession = maximumRoomsPerSession
            self.writeTimeout = writeTimeout
            self.clock = clock
        }
    }

    /// What a broadcast did.
    public enum BroadcastResult: Sendable, Hashable {
        /// Written to this many members.
        case delivered(Int)
        /// Dropped: the room is over its rate cap.
        case rateLimited
    }

    private struct Room {
        var members: [ObjectIdentifier: FerrySession] = [:]
        var bucket: TokenBucket?
        var dropped = 0
    }

    private struct State {
        var rooms: [String: Room] = [:]
        var roomsOfSession: [ObjectIdentifier: Set<String>] = [:]
    }

    /// The settings.
    public let configuration: Configuration
    private let state = Mutex(State())
    private let clock: PushClock
    private let origin = ContinuousClock.now

    /// Creates an empty set of rooms.
    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.clock = PushClock(configuration.clock)
    }

    /// Adds `session` to `room`. Throws 400 when the session is in the most rooms allowed.
    public func join(_ room: String, _ session: FerrySession) throws {
        try state.withLock { state throws(FerryStatus) in
            let key = ObjectIdentifier(session)
            var joined = state.roomsOfSession[key] ?? []
            guard !joined.contains(room) else { return }
            guard joined.count < configuration.maximumRoomsPerSession else {
                throw FerryStatus.badMessage("a session may be in at most \(configuration.maximumRoomsPerSession) rooms")
            }
            joined.insert(room)
            state.roomsOfSession[key] = joined
            var entry = state.rooms[room] ?? Room()
            if entry.bucket == nil, let rate = configuration.maximumBroadcastsPerSecond {
                entry.bucket = TokenBucket(capacity: max(rate, 1), ratePerSecond: rate, now: now)
            }
            entry.members[key] = session
            state.rooms[room] = entry
        }
    }

    /// Removes `session` from `room`.
    public func leave(_ room: String, _ session: FerrySession) {
        state.withLock { state in
            let key = ObjectIdentifier(session)
            state.roomsOfSession[key]?.remove(room)
            if state.roomsOfSession[key]?.isEmpty == true { state.roomsOfSession[key] = nil }
            Self.remove(key, from: room, in: &state)
        }
    }

    /// Removes `session` from every room it is in.
    public func leaveAll(_ session: FerrySession) {
        state.withLock { state in
            let key = ObjectIdentifier(session)
            for room in state.roomsOfSession.removeValue(forKey: key) ?? [] {
                Self.remove(key, from: room, in: &state)
            }
        }
    }

    private static func remove(_ key: ObjectIdentifier, from room: String, in state: inout State) {
        state.rooms[room]?.members[key] = nil
        if state.rooms[room]?.members.isEmpty == true { state.rooms[room] = nil }
    }

    /// The sessions in `room` (presence).
    public func members(of room: String) -> [FerrySession] {
        state.withLock { $0.rooms[room].map { Array($0.members.values) } ?? [] }
    }

    /// The rooms with at least one member, and how many each has.
    public var counts: [String: Int] {
        state.withLock { $0.rooms.mapValues(\.members.count) }
    }

    /// The rooms `session` is in.
    public func rooms(of session: FerrySession) -> Set<String> {
        state.withLock { $0.roomsOfSession[ObjectIdentifier(session)] ?? [] }
    }

    /// Broadcasts dropped by the rate cap in `room` so far.
    public func dropped(in room: String) -> Int {
        state.withLock { $0.rooms[room]?.dropped ?? 0 }
    }

    /// Pushes the encoded `body` to `route` on every member of `room`, unless the room is over
    /// its rate cap. Failures on single members do not stop the others.
    public func broadcast(_ room: String, route: String, body: ByteBuffer, codec: FerryCodecID) async -> BroadcastResult {
        let members: [FerrySession]? = state.withLock { state in
            guard var entry = state.rooms[room] else { return [] }
            if var bucket = entry.bucket {
                let allowed = bucket.take(at: now)
                entry.bucket = bucket
                if !allowed {
                    entry.dropped += 1
                    state.rooms[room] = entry
                    return nil
                }
                state.rooms[room] = entry
            }
            return Array(entry.members.values)
        }
        guard let members else { return .rateLimited }
        let written = await FerrySessionHub.push(
            route, body: body, codec: codec, to: members, options: .timeout(configuration.writeTimeout))
        return .delivered(written)
    }

    /// The rate cap's time, as an instant.
    private var now: ContinuousClock.Instant { origin + clock.now() }
}
