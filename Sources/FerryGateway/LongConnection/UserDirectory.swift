import Ferry
import Synchronization

/// Which sessions of the gateway's outer peer belong to which user.
///
/// The peer's hub is the truth about which sessions are connected. With
/// ``FerryGateway/LoginPolicy/single`` a user's session ID is the user ID, the hub closes an
/// older session when a newer one takes the ID, and the directory keeps nothing. With several
/// devices it remembers the session IDs (`USER#N`) it gave each user, reads them through the
/// hub, and forgets each when its session closes.
final class UserDirectory: Sendable {
    private struct Table {
        var sessionIDs: [String: Set<String>] = [:]
        var users: [String: String] = [:]
        var nextDevice: [String: Int] = [:]
    }

    let policy: FerryGateway.LoginPolicy
    private let table = Mutex(Table())
    private let attachedHub = Mutex<FerrySessionHub?>(nil)

    init(policy: FerryGateway.LoginPolicy) {
        self.policy = policy
    }

    /// Reads sessions through `hub`, the outer peer's (made after the directory, which the
    /// peer's auth closure holds).
    func attach(_ hub: FerrySessionHub) {
        attachedHub.withLock { $0 = hub }
    }

    private var hub: FerrySessionHub {
        guard let hub = attachedHub.withLock({ $0 }) else { preconditionFailure("UserDirectory used before attach") }
        return hub
    }

    /// Gives `session` to `user`: sets its ID (`USER`, or `USER#N` with several devices).
    /// Throws 401 when the user already has the most sessions allowed.
    func admit(_ session: FerrySession, as user: String) async throws {
        let id: String
        switch policy {
        case .single:
            id = user
            // The hub closes the older session once this one is ready; tell its client first
            // why, so that it does not dial again.
            if let older = hub.session(id: user), older !== session {
                try? await older.push(FerryGateway.closingRoute, FerryGateway.Closing.replaced, options: .timeout(.seconds(1)))
            }
        case .multipleDevices(let maximum):
            id = try table.withLock { table throws(FerryStatus) -> String in
                let live = liveSessions(table, user: user)
                guard live.count < maximum else {
                    throw FerryStatus.unauthorized("\(user) already has \(live.count) sessions, the most allowed")
                }
                let device = table.nextDevice[user, default: 0] + 1
                table.nextDevice[user] = device
                let id = "\(user)#\(device)"
                table.sessionIDs[user, default: []].insert(id)
                table.users[id] = user
                return id
            }
        }
        session.setID(id)
    }

    /// The user a session ID belongs to.
    func user(ofSessionID id: String) -> String? {
        if case .single = policy { return id }
        return table.withLock { $0.users[id] }
    }

    /// The connected sessions of `user`.
    func sessions(of user: String) -> [FerrySession] {
        if case .single = policy { return hub.session(id: user).map { [$0] } ?? [] }
        return table.withLock { table in liveSessions(table, user: user) }
    }

    /// Forgets a session that closed.
    func remove(sessionID id: String) {
        if case .single = policy { return }
        table.withLock { table in
            guard let user = table.users[id], hub.session(id: id) == nil else { return }
            table.users[id] = nil
            table.sessionIDs[user]?.remove(id)
            if table.sessionIDs[user]?.isEmpty == true {
                table.sessionIDs[user] = nil
                table.nextDevice[user] = nil
            }
        }
    }

    /// Users with at least one connected session, and the number of such sessions.
    func counts() -> (users: Int, sessions: Int) {
        if case .single = policy {
            let sessions = hub.count
            return (sessions, sessions)
        }
        return table.withLock { table in
            var users = 0
            var sessions = 0
            for user in table.sessionIDs.keys {
                let live = liveSessions(table, user: user).count
                if live > 0 { users += 1 }
                sessions += live
            }
            return (users, sessions)
        }
    }

    /// The user's sessions the hub holds. A session still authenticating is not in the hub yet:
    /// its ID stays in the table but is not returned.
    private func liveSessions(_ table: Table, user: String) -> [FerrySession] {
        guard let ids = table.sessionIDs[user] else { return [] }
        var live: [FerrySession] = []
        for id in ids {
            if let session = hub.session(id: id) { live.append(session) }
        }
        return live
    }
}
