import Crypto
import NIOCore
import FerryTestSupport
import Testing

@testable import FerryCore

@Suite("AES-GCM transfer filter")
struct AESGCMFilterTests {
    private let allocator = ByteBufferAllocator()
    private let plaintext = ByteBuffer(string: String(repeating: "ferry ", count: 50))

    private func filter(bits: Int = 256) throws -> FerryAESGCMFilter {
        try FerryAESGCMFilter(key: SymmetricKey(size: SymmetricKeySize(bitCount: bits)))
    }

    /// Whether `body` fails as a frame the AES-GCM filter refuses as corrupt.
    private func refusedAsCorrupt(_ body: () throws -> ByteBuffer) -> Bool {
        do {
            _ = try body()
            return false
        } catch FerryFilterError.corrupt(filter: .aesGCM, _) {
            return true
        } catch {
            return false
        }
    }

    @Test("a frame round-trips under a 128-, 192- or 256-bit key, 28 bytes longer", arguments: [128, 192, 256])
    func roundTrip(bits: Int) throws {
        let filter = try filter(bits: bits)
        let sealed = try filter.encode(plaintext, allocator: allocator)
        #expect(sealed.readableBytes == plaintext.readableBytes + 12 + 16)
        #expect(sealed.readableBytesView.firstRange(of: Array("ferry".utf8)) == nil, "the bytes travel encrypted")
        #expect(try filter.decode(sealed, maximumSize: 1 << 20, allocator: allocator) == plaintext)
        let empty = try filter.encode(ByteBuffer(), allocator: allocator)
        #expect(try filter.decode(empty, maximumSize: 1 << 20, allocator: allocator) == ByteBuffer())
    }

    @Test("a key of another size is refused when the filter is made", arguments: [0, 8, 20, 64])
    func invalidKeySize(bytes: Int) {
        #expect(throws: FerryAESGCMFilter.InvalidKeySize(bitCount: bytes * 8)) {
            try FerryAESGCMFilter(key: SymmetricKey(data: [UInt8](repeating: 7, count: bytes)))
        }
    }

    @Test("two encodings of the same bytes use different nonces, so their ciphertexts differ")
    func freshNoncePerFrame() throws {
        let filter = try filter()
        let first = try filter.encode(plaintext, allocator: allocator)
        let second = try filter.encode(plaintext, allocator: allocator)
        #expect(first.getBytes(at: 0, length: 12) != second.getBytes(at: 0, length: 12))
        #expect(first.getSlice(at: 12, length: first.readableBytes - 12) != second.getSlice(at: 12, length: second.readableBytes - 12))
        #expect(try filter.decode(second, maximumSize: 1 << 20, allocator: allocator) == plaintext)
    }

    @Test("a frame sealed under another key is refused")
    func wrongKey() throws {
        let sealed = try filter().encode(plaintext, allocator: allocator)
        let other = try filter()
        #expect(refusedAsCorrupt { try other.decode(sealed, maximumSize: 1 << 20, allocator: allocator) })
    }

    /// Offsets into a sealed 300-byte frame (328 bytes): in the nonce, the ciphertext and the tag.
    @Test("a flipped bit anywhere is refused", arguments: [0, 11, 12, 150, 311, 312, 327])
    func tampered(offset: Int) throws {
        let filter = try filter()
        var sealed = try filter.encode(plaintext, allocator: allocator)
        #expect(sealed.readableBytes == 328)
        let byte = try #require(sealed.getInteger(at: offset, as: UInt8.self))
        sealed.setInteger(byte ^ 0x01, at: offset)
        #expect(refusedAsCorrupt { try filter.decode(sealed, maximumSize: 1 << 20, allocator: allocator) })
    }

    @Test("a frame shorter than a nonce and a tag is refused", arguments: [0, 1, 12, 27])
    func tooShort(length: Int) throws {
        let filter = try filter()
        let short = ByteBuffer(repeating: 0, count: length)
        #expect(refusedAsCorrupt { try filter.decode(short, maximumSize: 1 << 20, allocator: allocator) })
        // Long enough to parse, but not a sealed frame.
        #expect(refusedAsCorrupt { try filter.decode(ByteBuffer(repeating: 0, count: 28), maximumSize: 1 << 20, allocator: allocator) })
    }

    @Test("a frame whose plaintext would pass the size limit is refused before it is opened")
    func sizeLimit() throws {
        let filter = try filter()
        let sealed = try filter.encode(plaintext, allocator: allocator)
        #expect(throws: FerryFilterError.tooLarge(filter: .aesGCM, limit: 299)) {
            try filter.decode(sealed, maximumSize: 299, allocator: allocator)
        }
        #expect(try filter.decode(sealed, maximumSize: 300, allocator: allocator) == plaintext)
    }

    @Test("a message encrypted on one side decodes on the other; another key or no filter is a protocol error")
    func throughTheProto() throws {
        let key = SymmetricKey(size: .bits256)
        var filters = FerryFilterRegistry.standard
        filters.register(try FerryAESGCMFilter(key: key))
        let proto = FerryRawProto(filters: filters)
        var message = WireVectors.callMessage
        // Compressed first (the last id is applied first), then encrypted.
        message.filters = [.aesGCM, .gzip]
        var frame = ByteBuffer()
        try proto.encodeMessage(message, into: &frame)
        #expect(frame.getBytes(at: 4, length: 3) == [2, UInt8(ascii: "a"), UInt8(ascii: "g")])
        #expect(frame.readableBytesView.firstRange(of: Array("/math/add".utf8)) == nil)

        var received = frame
        #expect(try proto.decodeMessage(from: &received) == message)

        var otherKey = FerryFilterRegistry.standard
        otherKey.register(try FerryAESGCMFilter(key: SymmetricKey(size: .bits256)))
        var refused = frame
        #expect {
            try FerryRawProto(filters: otherKey).decodeMessage(from: &refused)
        } throws: { error in
            guard case .filter(.corrupt(filter: .aesGCM, _)) = error as? FerryProtocolError else { return false }
            return true
        }
        var unknown = frame
        #expect(throws: FerryProtocolError.filter(.unknownFilter(.aesGCM))) { try FerryRawProto().decodeMessage(from: &unknown) }
    }
}
