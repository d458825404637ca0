import NIOCore

/// The one-byte id of a transfer filter on the wire.
public struct FerryFilterID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The byte written on the wire.
    public let rawValue: UInt8

    /// Creates an id from its wire byte.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Creates an id from an ASCII character, e.g. `FerryFilterID("e")`.
    public init(_ character: Unicode.Scalar) {
        precondition(character.isASCII, "filter ids are single ASCII characters")
        self.rawValue = UInt8(character.value)
    }

    /// `g`: gzip.
    public static let gzip = FerryFilterID("g")
    /// `m`: an MD5 checksum appended to the frame.
    public static let md5 = FerryFilterID("m")

    /// A readable form, for logs and error messages.
    public var description: String {
        if rawValue >= 0x21 && rawValue < 0x7F { return String(UnicodeScalar(rawValue)) }
        return "0x" + String(rawValue, radix: 16)
    }
}

/// Transforms the bytes of a frame after its filter id list (header and body together):
/// compression, checksums, encryption.
///
/// Sending applies a message's filters from the last id to the first; receiving undoes them from
/// the first to the last. Register your own in a ``FerryFilterRegistry``.
public protocol FerryTransferFilter: Sendable {
    /// The id written on the wire.
    var id: FerryFilterID { get }
    /// Transforms outgoing bytes.
    func encode(_ buffer: ByteBuffer, allocator: ByteBufferAllocator) throws -> ByteBuffer
    /// Undoes ``encode(_:allocator:)``. Must throw rather than produce more than `maximumSize`
    /// bytes.
    func decode(_ buffer: ByteBuffer, maximumSize: Int, allocator: ByteBufferAllocator) throws
        -> ByteBuffer
}

/// Why a transfer filter refused a frame.
public enum FerryFilterError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The frame names a filter id this peer does not know.
    case unknownFilter(FerryFilterID)
    /// The decoded bytes would exceed the receiver's frame size limit.
    case tooLarge(filter: FerryFilterID, limit: Int)
    /// The bytes are not a valid encoding for the filter (corrupt stream, bad checksum, …).
    case corrupt(filter: FerryFilterID, reason: String)

    /// A readable form, for logs and error messages.
    public var description: String {
        switch self {
        case .unknownFilter(let id): "unknown transfer filter \(id)"
        case .tooLarge(let id, let limit): "filter \(id) output exceeds the \(limit)-byte limit"
        case .corrupt(let id, let reason): "filter \(id): \(reason)"
        }
    }
}
