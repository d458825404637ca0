import NIOCore
import NIOEmbedded
import NIOTestUtils
import FerryTestSupport
import Testing

@testable import FerryCore

@Suite("Hostile frames")
struct HostileFrameTests {
    private func decode(_ bytes: [UInt8], limit: Int = 16 << 20) throws -> FerryMessage? {
        var buffer = ByteBuffer(bytes: bytes)
        return try FerryRawProto(maximumFrameSize: limit).decodeMessage(from: &buffer)
    }

    /// The call vector with its byte at `index` replaced.
    private func callVector(setting index: Int, to value: UInt8) -> [UInt8] {
        var bytes = WireVectors.call
        bytes[index] = value
        return bytes
    }

    @Test("a declared size above the limit is refused from the first four bytes")
    func tooLarge() {
        #expect(throws: FerryProtocolError.frameTooLarge(size: 0x7fff_ffff, limit: 1024)) {
            try decode([0x7f, 0xff, 0xff, 0xff], limit: 1024)
        }
    }

    @Test("a declared size below the smallest frame is refused", arguments: [0, 1, 4])
    func tooSmall(size: UInt8) {
        #expect(throws: FerryProtocolError.frameTooSmall(size: Int(size))) { try decode([0, 0, 0, size, 0]) }
    }

    @Test("inner lengths that run past the frame are refused", arguments: [
        (5, UInt8(0xff), "seq"), (8, 200, "service method"), (19, 0xff, "status"), (27, 0xff, "meta"),
    ])
    func truncatedField(index: Int, value: UInt8, field: String) {
        #expect(throws: FerryProtocolError.truncated(field: field)) { try decode(callVector(setting: index, to: value)) }
    }

    @Test("a frame too short for its header is refused")
    func truncatedHeader() {
        #expect(throws: FerryProtocolError.truncated(field: "message type")) { try decode([0, 0, 0, 7, 0, 1, 0x31]) }
    }

    @Test("a seq that is not base 36 is refused")
    func badSeq() {
        #expect(throws: FerryProtocolError.invalidSeq) { try decode(callVector(setting: 6, to: UInt8(ascii: "!"))) }
    }

    @Test("an unknown filter id is refused")
    func unknownFilter() {
        var bytes = WireVectors.gzipCall
        bytes[5] = UInt8(ascii: "q")
        #expect(throws: FerryProtocolError.filter(.unknownFilter(FerryFilterID("q")))) { try decode(bytes) }
    }

    @Test("a corrupt gzip stream is refused")
    func corruptGzip() throws {
        var bytes = WireVectors.gzipCall
        for index in 20..<40 { bytes[index] ^= 0x5a }
        #expect {
            try decode(bytes)
        } throws: { error in
            guard case .filter(.corrupt(filter: .gzip, _)) = error as? FerryProtocolError else { return false }
            return true
        }
    }

    @Test("a gzip bomb stops at the frame size limit")
    func gzipBomb() throws {
        let zeros = ByteBuffer(repeating: 0, count: 4 << 20)
        let bomb = try FerryGzipFilter().encode(zeros, allocator: ByteBufferAllocator())
        #expect(bomb.readableBytes < 64 * 1024)
        var frame = ByteBuffer()
        frame.writeInteger(UInt32(4 + 2 + bomb.readableBytes))
        frame.writeBytes([1, UInt8(ascii: "g")])
        frame.writeImmutableBuffer(bomb)
        #expect(throws: FerryProtocolError.filter(.tooLarge(filter: .gzip, limit: 1 << 20))) {
            try decode(Array(frame.readableBytesView), limit: 1 << 20)
        }
    }

    @Test("a wrong md5 sum is refused")
    func badChecksum() throws {
        var message = WireVectors.callMessage
        message.filters = [.md5]
        var buffer = ByteBuffer()
        try FerryRawProto().encodeMessage(message, into: &buffer)
        var bytes = Array(buffer.readableBytesView)
        bytes[bytes.count - 20] ^= 1
        #expect(throws: FerryProtocolError.filter(.corrupt(filter: .md5, reason: "MD5 checksum mismatch"))) { try decode(bytes) }
    }

    @Test("an unknown message type still decodes so the session can answer 405")
    func unknownType() throws {
        let message = try #require(try decode(callVector(setting: 7, to: 9)))
        #expect(message.type == FerryMessageType(rawValue: 9))
        #expect(!message.type.isKnown)
    }

    @Test("encoding refuses what the wire cannot carry and leaves the buffer untouched")
    func encodingLimits() {
        var buffer = ByteBuffer(string: "keep")
        let longRoute = FerryMessage(type: .call, seq: 1, serviceMethod: String(repeating: "a", count: 256))
        #expect(throws: FerryProtocolError.fieldTooLong(field: "service method", length: 256, limit: 255)) {
            try FerryRawProto().encodeMessage(longRoute, into: &buffer)
        }
        let longMeta = FerryMessage(type: .call, seq: 1, serviceMethod: "/a", meta: ["k": String(repeating: "v", count: 70_000)])
        #expect(throws: FerryProtocolError.fieldTooLong(field: "meta", length: 70_002, limit: 65535)) {
            try FerryRawProto().encodeMessage(longMeta, into: &buffer)
        }
        let big = FerryMessage(type: .call, seq: 1, serviceMethod: "/a", body: ByteBuffer(repeating: 1, count: 2000))
        // 22 bytes of frame before the body: size, filter count, seq, type, route, status, meta, codec.
        #expect(throws: FerryProtocolError.frameTooLarge(size: 2022, limit: 1024)) {
            try FerryRawProto(maximumFrameSize: 1024).encodeMessage(big, into: &buffer)
        }
        // A frame exactly at the limit is sent.
        var exact = ByteBuffer()
        #expect(throws: Never.self) { try FerryRawProto(maximumFrameSize: 2022).encodeMessage(big, into: &exact) }
        #expect(exact.readableBytes == 2022)
        #expect(String(buffer: buffer) == "keep")
    }
}
