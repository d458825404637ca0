import NIOCore
import FerryTestSupport
import Testing

@testable import FerryCore

@Suite("Wire test vectors")
struct WireVectorTests {
    let proto = FerryRawProto()

    @Test("encoding each message gives the specified bytes", arguments: 0..<4)
    func encodesVector(index: Int) throws {
        let (message, expected) = WireVectors.pairs[index]
        var buffer = ByteBuffer()
        try proto.encodeMessage(message, into: &buffer)
        #expect(Array(buffer.readableBytesView) == expected)
    }

    @Test("decoding the specified bytes gives each message", arguments: 0..<4)
    func decodesVector(index: Int) throws {
        let (expected, bytes) = WireVectors.pairs[index]
        var buffer = ByteBuffer(bytes: bytes)
        let message = try #require(try proto.decodeMessage(from: &buffer))
        #expect(message == expected)
        #expect(buffer.readableBytes == 0)
    }

    @Test("the gzip vector decodes to the first vector's message with filter g")
    func decodesGzipVector() throws {
        var buffer = ByteBuffer(bytes: WireVectors.gzipCall)
        let message = try #require(try proto.decodeMessage(from: &buffer))
        var expected = WireVectors.callMessage
        expected.filters = [.gzip]
        #expect(message == expected)
    }

    @Test("a message encoded with gzip and md5 decodes to itself")
    func filteredRoundTrip() throws {
        var message = WireVectors.callMessage
        message.filters = [.gzip, .md5]
        var buffer = ByteBuffer()
        try proto.encodeMessage(message, into: &buffer)
        #expect(buffer.getBytes(at: 4, length: 3) == [2, UInt8(ascii: "g"), UInt8(ascii: "m")])
        let decoded = try #require(try proto.decodeMessage(from: &buffer))
        #expect(decoded == message)
    }

    @Test("an incomplete frame decodes to nothing and consumes nothing")
    func partialFrame() throws {
        var buffer = ByteBuffer(bytes: WireVectors.call.dropLast())
        #expect(try proto.decodeMessage(from: &buffer) == nil)
        #expect(buffer.readableBytes == WireVectors.call.count - 1)
    }

    @Test("seq is base 36, lower case, with a sign for negatives", arguments: [
        (Int32(0), "0"), (1, "1"), (35, "z"), (36, "10"), (Int32.max, "zik0zj"), (-1, "-1"), (Int32.min, "-zik0zk"),
    ])
    func base36(value: Int32, text: String) {
        #expect(Base36.encode(value) == Array(text.utf8))
        #expect(Base36.parse(Array(text.utf8)) == value)
    }

    @Test("seq parsing refuses what is not a base-36 int32", arguments: ["", "-", "1!", "zik0zk", "-zik0zl", "1 2"])
    func base36Refuses(text: String) {
        #expect(Base36.parse(Array(text.utf8)) == nil)
    }

    @Test("status and meta escape every byte outside A-Z a-z 0-9 * - . _")
    func escaping() throws {
        #expect(QueryString.escape("a b+c/é~*-._") == "a%20b%2Bc%2F%C3%A9%7E*-._")
        #expect(Array("a+b%20c%2Bd".utf8).withUnsafeBytes(QueryString.unescape) == "a b c+d")
        #expect(Array("100%".utf8).withUnsafeBytes(QueryString.unescape) == "100%")
        var meta = FerryMeta()
        meta.add("k", "")
        meta.add("k", "a&b=c")
        meta.add("x y", "1")
        let encoded = QueryString.encode(meta)
        #expect(String(decoding: encoded, as: UTF8.self) == "k&k=a%26b%3Dc&x%20y=1")
        #expect(encoded.withUnsafeBytes(QueryString.decodeMeta) == meta)
    }

    @Test("meta parsing splits at the first = only, skips empty pairs and keeps malformed escapes")
    func metaParsingEdges() {
        func decoded(_ text: String) -> [String] {
            Array(text.utf8).withUnsafeBytes(QueryString.decodeMeta).map { "\($0.key)|\($0.value)" }
        }
        #expect(decoded("a=b=c") == ["a|b=c"])
        #expect(decoded("&&=&a&=b&c=") == ["a|", "|b", "c|"])
        #expect(decoded("k%zz=%4&x+y=%41%2b") == ["k%zz|%4", "x y|A+"])
        #expect(decoded("plain=1&esc%20aped=2") == ["plain|1", "esc aped|2"])
        let invalidUTF8: [UInt8] = Array("bad=".utf8) + [0xFF]
        #expect(invalidUTF8.withUnsafeBytes(QueryString.decodeMeta)["bad"] == "\u{FFFD}")
    }

    @Test("a status round-trips; msg is omitted when empty and cause is always written")
    func statusEncoding() throws {
        let status = FerryStatus(code: 1234, message: "bad thing", cause: "a=b & c")
        let encoded = QueryString.encode(status)
        #expect(String(decoding: encoded, as: UTF8.self) == "code=1234&msg=bad%20thing&cause=a%3Db%20%26%20c")
        #expect(try encoded.withUnsafeBytes(QueryString.decodeStatus) == status)
        #expect(String(decoding: QueryString.encode(FerryStatus(code: 7)), as: UTF8.self) == "code=7&cause=")
        #expect(try [UInt8]().withUnsafeBytes(QueryString.decodeStatus) == .ok)
        #expect(try Array("code=0".utf8).withUnsafeBytes(QueryString.decodeStatus) == .ok)
        #expect(throws: QueryString.DecodingError.invalidStatusCode) { try Array("code=x".utf8).withUnsafeBytes(QueryString.decodeStatus) }
    }

    @Test("random messages round-trip, escaping every byte at worst, with status codes and seqs at their extremes")
    func randomRoundTrips() throws {
        var random = SplitMix64(seed: 0x5eed)
        // Bytes that escape (3 each), plain ones, multi-byte characters, separators.
        let alphabet: [String] = ["a", "Z", "0", "-", "%", "+", "&", "=", " ", "é", "许", "\u{0}", "\u{7f}", "~", "/"]
        func text(maximumLength: Int) -> String {
            let length = Int(random.next() % UInt64(maximumLength + 1))
            return String((0..<length).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }.joined().prefix(maximumLength))
        }
        let seqs: [Int32] = [0, 1, -1, Int32.max, Int32.min]
        let codes: [Int32] = [0, 404, -1, Int32.max, Int32.min]
        for round in 0..<2000 {
            var meta = FerryMeta()
            for _ in 0..<Int(random.next() % 4) {
                let (key, value) = (text(maximumLength: 12), text(maximumLength: 40))
                // A pair with neither key nor value is dropped on the wire, as erpc drops it.
                if !key.isEmpty || !value.isEmpty { meta.add(key, value) }
            }
            let status = round % 3 == 0
                ? FerryStatus.ok
                : FerryStatus(code: codes[round % codes.count], message: text(maximumLength: 30), cause: text(maximumLength: 30))
            var method = text(maximumLength: 80)
            while method.utf8.count > 255 { method.removeLast() }
            let message = FerryMessage(
                type: FerryMessageType(rawValue: UInt8(truncatingIfNeeded: random.next())),
                seq: round < seqs.count ? seqs[round] : Int32(truncatingIfNeeded: random.next()),
                serviceMethod: method, status: status, meta: meta,
                bodyCodec: FerryCodecID(rawValue: UInt8(truncatingIfNeeded: random.next())),
                body: ByteBuffer(string: text(maximumLength: 20)))
            var wire = ByteBuffer()
            try proto.encodeMessage(message, into: &wire)
            let decoded = try #require(try proto.decodeMessage(from: &wire))
            #expect(decoded == message, "round \(round)")
            #expect(wire.readableBytes == 0)
        }
    }
}

/// A small seeded generator (SplitMix64), so that random tests repeat exactly.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
