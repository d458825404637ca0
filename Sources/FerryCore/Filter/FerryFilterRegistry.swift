/// The transfer filters a peer knows, by id. gzip (`g`) and md5 (`m`) are registered by default;
/// AES-GCM (`a`) needs a key, so a peer that uses it registers it.
///
/// ```swift
/// var filters = FerryFilterRegistry.standard
/// filters.register(try FerryAESGCMFilter(key: key))
/// ```
public struct FerryFilterRegistry: Sendable {
    private var filters: [FerryFilterID: any FerryTransferFilter]

    /// A registry with no filters.
    public static var empty: FerryFilterRegistry { FerryFilterRegistry(filters: [:]) }

    /// A registry with the gzip and md5 filters.
    public static var standard: FerryFilterRegistry {
        var registry = FerryFilterRegistry.empty
        registry.register(FerryGzipFilter())
        registry.register(FerryMD5Filter())
        return registry
    }

    private init(filters: [FerryFilterID: any FerryTransferFilter]) { self.filters = filters }

    /// Adds `filter`, replacing any filter with the same id.
    public mutating func register(_ filter: any FerryTransferFilter) {
        filters[filter.id] = filter
    }

    /// The filter registered for `id`, if any.
    public func filter(for id: FerryFilterID) -> (any FerryTransferFilter)? { filters[id] }
}
