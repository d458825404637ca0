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
        buffer.writeInteger(UInt32(0))
        buffer.writeInteger(UInt8(message.filters.count))
        if message.filters.isEmpty {
            try Self.writeHeaderAndBody(message, into: &buffer)
        } else {
            for id in message.filters { buffer.writeInteger(id.rawValue) }
            var payload = allocator.buffer(capacity: 64 + message.body.readableBytes)
            try Self.writeHeaderAndBody(message, into: &payload)
            for id in message.filters.reversed() {
                guard let filter = filters.filter(for: id) else {
                    throw FerryProtocolError.filter(.unknownFilter(id))
                }
                payload = try filter.encode(payload, allocator: allocator)
            }
            buffer.writeBuffer(&payload)
        }
        let size = buffer.writerIndex - start
        guard size <= maximumFrameSize else {
            throw FerryProtocolError.frameTooLarge(size: size, limit: maximumFrameSize)
        }
        buffer.setInteger(UInt32(size), at: start)
    }

    private static func writeHeaderAndBody(_ message: FerryMessage, into buffer: inout ByteBuffer) throws {
        var seqDigits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0)
        let seqLength = Base36.write(message.seq, into: &seqDigits)
        buffer.writeInteger(UInt8(seqLength))
        _ = withUnsafeBytes(of: seqDigits) { buffer.writeBytes(UnsafeRawBufferPointer(rebasing: $0.prefix(seqLength))) }
        buffer.writeInteger(message.type.rawValue)

        let methodLength = message.serviceMethod.utf8.count
        guard methodLength <= Int(UInt8.max) else {
            throw FerryProtocolError.fieldTooLong(field: "service method", length: methodLength, limit: 255)
        }
        buffer.writeInteger(UInt8(methodLength))
        buffer.writeString(message.serviceMethod)

        try writeField("status", into: &buffer) { QueryString.write(message.status, into: &$0) }
        try writeField("meta", into: &buffer) { QueryString.write(message.meta, into: &$0) }
        buffer.writeInteger(message.bodyCodec.rawValue)
        buffer.writeImmutableBuffer(message.body)
    }

    /// Writes a field with its 16-bit length in front; `write` appends the field's bytes.
    private static func writeField(_ name: String, into buffer: inout ByteBuffer, _ write: (inout ByteBuffer) -> Void) throws {
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(UInt16(0))
        write(&buffer)
        let length = buffer.writerIndex - lengthIndex - 2
        guard length <= Int(UInt16.max) else {
            throw FerryProtocolError.fieldTooLong(field: name, length: length, limit: Int(UInt16.max))
        }
        buffer.setInteger(UInt16(length), at: lengthIndex)
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
            payload = frame
            for id in filterIDs {
                guard let filter = filters.filter(for: id) else {
                    throw FerryProtocolError.filter(.unknownFilter(id))
                }
                do {
                    payload = try filter.decode(payload, maximumSize: maximumFrameSize, allocator: allocator)
                } catch let error as FerryFilterError {
                    throw FerryProtocolError.filter(error)
                } catch {
                    throw FerryProtocolError.filter(.corrupt(filter: id, reason: "\(error)"))
                }
            }
        }
        return try Self.decodeHeaderAndBody(&payload, filters: filterIDs)
    }

    private static func decodeHeaderAndBody(_ payload: inout ByteBuffer, filters: [FerryFilterID]) throws -> FerryMessage {
        guard let seqLength = payload.readInteger(as: UInt8.self),
            let seqView = payload.readSlice(length: Int(seqLength))?.readableBytesView
        else { throw FerryProtocolError.truncated(field: "seq") }
        guard let seq = Base36.parse(seqView) else { throw FerryProtocolError.invalidSeq }

        guard let typeByte = payload.readInteger(as: UInt8.self) else {
            throw FerryProtocolError.truncated(field: "message type")
        }
        guard let methodLength = payload.readInteger(as: UInt8.self),
            let serviceMethod = payload.readString(length: Int(methodLength))
        else { throw FerryProtocolError.truncated(field: "service method") }

        // Status and meta are parsed from the bytes in place.
        guard let statusLength = payload.readInteger(as: UInt16.self),
            let statusBytes = payload.readSlice(length: Int(statusLength))
        else { throw FerryProtocolError.truncated(field: "status") }
        let status: FerryStatus
        do { status = try statusBytes.withUnsafeReadableBytes { try QueryString.decodeStatus($0) } } catch {
            throw FerryProtocolError.invalidQueryString(field: "status")
        }

        guard let metaLength = payload.readInteger(as: UInt16.self),
            let metaBytes = payload.readSlice(length: Int(metaLength))
        else { throw FerryProtocolError.truncated(field: "meta") }
        let meta = metaLength == 0 ? FerryMeta() : metaBytes.withUnsafeReadableBytes { QueryString.decodeMeta($0) }

        guard let codec = payload.readInteger(as: UInt8.self) else {
            throw FerryProtocolError.truncated(field: "body codec")
        }
        return FerryMessage(
            type: FerryMessageType(rawValue: typeByte),
            seq: seq,
            serviceMethod: serviceMethod,
            status: status,
            meta: meta,
            bodyCodec: FerryCodecID(rawValue: codec),
            body: payload,
            filters: filters
        )
    }
}
