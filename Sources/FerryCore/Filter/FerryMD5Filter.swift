import Crypto
import NIOCore

/// The md5 transfer filter (`m`): appends the 16-byte MD5 of the bytes; the receiver checks and
/// strips it. It detects corruption, not tampering: use an authenticated cipher for that.
public struct FerryMD5Filter: FerryTransferFilter {
    private static let digestSize = 16

    /// Creates the filter.
    public init() {}

    /// `m`.
    public var id: FerryFilterID { .md5 }

    /// Transforms outgoing bytes.
    public func encode(_ buffer: ByteBuffer, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        var output = buffer
        let digest = buffer.withUnsafeReadableBytes { Insecure.MD5.hash(data: $0) }
        output.writeBytes(digest)
        return output
    }

    /// Undoes the transformation, refusing to produce more than `maximumSize` bytes.
    public func decode(_ buffer: ByteBuffer, maximumSize: Int, allocator: ByteBufferAllocator) throws
        -> ByteBuffer
    {
        guard buffer.readableBytes >= Self.digestSize else {
            throw FerryFilterError.corrupt(filter: id, reason: "frame shorter than an MD5 digest")
        }
        let payloadLength = buffer.readableBytes - Self.digestSize
        let payload = buffer.getSlice(at: buffer.readerIndex, length: payloadLength)!
        let sent = buffer.readableBytesView.suffix(Self.digestSize)
        let computed = payload.withUnsafeReadableBytes { Insecure.MD5.hash(data: $0) }
        guard computed.elementsEqual(sent) else {
            throw FerryFilterError.corrupt(filter: id, reason: "MD5 checksum mismatch")
        }
        return payload
    }
}
