import NIOCore

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

extension FerryFilterRegistry {
    /// `data` with the filters `ids` applied as a sender applies them: the last id first, so
    /// that the first id is undone first. An unknown id or a failing filter throws
    /// ``FerryProtocolError/filter(_:)``.
    func apply(_ ids: [FerryFilterID], to data: ByteBuffer, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        var data = data
        for id in ids.reversed() {
            data = try Self.running(id) { try filter(for: id)?.encode(data, allocator: allocator) }
        }
        return data
    }

    /// `data` with the filters `ids` undone as a receiver undoes them: the first id first, each
    /// result at most `maximumSize` bytes. An unknown id or a failing filter throws
    /// ``FerryProtocolError/filter(_:)``.
    func undo(_ ids: [FerryFilterID], on data: ByteBuffer, maximumSize: Int, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        var data = data
        for id in ids {
            data = try Self.running(id) { try filter(for: id)?.decode(data, maximumSize: maximumSize, allocator: allocator) }
        }
        return data
    }

    /// Runs one filter step; nil from `step` means the id is not registered.
    private static func running(_ id: FerryFilterID, _ step: () throws -> ByteBuffer?) throws -> ByteBuffer {
        let result: ByteBuffer?
        do {
            result = try step()
        } catch let error as FerryFilterError {
            throw FerryProtocolError.filter(error)
        } catch {
            throw FerryProtocolError.filter(.corrupt(filter: id, reason: "\(error)"))
        }
        guard let result else { throw FerryProtocolError.filter(.unknownFilter(id)) }
        return result
    }
}
