import Ferry
import FerryMicro
import Foundation
import ServiceLifecycle

extension FerryGateway {
    /// How a gateway announces itself to new clients: it registers in a registry, with its
    /// public addresses and its load (connected sessions), and any gateway answers `GET /gateways`
    /// with the least loaded few. This is the dispatcher of the long-connection system: a client
    /// asks any gateway where to connect.
    public struct Announcement: Sendable {
        /// Where gateways register: a static registry shared in one process (the embedded
        /// default), or etcd (leases remove a gateway that dies).
        public var registry: any FerryRegistry
        /// The service name gateways register under.
        public var service: String
        /// The addresses clients use, when they differ from the listening ones (behind NAT or
        /// a load balancer): `http`, `socket` and `webSocket` keys. Missing keys take the
        /// listening address.
        public var publicAddresses: [String: String]
        /// How often the load is published.
        public var interval: Duration
        /// How many gateways `GET /gateways` lists.
        public var listed: Int

        /// Creates an announcement.
        public init(
            registry: any FerryRegistry, service: String = "gateway", publicAddresses: [String: String] = [:],
            interval: Duration = .seconds(5), listed: Int = 3
        ) {
            self.registry = registry
            self.service = service
            self.publicAddresses = publicAddresses
            self.interval = interval
            self.listed = listed
        }
    }

    /// One entry of `GET /gateways`.
    public struct GatewayEntry: Codable, Sendable, Hashable {
        /// The HTTP address (`HOST:PORT`).
        public var http: String?
        /// The raw-socket address (`HOST:PORT`).
        public var socket: String?
        /// The WebSocket URL.
        public var webSocket: String?
        /// Sessions connected when it last announced itself.
        public var load: Int

        /// Creates an entry.
        public init(http: String? = nil, socket: String? = nil, webSocket: String? = nil, load: Int) {
            self.http = http
            self.socket = socket
            self.webSocket = webSocket
            self.load = load
        }

        /// The entry a registered gateway node describes; nil for a node without a load.
        init?(node: FerryNode) {
            guard let load = node.metadata["load"].flatMap(Int.init) else { return nil }
            self.init(http: node.metadata["http"], socket: node.metadata["socket"], webSocket: node.metadata["webSocket"], load: load)
        }
    }
}

/// Registers a gateway with its load every interval until cancelled or shut down, then
/// deregisters it.
struct GatewayAnnouncer: Sendable {
    let announcement: FerryGateway.Announcement
    let addresses: FerryGateway.ListeningAddresses
    let load: @Sendable () -> Int

    func run() async {
        guard let address = addresses.socket ?? addresses.webSocket ?? addresses.http ?? addresses.inner else { return }
        var published = announcement.publicAddresses
        if published["http"] == nil, let http = addresses.http { published["http"] = "\(http)" }
        if published["socket"] == nil, let socket = addresses.socket { published["socket"] = "\(socket)" }
        if published["webSocket"] == nil, let webSocket = addresses.webSocket { published["webSocket"] = "\(webSocket)" }
        let node = FerryNode(service: announcement.service, address: address, metadata: published)
        try? await cancelWhenGracefulShutdown {
            var current = node
            while !Task.isCancelled {
                current.metadata["load"] = String(load())
                try? await announcement.registry.register(current)
                try await Task.sleep(for: announcement.interval)
            }
        }
        try? await announcement.registry.deregister(node)
    }

    /// The least loaded gateways the registry lists, at most `listed`.
    static func leastLoaded(in announcement: FerryGateway.Announcement) async throws -> [FerryGateway.GatewayEntry] {
        let nodes = try await announcement.registry.nodes(service: announcement.service)
        let entries = nodes.compactMap(FerryGateway.GatewayEntry.init(node:))
        return Array(entries.sorted { $0.load < $1.load }.prefix(announcement.listed))
    }
}
