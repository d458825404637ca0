import NIOCore
import Synchronization

/// The sessions of a peer, by ID: look up, count, iterate and broadcast.
///
/// A session joins when it is ready (after the accept or dial hooks and the auth handshake) and
/// leaves when its connection closes. ``FerrySession/setID(_:)`` re-keys it; an older session
/// holding the new ID is closed (single login).
public final class FerrySessionHub: Sendable {
    private let sessions = Mutex<[String: FerrySession]>([:])

    init() {}

    /// The session with `id`, if connected.
    public func session(id: String) -> FerrySession? {
        sessions.withLock { $0[id] }
    }

    /// The number of sessions.
    public var count: Int { sessions.withLock { $0.count } }

    /// A snapshot of every session.
    public var all: [FerrySession] { sessions.withLock { Array($0.values) } }

    /// Calls `body` for each session of a snapshot.
    public func forEach(_ body: (FerrySession) throws -> Void) rethrows {
        for session in all { try body(session) }
    }

    /// Pushes `args` to every session (encoded once), concurrently. Returns how many sessions
    /// the push was written to; failures on single sessions do not stop the others.
    @discardableResult
    public func broadcast<Args>(_ serviceMethod: String, _ args: Args, codec: FerryCodecID? = nil, options: FerryCallOptions = FerryCallOptions()) async throws -> Int {
        let targets = all
        guard let first = targets.first else { return 0 }
        let codec = codec ?? options.codec ?? first.defaultCodec
        let body: ByteBuffer
        do {
            body = try first.codecs.encode(args, codec: codec)
        } catch {
            throw FerryStatus(.badMessage, "Bad Message", cause: "cannot encode the body: \(error)")
        }
        return await withTaskGroup(of: Bool.self) { group in
            for session in targets {
                group.addTask {
                    (try? await session.push(serviceMethod, body: body, codec: codec, options: options)) != nil
                }
            }
            var delivered = 0
            for await written in group where written { delivered += 1 }
            return delivered
        }
    }

    /// Adds a ready session. A default ID (the remote address) that another session already
    /// holds, e.g. a second dial to the same server, gets a `#2`, `#3`, … suffix; an ID set with
    /// `setID` replaces the holder as single login does.
    func add(_ session: FerrySession) {
        let evicted: FerrySession? = sessions.withLock { sessions in
            var id = session.id
            if let holder = sessions[id], holder !== session {
                guard session.hasDefaultID else {
                    sessions[id] = session
                    return holder
                }
                var suffix = 2
                while sessions["\(session.remoteAddress)#\(suffix)"] != nil { suffix += 1 }
                id = "\(session.remoteAddress)#\(suffix)"
                session.adoptDefaultID(id)
            }
            sessions[id] = session
            return nil
        }
        if let evicted {
            evicted.recordCloseReason("another session logged in with ID \(session.id)")
            evicted.channel.close(promise: nil)
        }
    }

    func remove(_ session: FerrySession) {
        let id = session.id
        sessions.withLock { sessions in
            if sessions[id] === session { sessions[id] = nil }
        }
    }

    /// Re-keys `session`; closes an older, different session that held `newID`.
    func rename(_ session: FerrySession, from oldID: String, to newID: String) {
        let evicted: FerrySession? = sessions.withLock { sessions in
            let isMember = sessions[oldID] === session
            if isMember { sessions[oldID] = nil }
            let older = sessions[newID]
            if isMember || older != nil { sessions[newID] = session }
            return older === session ? nil : older
        }
        if let evicted {
            evicted.recordCloseReason("another session logged in with ID \(newID)")
            evicted.channel.close(promise: nil)
        }
    }
}
