/// One running instance of a service, as it appears in a ``FerryRegistry``: where to dial it,
/// which service it belongs to, what routes it serves, how much traffic it should take, and
/// free-form metadata.
///
/// A node is identified by its service and address: registering the same pair again replaces the
/// earlier entry.
///
/// Registries that store nodes as text use this JSON shape (the `Codable` form), which every
/// field but `service` and `address` may leave out:
///
/// ```json
/// {
///   "service": "math",
///   "address": "10.0.0.5:9090",
///   "routes": ["/math/add", "/math/mul"],
///   "weight": 100,
///   "version": "1.4.0",
///   "metadata": {"zone": "eu-1"}
/// }
/// ```
///
/// `address` is ``FerryAddress``'s text form: `HOST:PORT`, `[IPv6]:PORT` or `unix:PATH`.
/// Missing fields decode as: no routes, weight ``defaultWeight``, empty version, no metadata.
public struct FerryNode: Hashable, Sendable, Codable, CustomStringConvertible {
    /// Where the node listens.
    public var address: FerryAddress
    /// The service the node belongs to, e.g. `math`.
    public var service: String
    /// The routes the node serves, e.g. `/math/add`. Empty means "every route of its service":
    /// a node listed by hand need not enumerate them.
    public var routes: [String]
    /// The node's share of traffic relative to the other nodes of its service, for the weighted
    /// balancer. Values below 1 count as 1.
    public var weight: Int
    /// The version of the software the node runs; informational.
    public var version: String
    /// Free-form labels (zone, build, …).
    public var metadata: [String: String]

    /// The weight of a node that names none.
    public static let defaultWeight = 100

    /// Creates a node.
    public init(
        service: String,
        address: FerryAddress,
        routes: [String] = [],
        weight: Int = FerryNode.defaultWeight,
        version: String = "",
        metadata: [String: String] = [:]
    ) {
        self.service = service
        self.address = address
        self.routes = routes
        self.weight = weight
        self.version = version
        self.metadata = metadata
    }

    /// Creates a node that serves every route registered on `router` so far (calls and pushes).
    ///
    /// ```swift
    /// let node = FerryNode(service: "math", address: listener.address, router: peer.router)
    /// try await registry.register(node)
    /// ```
    public init(
        service: String,
        address: FerryAddress,
        router: FerryRouter,
        weight: Int = FerryNode.defaultWeight,
        version: String = "",
        metadata: [String: String] = [:]
    ) {
        var seen = Set<String>()
        let paths = router.routes.map(\.path).filter { seen.insert($0).inserted }
        self.init(service: service, address: address, routes: paths, weight: weight, version: version, metadata: metadata)
    }

    /// `service@address`: unique within a registry.
    public var id: String { "\(service)@\(address)" }

    /// Whether the node serves `route`: it lists the route, or lists no routes at all.
    public func serves(_ route: String) -> Bool {
        routes.isEmpty || routes.contains(route)
    }

    public var description: String { id }

    private enum CodingKeys: String, CodingKey {
        case service, address, routes, weight, version, metadata
    }

    /// Decodes the JSON shape above; an address that does not parse is a `DecodingError`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let text = try container.decode(String.self, forKey: .address)
        guard let address = FerryAddress(text) else {
            throw DecodingError.dataCorruptedError(
                forKey: .address, in: container, debugDescription: "not HOST:PORT, [IPv6]:PORT or unix:PATH: \(text)")
        }
        self.address = address
        self.service = try container.decode(String.self, forKey: .service)
        self.routes = try container.decodeIfPresent([String].self, forKey: .routes) ?? []
        self.weight = try container.decodeIfPresent(Int.self, forKey: .weight) ?? Self.defaultWeight
        self.version = try container.decodeIfPresent(String.self, forKey: .version) ?? ""
        self.metadata = try container.decodeIfPresent([String: String].self, forKey: .metadata) ?? [:]
    }

    /// Encodes the JSON shape above, every field included.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(service, forKey: .service)
        try container.encode(address.description, forKey: .address)
        try container.encode(routes, forKey: .routes)
        try container.encode(weight, forKey: .weight)
        try container.encode(version, forKey: .version)
        try container.encode(metadata, forKey: .metadata)
    }
}
