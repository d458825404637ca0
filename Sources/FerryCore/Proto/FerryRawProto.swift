import NIOCore

/// The erpc v6 "raw proto" framing (see the wire specification in the project docs).
///
/// Frame: `uint32 total size (including itself)`, `uint8 filter count`, filter ids, then the
/// filtered header and body: seq (base 36), type, service method, status, meta, codec, body.
public struct FerryRawProto: FerryProto {
    /// The smallest frame: the size field and the filter count.
    static let minimumFrameSize = 5

    /// The largest frame accepted or produced, in bytes, including the size field.
    public var maximumFrameSize: Int
    /// The filters this side can apply and undo.
    public var filters: FerryFilterRegistry
    private let allocator = ByteBufferAllocator()

    /// Creates the raw proto with a frame size limit (default 16 MiB) and a filter registry.
    public init(maximumFrameSize: Int = 16 << 20, filters: FerryFilterRegistry = .standard) {
        precondition(maximumFrameSize >= Self.minimumFrameSize && maximumFrameSize <= Int(UInt32.max))
        self.maximumFrameSize = maximumFrameSize
        self.filters = filters
    }

    /// `raw`.
    public var name: String { "raw" }

    // MARK: Encoding

    /// Appends the frame of `message` to `buffer`; on error nothing is appended.
    public func encodeMessage(_ message: FerryMessage, into buffer: inout ByteBuffer) throws {
        let start = buffer.writerIndex
        do {
            try encodeFrame(message, into: &buffer, start: start)
        } catch {
            buffer.moveWriterIndex(to: start)
            throw error
        }
    }

    private func encodeFrame(_ message: FerryMessage, into buffer: inout ByteBuffer, start: Int) throws {
        guard message.filters.count <= Int(UInt8.max) else {
            throw FerryProtocolError.fieldTooLong(field: "filter list", length: message.filters.count, limit: 255)
        }
        if message.filters.isEmpty {
            // The size, the filter count and the header in one write, the body in another.
            try Self.writeHeader(of: message, into: &buffer, sizedFrameUpTo: maximumFrameSize)
            buffer.writeImmutableBuffer(message.body)
            return
        }
        buffer.writeInteger(UInt32(0))
        buffer.writeInteger(UInt8(message.filters.count))
        for id in message.filters { buffer.writeInteger(id.rawValue) }
        var payload = allocator.buffer(capacity: 64 + message.body.readableBytes)
        try Self.writeHeader(of: message, into: &payload, sizedFrameUpTo: nil)
        payload.writeImmutableBuffer(message.body)
        payload = try filters.apply(message.filters, to: payload, allocator: allocator)
        buffer.writeBuffer(&payload)
        let size = buffer.writerIndex - start
        guard size <= maximumFrameSize else {
            throw FerryProtocolError.frameTooLarge(size: size, limit: maximumFrameSize)
        }
        buffer.setInteger(UInt32(size), at: start)
    }

    /// Writes the header of `message`: seq, type, service method, status, meta and codec. With
    /// `sizedFrameUpTo`, it is a whole unfiltered frame's start: the frame's size (header and
    /// body, checked against that limit) and a filter count of 0 come first.
    private static func writeHeader(of message: FerryMessage, into buffer: inout ByteBuffer, sizedFrameUpTo maximumFrameSize: Int?) throws {
        let method = message.serviceMethod
        let methodLength = method.utf8.count
        guard methodLength <= Int(UInt8.max) else {
            throw FerryProtocolError.fieldTooLong(field: "service method", length: methodLength, limit: 255)
        }
        // Frame size and filter count; seq (length and up to 7 digits), type, service method,
        // status and meta with their lengths, codec.
        let bound = 5 + 8 + 1 + 1 + methodLength + 2 + QueryString.bound(message.status) + 2 + QueryString.bound(message.meta) + 1
        try HeaderWriter.append(to: &buffer, bound: bound) { (header) throws(FerryProtocolError) in
            if maximumFrameSize != nil {
                header.writeUInt32(0)
                header.write(UInt8(0))
            }
            var seqDigits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0)
            let seqLength = Base36.write(message.seq, into: &seqDigits)
            header.write(UInt8(seqLength))
            withUnsafeBytes(of: seqDigits) { header.write(UnsafeRawBufferPointer(rebasing: $0[..<seqLength])) }
            header.write(message.type.rawValue)
            header.write(UInt8(methodLength))
            header.write(method)
            try header.writeField("status") { QueryString.write(message.status, into: &$0) }
            try header.writeField("meta") { QueryString.write(message.meta, into: &$0) }
            header.write(message.bodyCodec.rawValue)
            if let maximumFrameSize {
                let size = header.count + message.body.readableBytes
                guard size <= maximumFrameSize else {
                    throw FerryProtocolError.frameTooLarge(size: size, limit: maximumFrameSize)
                }
                header.setUInt32(UInt32(size), at: 0)
            }
        }
    }

    // MARK: Decoding

    /// Removes one whole frame from the front of `buffer` and returns its message, or returns
    /// nil without consuming anything when the frame is not complete yet.
    public func decodeMessage(from buffer: inout ByteBuffer) throws -> FerryMessage? {
        guard let declared = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        let size = Int(declared)
        guard size >= Self.minimumFrameSize else { throw FerryProtocolError.frameTooSmall(size: size) }
        guard size <= maximumFrameSize else {
            throw FerryProtocolError.frameTooLarge(size: size, limit: maximumFrameSize)
        }
        guard buffer.readableBytes >= size else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        var frame = buffer.readSlice(length: size - 4)!
        return try decodeFrame(&frame)
    }

    /// Decodes a frame without its size field.
    func decodeFrame(_ frame: inout ByteBuffer) throws -> FerryMessage {
        guard let filterCount = frame.readInteger(as: UInt8.self) else {
            throw FerryProtocolError.truncated(field: "filter count")
        }
        var filterIDs: [FerryFilterID] = []
        var payload: ByteBuffer
        if filterCount == 0 {
            payload = frame
        } else {
            guard let ids = frame.readBytes(length: Int(filterCount)) else {
                throw FerryProtocolError.truncated(field: "filter ids")
            }
            filterIDs = ids.map(FerryFilterID.init(rawValue:))
            payload = try filters.undo(filterIDs, on: frame, maximumSize: maximumFrameSize, allocator: allocator)
        }
        return try Self.decodeHeaderAndBody(&payload, filters: filterIDs)
    }

    private static func decodeHeaderAndBody(_ payload: inout ByteBuffer, filters: [FerryFilterID]) throws -> FerryMessage {
        var (message, headerLength) = try payload.withUnsafeReadableBytes { (bytes) throws(FerryProtocolError) in
            var header = HeaderReader(bytes)
            let seqLength = try header.readByte(field: "seq")
            guard let seq = Base36.parse(try header.readBytes(Int(seqLength), field: "seq")) else {
                throw FerryProtocolError.invalidSeq
            }
            let type = FerryMessageType(rawValue: try header.readByte(field: "message type"))
            let methodLength = try header.readByte(field: "service method")
            let serviceMethod = String(decoding: try header.readBytes(Int(methodLength), field: "service method"), as: UTF8.self)
            // Status and meta are parsed from the bytes in place; the status is marked as the
            // remote's (`FerryStatus.Origin.remote`).
            let statusBytes = try header.readBytes(Int(try header.readUInt16(field: "status")), field: "status")
            let status: FerryStatus
            do { status = try QueryString.decodeStatus(statusBytes) } catch {
                throw FerryProtocolError.invalidQueryString(field: "status")
            }
            let metaBytes = try header.readBytes(Int(try header.readUInt16(field: "meta")), field: "meta")
            let meta = metaBytes.isEmpty ? FerryMeta() : QueryString.decodeMeta(metaBytes)
            let codec = FerryCodecID(rawValue: try header.readByte(field: "body codec"))
            let message = FerryMessage(
                type: type, seq: seq, serviceMethod: serviceMethod, status: status, meta: meta, bodyCodec: codec, filters: filters
            )
            return (message, header.offset)
        }
        payload.moveReaderIndex(forwardBy: headerLength)
        message.body = payload
        return message
    }
}
