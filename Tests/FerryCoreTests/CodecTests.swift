import Foundation
import NIOCore
import SwiftProtobuf
import FerryTestSupport
import Testing

@testable import FerryCore

private struct Point: Codable, Equatable, Sendable {
    var x: Int
    var y: Int
    var label: String
}

/// A codec that is not built in, to show users can add one.
private struct ReversedTextCodec: FerryCodec {
    var id: FerryCodecID { FerryCodecID("r") }
    var name: String { "reversed" }
    func encode<Value>(_ value: Value, into buffer: inout ByteBuffer) throws {
        guard let text = value as? String else { throw FerryCodecError.unsupportedType("\(Value.self)", codec: name) }
        buffer.writeString(String(text.reversed()))
    }
    func decode<Value>(_ type: Value.Type, from buffer: ByteBuffer) throws -> Value {
        guard Value.self == String.self else { throw FerryCodecError.unsupportedType("\(Value.self)", codec: name) }
        return String(String(buffer: buffer).reversed()) as! Value
    }
}

/// The registry's unconstrained calls, as a generic caller (a route registered for any type) makes them.
private func encodeAsAnyType<Value>(_ value: Value, _ codecs: FerryCodecRegistry) throws -> ByteBuffer {
    try codecs.encode(value, codec: .protobuf)
}

private func decodeAsAnyType<Value>(_ type: Value.Type, from body: ByteBuffer, _ codecs: FerryCodecRegistry) throws -> Value {
    try codecs.decode(type, from: body, codec: .protobuf)
}

@Suite("Body codecs")
struct CodecTests {
    let codecs = FerryCodecRegistry.standard

    @Test("json encodes Codable values and decodes them back")
    func json() throws {
        let point = Point(x: 1, y: -2, label: "a b")
        let body = try codecs.encode(point, codec: .json)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any])
        #expect(object["x"] as? Int == 1 && object["y"] as? Int == -2 && object["label"] as? String == "a b")
        #expect(try codecs.decode(Point.self, from: body, codec: .json) == point)
        #expect(try codecs.decode(Int.self, from: ByteBuffer(string: "15"), codec: .json) == 15)
    }

    @Test("protobuf encodes SwiftProtobuf messages")
    func protobuf() throws {
        var value = Google_Protobuf_StringValue()
        value.value = "許多往事"
        let body = try codecs.encode(value, codec: .protobuf)
        #expect(Array(body.readableBytesView) == (try value.serializedBytes() as [UInt8]))
        #expect(try codecs.decode(Google_Protobuf_StringValue.self, from: body, codec: .protobuf) == value)
    }

    @Test("protobuf messages known at compile time use the codec registered under p: Ferry's own or a replacement")
    func protobufMessageOverloads() throws {
        var value = Google_Protobuf_StringValue()
        value.value = "許多往事"
        let body = try codecs.encode(value, codec: .protobuf)
        #expect(body == (try encodeAsAnyType(value, codecs)))
        #expect(try decodeAsAnyType(Google_Protobuf_StringValue.self, from: body, codecs) == value)
        #expect(try codecs.decode(Google_Protobuf_StringValue.self, from: body, codec: .protobuf) == value)
        #expect(throws: FerryCodecError.self) { try codecs.encode(value, codec: .json) }
        #expect(throws: FerryCodecError.self) { try codecs.decode(Google_Protobuf_StringValue.self, from: ByteBuffer(bytes: [0x0a, 0x09]), codec: .protobuf) }

        var replaced = FerryCodecRegistry.standard
        replaced.register(TaggedProtobufCodec())
        let tagged = try replaced.encode(value, codec: .protobuf)
        #expect(tagged.getInteger(at: tagged.readerIndex, as: UInt8.self) == TaggedProtobufCodec.tag)
        #expect(tagged == (try encodeAsAnyType(value, replaced)))
        #expect(try replaced.decode(Google_Protobuf_StringValue.self, from: tagged, codec: .protobuf) == value)
        #expect(throws: FerryCodecError.self) { try replaced.decode(Google_Protobuf_StringValue.self, from: body, codec: .protobuf) }

        let reply = FerryReply(message: FerryMessage(type: .reply, seq: 1, bodyCodec: .protobuf, body: tagged), cost: .zero, codecs: replaced)
        #expect(try reply.decode(Google_Protobuf_StringValue.self) == value)
        let failed = FerryReply(message: FerryMessage(type: .reply, seq: 1, status: .notFound("gone"), bodyCodec: .protobuf, body: tagged), cost: .zero, codecs: replaced)
        #expect(throws: FerryStatus.notFound("gone")) { try failed.decode(Google_Protobuf_StringValue.self) }

        replaced.register(FerryProtobufCodec())
        #expect(try replaced.encode(value, codec: .protobuf) == body)
    }

    @Test("plain carries text, bytes, numbers and booleans as they are")
    func plain() throws {
        #expect(String(buffer: try codecs.encode("héllo", codec: .plain)) == "héllo")
        #expect(String(buffer: try codecs.encode(42, codec: .plain)) == "42")
        #expect(String(buffer: try codecs.encode(true, codec: .plain)) == "true")
        #expect(Array(try codecs.encode([UInt8]([0, 255]), codec: .plain).readableBytesView) == [0, 255])
        #expect(try codecs.decode(String.self, from: ByteBuffer(string: "hi"), codec: .plain) == "hi")
        #expect(try codecs.decode(Int.self, from: ByteBuffer(string: "-7"), codec: .plain) == -7)
        #expect(throws: FerryCodecError.self) { try codecs.decode(String.self, from: ByteBuffer(bytes: [0xff, 0xfe]), codec: .plain) }
        #expect(throws: FerryCodecError.self) { try codecs.decode(Int.self, from: ByteBuffer(string: "seven"), codec: .plain) }
    }

    @Test("form encodes flat Codable structs as urlencoded text")
    func form() throws {
        let point = Point(x: 3, y: 4, label: "a&b c")
        let body = try codecs.encode(point, codec: .form)
        #expect(String(buffer: body) == "x=3&y=4&label=a%26b%20c")
        #expect(try codecs.decode(Point.self, from: ByteBuffer(string: "label=a+b&x=3&y=4"), codec: .form) == Point(x: 3, y: 4, label: "a b"))
    }

    @Test("a raw ByteBuffer passes through untouched under any codec id", arguments: [FerryCodecID.json, .protobuf, .plain, .form, FerryCodecID("z")])
    func rawPassThrough(codec: FerryCodecID) throws {
        let raw = ByteBuffer(bytes: [0, 1, 2, 0xff])
        #expect(try codecs.encode(raw, codec: codec) == raw)
        #expect(try codecs.decode(ByteBuffer.self, from: raw, codec: codec) == raw)
    }

    @Test("an unknown codec id and an undecodable body are clear errors")
    func failures() throws {
        #expect {
            try codecs.decode(Point.self, from: ByteBuffer(string: "{}"), codec: FerryCodecID("z"))
        } throws: { error in
            if case .unknownCodec(FerryCodecID("z")) = error as? FerryCodecError { return true }
            return false
        }
        #expect {
            try codecs.decode(Point.self, from: ByteBuffer(string: "{\"x\":"), codec: .json)
        } throws: { error in
            if case .invalidBody(codec: "json", _) = error as? FerryCodecError { return true }
            return false
        }
        #expect(throws: FerryCodecError.self) { try codecs.encode(Point(x: 1, y: 1, label: ""), codec: .protobuf) }
    }

    @Test("a user codec can be registered and found by id and name")
    func customCodec() throws {
        var registry = FerryCodecRegistry.standard
        registry.register(ReversedTextCodec())
        let body = try registry.encode("abc", codec: FerryCodecID("r"))
        #expect(String(buffer: body) == "cba")
        #expect(try registry.decode(String.self, from: body, codec: FerryCodecID("r")) == "abc")
        #expect(registry.codec(named: "reversed")?.id == FerryCodecID("r"))
        #expect(FerryCodecRegistry.standard.codec(for: FerryCodecID("r")) == nil)
    }
}

/// A filter that is not built in: XOR with a key byte.
private struct XORFilter: FerryTransferFilter {
    var id: FerryFilterID { FerryFilterID("x") }
    func encode(_ buffer: ByteBuffer, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        ByteBuffer(bytes: buffer.readableBytesView.map { $0 ^ 0x5a })
    }
    func decode(_ buffer: ByteBuffer, maximumSize: Int, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        ByteBuffer(bytes: buffer.readableBytesView.map { $0 ^ 0x5a })
    }
}

@Suite("Transfer filters")
struct FilterTests {
    @Test("gzip and md5 round-trip")
    func roundTrip() throws {
        let input = ByteBuffer(string: String(repeating: "ferry ", count: 100))
        for filter in [FerryGzipFilter() as any FerryTransferFilter, FerryMD5Filter()] {
            let encoded = try filter.encode(input, allocator: ByteBufferAllocator())
            #expect(try filter.decode(encoded, maximumSize: 1 << 20, allocator: ByteBufferAllocator()) == input)
        }
        #expect(try FerryGzipFilter().encode(input, allocator: ByteBufferAllocator()).readableBytes < input.readableBytes)
        #expect(try FerryMD5Filter().encode(input, allocator: ByteBufferAllocator()).readableBytes == input.readableBytes + 16)
    }

    @Test("a user filter can be registered; sending applies filters last to first, receiving first to last")
    func customFilterOrder() throws {
        var filters = FerryFilterRegistry.standard
        filters.register(XORFilter())
        let proto = FerryRawProto(filters: filters)
        var message = WireVectors.callMessage
        message.filters = [FerryFilterID("x"), .md5]
        var buffer = ByteBuffer()
        try proto.encodeMessage(message, into: &buffer)
        // The outer-most filter (x) was applied last: undoing it leaves bytes whose md5 checks out.
        var payload = buffer.getSlice(at: 7, length: buffer.readableBytes - 7)!
        payload = try XORFilter().decode(payload, maximumSize: 1 << 20, allocator: ByteBufferAllocator())
        _ = try FerryMD5Filter().decode(payload, maximumSize: 1 << 20, allocator: ByteBufferAllocator())
        #expect(try proto.decodeMessage(from: &buffer) == message)
        var standardOnly = ByteBuffer()
        try proto.encodeMessage(message, into: &standardOnly)
        #expect(throws: FerryProtocolError.filter(.unknownFilter(FerryFilterID("x")))) { try FerryRawProto().decodeMessage(from: &standardOnly) }
    }
}
