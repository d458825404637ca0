import CompressNIO
import NIOCore

/// The gzip transfer filter (`g`): a standard gzip stream. Inflating stops with an error as soon
/// as the output would pass the receiver's frame size limit, so a gzip bomb costs at most that.
public struct FerryGzipFilter: FerryTransferFilter {
    /// Creates the filter.
    public init() {}

    /// `g`.
    public var id: FerryFilterID { .gzip }

    /// Transforms outgoing bytes.
    public func encode(_ buffer: ByteBuffer, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        var input = buffer
        do {
            return try input.compress(with: .gzip(), allocator: allocator)
        } catch {
            throw FerryFilterError.corrupt(filter: id, reason: "compression failed: \(error)")
        }
    }

    /// Undoes the transformation, refusing to produce more than `maximumSize` bytes.
    public func decode(_ buffer: ByteBuffer, maximumSize: Int, allocator: ByteBufferAllocator) throws
        -> ByteBuffer
    {
        var input = buffer
        do {
            return try input.decompress(with: .gzip(), maxSize: maximumSize, allocator: allocator)
        } catch let error as CompressNIOError where error == .bufferOverflow {
            throw FerryFilterError.tooLarge(filter: id, limit: maximumSize)
        } catch {
            throw FerryFilterError.corrupt(filter: id, reason: "invalid gzip stream: \(error)")
        }
    }
}
