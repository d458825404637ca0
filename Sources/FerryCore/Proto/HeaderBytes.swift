import NIOCore

/// Appends a frame header's fields through one pointer into room reserved for the whole header,
/// so that a header costs one capacity, uniqueness and exclusivity check on its buffer instead
/// of one per field. Every write is bounds-checked against the reserved room.
struct HeaderWriter: ~Copyable {
    private let room: UnsafeMutableRawBufferPointer
    /// The bytes written so far.
    private(set) var count = 0

    init(_ room: UnsafeMutableRawBufferPointer) {
        self.room = room
    }

    /// Appends the header fields that `write` writes to `buffer`, in room for at most `bound`
    /// bytes. Nothing is appended if `write` throws.
    static func append<Failure: Error>(
        to buffer: inout ByteBuffer, bound: Int, _ write: (inout HeaderWriter) throws(Failure) -> Void
    ) throws(Failure) {
        try buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { (room) throws(Failure) -> Int in
            var writer = HeaderWriter(room)
            try write(&writer)
            return writer.count
        }
    }

    mutating func write(_ byte: UInt8) {
        precondition(count < room.count, "header bound too small")
        room[count] = byte
        count += 1
    }

    mutating func write(_ bytes: UnsafeRawBufferPointer) {
        precondition(bytes.count <= room.count - count, "header bound too small")
        if let source = bytes.baseAddress, !bytes.isEmpty {
            (room.baseAddress! + count).copyMemory(from: source, byteCount: bytes.count)
        }
        count += bytes.count
    }

    /// Writes `value` big-endian.
    mutating func writeUInt32(_ value: UInt32) {
        precondition(4 <= room.count - count, "header bound too small")
        count += 4
        setUInt32(value, at: count - 4)
    }

    /// Overwrites the 4 bytes at `offset`, already written, with `value` big-endian.
    mutating func setUInt32(_ value: UInt32, at offset: Int) {
        precondition(offset >= 0 && offset + 4 <= count, "not written yet")
        room[offset] = UInt8(truncatingIfNeeded: value >> 24)
        room[offset + 1] = UInt8(truncatingIfNeeded: value >> 16)
        room[offset + 2] = UInt8(truncatingIfNeeded: value >> 8)
        room[offset + 3] = UInt8(truncatingIfNeeded: value)
    }

    mutating func write(_ text: String) {
        var text = text
        text.withUTF8 { write(UnsafeRawBufferPointer($0)) }
    }

    /// Writes a field with its big-endian 16-bit length in front; `body` writes the field.
    mutating func writeField(_ name: String, _ body: (inout HeaderWriter) -> Void) throws(FerryProtocolError) {
        let lengthOffset = count
        write(UInt8(0))
        write(UInt8(0))
        body(&self)
        let length = count - lengthOffset - 2
        guard length <= Int(UInt16.max) else {
            throw FerryProtocolError.fieldTooLong(field: name, length: length, limit: Int(UInt16.max))
        }
        room[lengthOffset] = UInt8(truncatingIfNeeded: length >> 8)
        room[lengthOffset + 1] = UInt8(truncatingIfNeeded: length)
    }
}

/// Reads a frame header's fields from its bytes in place, each read bounds-checked and failing
/// as a truncated field.
struct HeaderReader: ~Copyable {
    private let bytes: UnsafeRawBufferPointer
    /// The bytes read so far.
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    mutating func readByte(field: String) throws(FerryProtocolError) -> UInt8 {
        guard offset < bytes.count else { throw FerryProtocolError.truncated(field: field) }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func readUInt16(field: String) throws(FerryProtocolError) -> UInt16 {
        let high = try readByte(field: field)
        let low = try readByte(field: field)
        return UInt16(high) << 8 | UInt16(low)
    }

    mutating func readBytes(_ count: Int, field: String) throws(FerryProtocolError) -> UnsafeRawBufferPointer {
        guard count <= bytes.count - offset else { throw FerryProtocolError.truncated(field: field) }
        defer { offset += count }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
    }
}
