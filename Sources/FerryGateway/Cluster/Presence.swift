import Ferry
import FerryMicro
import Logging
import ServiceLifecycle
import Synchronization

extension FerryGateway {
    /// Several gateways as one: each announces the users it holds (presence) in a shared
    /// registry, so that a push accepted by any gateway's inner listener reaches the users
    /// wherever they are connected. At-least-once pushes need a mailbox all the gateways share.
    public struct Cluster: Sendable {
        /// Where presence is kept: a static registry shared in one process, or etcd, whose
        /// leases remove the presence of a gateway that dies.
        public var registry: any FerryRegistry
        /// The address other gateways reach this one's inner listener at (nil: the inner
        /// listener's own address).
        public var innerAddress: FerryAddress?

        /// Creates cluster settings.
        public init(registry: any FerryRegistry, innerAddress: FerryAddress? = nil) {
            self.registry = registry
            self.innerAddress = innerAddress
        }
    }
}

/// Keeps this gateway's presence entries: a user is registered as present here (service
/// `ferry.presence/USER`, this gateway's inner address) while they have a session here.
/// Registrations run in ``run(address:)``, a child task of the gateway's `run()`.
final class Presence: Sendable {
    static let servicePrefix = "ferry.presence/"

    let registry: any FerryRegistry
    let logger: Logger
    private let changes: AsyncStream<(user: String, online: Bool)>
    private let change: AsyncStream<(user: String, online: Bool)>.Continuation
    private let ownAddress = Mutex<FerryAddress?>(nil)

    init(registry: any FerryRegistry, logger: Logger) {
        self.registry = registry
        self.logger = logger
        (changes, change) = AsyncStream.makeStream(of: (user: String, online: Bool).self)
    }

    /// `user` has a session here now.
    func online(_ user: String) {
        change.yield((user, true))
    }

    /// `user` may have no session here any more (checked when the change is applied).
    func offline(_ user: String) {
        change.yield((user, false))
    }

    /// The inner addresses of the other gateways where `user` is present.
    func otherGateways(of user: String) async -> [FerryAddress] {
        let own = ownAddress.withLock { $0 }
        let nodes = (try? await registry.nodes(service: Self.servicePrefix + user)) ?? []
        return Array(Set(nodes.map(\.address).filter { $0 != own }))
    }

    /// Applies presence changes until cancelled or shut down; `stillHere` says whether a user
    /// still has sessions here when an offline change comes.
    func run(address: FerryAddress, stillHere: @escaping @Sendable (String) -> Bool) async {
        ownAddress.withLock { $0 = address }
        for await (user, online) in changes.cancelOnGracefulShutdown() {
            let node = FerryNode(service: Self.servicePrefix + user, address: address)
            do {
                if online {
                    try await registry.register(node)
                } else if !stillHere(user) {
                    try await registry.deregister(node)
                }
            } catch {
                logger.warning("presence not updated", metadata: ["user": "\(user)", "error": "\(error)"])
            }
        }
    }
}

/// Calls other gateways' inner listeners, over one session per gateway, dialled when first
/// needed through the inner peer.
final class GatewayLinks: Sendable {
    let peer: FerryPeer
    private let sessions = Mutex<[FerryAddress: FerrySession]>([:])

    init(peer: FerryPeer) {
        self.peer = peer
    }

    /// A live session to the gateway at `address`.
    func session(to address: FerryAddress) async throws -> FerrySession {
        if let session = sessions.withLock({ $0[address] }), !session.isClosed { return session }
        let session = try await peer.dial(address)
        let (chosen, raced) = sessions.withLock { sessions -> (FerrySession, Bool) in
            if let existing = sessions[address], !existing.isClosed { return (existing, true) }
            sessions[address] = session
            return (session, false)
        }
        if raced { await session.close() }
        return chosen
    }
}
