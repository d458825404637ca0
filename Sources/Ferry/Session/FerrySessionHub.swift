import NIOCore
import Synchronization

/// The sessions of a peer, by ID: look up, count, iterate and broadcast.
///
/// A session joins when it is ready (after the accept or dial hooks and the auth handshake) and
/// leaves when its connection closes. ``FerrySession/setID(_:)`` re-keys it; an older session
/// holding the new ID is closed (single login).
public final class FerrySessionHub: Sendable {
    private struct Members {
        var byID: [String: FerrySession] = [:]
        /// Each member's key in `byID`, so that a session leaves under the ID it joined with
        /// even if its ID changed meanwhile.
        var keys: [ObjectIdentifier: String] = [:]

        mutating func insert(_ session: FerrySession, as id: String) {
            byID[id] = session
            keys[ObjectIdentifier(session)] = id
        }

        mutating func remove(_ session: FerrySession) {
            guard let id = keys.removeValue(forKey: ObjectIdentifier(session)) else { return }
            if byID[id] === session { byID[id] = nil }
        }

        /// Takes `id` from its holder, if another session holds it.
        mutating func evict(_ id: String, for session: FerrySession) -> FerrySession? {
            guard let holder = byID[id], holder !== session else { return nil }
            remove(holder)
            return holder
        }
    }
    private let members = Mutex(Members())

    /// The most pushes one ``broadcast(_:_:codec:options:)`` has in flight at once.
    public static let maximumConcurrentPushes = 64

    init() {}

    /// The session with `id`, if connected.
    public func session(id: String) -> FerrySession? {
        members.withLock { $0.byID[id] }
    }

    /// The number of sessions.
    public var count: Int { members.withLock { $0.byID.count } }

    /// A snapshot of every session.
    public var all: [FerrySession] { members.withLock { Array($0.byID.values) } }

    /// Calls `body` for each session of a snapshot.
    public func forEach(_ body: (FerrySession) throws -> Void) rethrows {
        for session in all { try body(session) }
    }

    /// Pushes `args` to every session (encoded once), at most ``maximumConcurrentPushes`` at a
    /// time. Returns how many sessions the push was written to; failures on single sessions do
    /// not stop the others. Called from a handler, each push gets no more time than the
    /// handler has left.
    @discardableResult
    public func broadcast<Args>(_ serviceMethod: String, _ args: Args, codec: FerryCodecID? = nil, options: FerryCallOptions = FerryCallOptions()) async throws -> Int {
        let targets = all
        guard let first = targets.first else { return 0 }
        let codec = codec ?? options.codec ?? first.defaultCodec
        let body: ByteBuffer
        do {
            body = try first.codecs.encode(args, codec: codec)
        } catch {
            throw FerryStatus.badMessage("cannot encode the body: \(error)")
        }
        return await Self.push(serviceMethod, body: body, codec: codec, to: targets, options: options)
    }

    /// Pushes an encoded body to each of `sessions` (of any peer), at most
    /// ``maximumConcurrentPushes`` at a time. Returns how many sessions the push was written to;
    /// failures on single sessions do not stop the others.
    public static func push(
        _ serviceMethod: String, body: ByteBuffer, codec: FerryCodecID, to sessions: [FerrySession],
        options: FerryCallOptions = FerryCallOptions()
    ) async -> Int {
        await withTaskGroup(of: Bool.self) { group in
            var next = sessions.makeIterator()
            func addPush() -> Bool {
                guard let session = next.next() else { return false }
                group.addTask {
                    (try? await session.push(serviceMethod, body: body, codec: codec, options: options)) != nil
                }
                return true
            }
            for _ in 0..<maximumConcurrentPushes where !addPush() { break }
            var delivered = 0
            while let written = await group.next() {
                if written { delivered += 1 }
                _ = addPush()
            }
            return delivered
        }
    }

    /// Adds a ready session. A default ID (the remote address) that another session already
    /// holds, e.g. a second dial to the same server, gets a `#2`, `#3`, … suffix; an ID set with
    /// `setID` replaces the holder as single login does. A session that closed meanwhile is not
    /// added.
    func add(_ session: FerrySession) {
        let evicted: FerrySession? = members.withLock { members in
            // Checked under the hub's lock: a close that comes later removes it again.
            guard !session.isClosed else { return nil }
            var id = session.id
            var evicted: FerrySession?
            if let holder = members.byID[id], holder !== session {
                if session.hasDefaultID {
                    var suffix = 2
                    while members.byID["\(session.remoteAddress)#\(suffix)"] != nil { suffix += 1 }
                    id = "\(session.remoteAddress)#\(suffix)"
                    session.adoptDefaultID(id)
                } else {
                    evicted = members.evict(id, for: session)
                }
            }
            members.insert(session, as: id)
            return evicted
        }
        evicted.map(Self.closeEvicted)
    }

    func remove(_ session: FerrySession) {
        members.withLock { $0.remove(session) }
    }

    /// Gives `session` the ID `newID`, under the hub's lock so that a close cannot come in
    /// between. A member is re-keyed and an older, different holder of `newID` is closed; a
    /// session that is not a member (not ready yet, or closed) only changes its ID.
    func setID(_ newID: String, of session: FerrySession) {
        let evicted: FerrySession? = members.withLock { members in
            let (_, closed) = session.assignID(newID)
            guard !closed, members.keys[ObjectIdentifier(session)] != nil else { return nil }
            members.remove(session)
            let evicted = members.evict(newID, for: session)
            members.insert(session, as: newID)
            return evicted
        }
        evicted.map(Self.closeEvicted)
    }

    private static func closeEvicted(_ session: FerrySession) {
        session.closeConnection(session.channel, reason: "another session logged in with ID \(session.id)")
    }
}
