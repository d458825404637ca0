import Foundation
import FerryTestSupport
import NIOCore
import Testing

@testable import FerryCore

@Suite("WebSocket proto (erpc v6 mixer)")
struct WebSocketProtoTests {
    // MARK: The vectors of the wire specification

    static let callJSON = #"{"seq":1,"mtype":1,"serviceMethod":"/math/add","meta":"k=v","bodyCodec":106,"body":"{\"a\":40,\"b\":2}","xferPipe":[]}"#
    static let replyJSON = #"{"seq":1,"mtype":2,"serviceMethod":"","meta":"","bodyCodec":106,"body":"42","xferPipe":[]}"#
    static let callProtobuf = WireVectors.bytes("""
        08 01 10 01 1a 09 2f 6d 61 74 68 2f 61 64 64 22 03 6b 3d 76 28 6a 32 0e
        7b 22 61 22 3a 34 30 2c 22 62 22 3a 32 7d
        """)
    static let replyProtobuf = WireVectors.bytes("08 01 10 02 28 6a 32 02 34 32")

    static let callMessage = FerryMessage(
        type: .call, seq: 1, serviceMethod: "/math/add", meta: ["k": "v"], bodyCodec: .json, body: ByteBuffer(string: #"{"a":40,"b":2}"#))
    static let replyMessage = FerryMessage(type: .reply, seq: 1, bodyCodec: .json, body: ByteBuffer(string: "42"))

    let json = FerryWebSocketProto(subprotocol: .json)
    let protobuf = FerryWebSocketProto(subprotocol: .protobuf)

    func encode(_ message: FerryMessage, with proto: FerryWebSocketProto) throws -> ByteBuffer {
        var buffer = ByteBuffer()
        try proto.encodeMessage(message, into: &buffer)
        return buffer
    }

    func roundTrip(_ message: FerryMessage, with proto: FerryWebSocketProto) throws -> FerryMessage {
        try proto.decodeMessage(try encode(message, with: proto))
    }

    @Test("JSON: the CALL and REPLY of the specification decode to their messages", arguments: [
        (callJSON, callMessage), (replyJSON, replyMessage),
    ])
    func jsonVectorsDecode(payload: String, expected: FerryMessage) throws {
        let message = try json.decodeMessage(ByteBuffer(string: payload))
        #expect(message == expected)
        #expect(message.status.origin == .remote)
    }

    @Test("JSON: the CALL and REPLY encode to the specification's text, keys in erpc's order", arguments: [
        (callMessage, callJSON), (replyMessage, replyJSON),
    ])
    func jsonVectorsEncode(message: FerryMessage, expected: String) throws {
        #expect(String(buffer: try encode(message, with: json)) == expected)
    }

    @Test("protobuf: the CALL encodes to its 38 bytes and the REPLY to its 10, and both decode", arguments: [
        (callMessage, callProtobuf), (replyMessage, replyProtobuf),
    ])
    func protobufVectors(message: FerryMessage, bytes: [UInt8]) throws {
        let encoded = try encode(message, with: protobuf)
        #expect(Array(encoded.readableBytesView) == bytes)
        #expect(try protobuf.decodeMessage(ByteBuffer(bytes: bytes)) == message)
    }

    // MARK: Round trips

    @Test("a status that is not OK travels as the raw proto's status string", arguments: FerryWebSocketProto.Subprotocol.allCases)
    func statusRoundTrip(subprotocol: FerryWebSocketProto.Subprotocol) throws {
        let proto = FerryWebSocketProto(subprotocol: subprotocol)
        let reply = FerryMessage(type: .reply, seq: 2, status: FerryStatus(.notFound, "Not Found"))
        let encoded = try encode(reply, with: proto)
        let statusBytes = Array("code=404&msg=Not%20Found&cause=".utf8)
        switch subprotocol {
        case .json:
            #expect(String(buffer: encoded).contains(#""status":"code=404&msg=Not%20Found&cause=""#))
        case .protobuf:
            // Field 8, wire type 2, then the length and the string.
            #expect(Array(encoded.readableBytesView).suffix(statusBytes.count + 2) == [0x42, UInt8(statusBytes.count)] + statusBytes)
        }
        let decoded = try proto.decodeMessage(encoded)
        #expect(decoded == reply)
        #expect(decoded.status.code == .notFound && decoded.status.message == "Not Found")
        #expect(decoded.status.origin == .remote)

        let withCause = FerryMessage(type: .reply, seq: 3, status: FerryStatus(code: 1001, message: "a & b = c", cause: "why: 100%"))
        #expect(try roundTrip(withCause, with: proto) == withCause)
    }

    @Test("an OK status is not written", arguments: FerryWebSocketProto.Subprotocol.allCases)
    func okStatusOmitted(subprotocol: FerryWebSocketProto.Subprotocol) throws {
        let encoded = try encode(Self.replyMessage, with: FerryWebSocketProto(subprotocol: subprotocol))
        let bytes = Array(encoded.readableBytesView)
        #expect(!String(decoding: bytes, as: UTF8.self).contains("status"))
        #expect(!String(decoding: bytes, as: UTF8.self).contains("code="))
    }

    @Test("a route and meta that need escaping, a negative seq, an unknown codec and two filters round trip", arguments: FerryWebSocketProto.Subprotocol.allCases)
    func headerRoundTrip(subprotocol: FerryWebSocketProto.Subprotocol) throws {
        var meta: FerryMeta = ["tag": "a b", "X-Real-IP": "10.0.0.1"]
        meta.add("tag", "ü&=%")
        meta.add("q\"\\", "\"\\\n")
        let message = FerryMessage(
            type: .push, seq: .min, serviceMethod: "/chat/\"say\"\\ü", meta: meta, bodyCodec: FerryCodecID(rawValue: 200),
            body: ByteBuffer(string: "hi"), filters: [ReverseFilter.id, ReverseFilter.id])
        var filters = FerryFilterRegistry.standard
        filters.register(ReverseFilter())
        let proto = FerryWebSocketProto(subprotocol: subprotocol, filters: filters)
        let encoded = try encode(message, with: proto)
        if subprotocol == .json {
            // Strict JSON, whatever the route and meta hold.
            #expect(try JSONSerialization.jsonObject(with: Data(encoded.readableBytesView)) is [String: Any])
        }
        #expect(try proto.decodeMessage(encoded) == message)
    }

    @Test("JSON: bodies with quotes, backslashes, control characters, NUL and non-ASCII round trip exactly")
    func jsonBodyEscaping() throws {
        let text = "quote\" back\\ slash/ nl\n tab\t nul\u{0} bell\u{7} é 😀 </script> \\u0041"
        let message = FerryMessage(type: .call, seq: 9, serviceMethod: "/a", bodyCodec: .plain, body: ByteBuffer(string: text))
        let encoded = try encode(message, with: json)
        // The payload is strict JSON: Foundation reads the same body back.
        let object = try #require(try JSONSerialization.jsonObject(with: Data(encoded.readableBytesView)) as? [String: Any])
        #expect(object["body"] as? String == text)
        let decoded = try json.decodeMessage(encoded)
        #expect(Array(decoded.body.readableBytesView) == Array(text.utf8))
    }

    @Test("protobuf: any body bytes round trip exactly")
    func protobufBinaryBody() throws {
        var generator = SeededRandomNumberGenerator(seed: 20)
        let bytes = (0..<4096).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let message = FerryMessage(type: .call, seq: 4, serviceMethod: "/blob", bodyCodec: .protobuf, body: ByteBuffer(bytes: bytes))
        #expect(try roundTrip(message, with: protobuf) == message)
    }

    @Test("protobuf: gzip and md5 filters apply to the body and are undone")
    func filtersRoundTrip() throws {
        let text = String(repeating: #"{"a":40,"b":2}"#, count: 200)
        let message = FerryMessage(
            type: .call, seq: 5, serviceMethod: "/math/add", bodyCodec: .json, body: ByteBuffer(string: text), filters: [.gzip, .md5])
        let encoded = try encode(message, with: protobuf)
        #expect(encoded.readableBytes < text.utf8.count / 4)
        let payload = try WebSocketPayload(serializedBytes: Array(encoded.readableBytesView))
        #expect(Array(payload.xferPipe) == [UInt8(ascii: "g"), UInt8(ascii: "m")])
        #expect(try protobuf.decodeMessage(encoded) == message)
    }

    @Test("JSON: filter ids travel as decimal bytes and apply to the body; a filter with binary output is refused")
    func jsonFilters() throws {
        // A filter whose output is text, to show the ids and the order on the JSON side.
        var filters = FerryFilterRegistry.standard
        filters.register(ReverseFilter())
        let proto = FerryWebSocketProto(subprotocol: .json, filters: filters)
        let message = FerryMessage(type: .push, seq: 6, serviceMethod: "/r", bodyCodec: .plain, body: ByteBuffer(string: "abc"), filters: [ReverseFilter.id])
        let encoded = try encode(message, with: proto)
        #expect(String(buffer: encoded).contains(#""body":"cba","xferPipe":[114]"#))
        #expect(try proto.decodeMessage(encoded) == message)

        // A gzip filter on the JSON sub-protocol gives a binary body: refused, nothing written.
        var gzipped = message
        gzipped.filters = [.gzip]
        var buffer = ByteBuffer(string: "kept")
        #expect(throws: FerryProtocolError.self) { try proto.encodeMessage(gzipped, into: &buffer) }
        #expect(String(buffer: buffer) == "kept")
    }

    // MARK: erpc's JSON writer

    @Test("JSON: erpc's writing, which escapes only quotes, is read as erpc meant it")
    func erpcEscapingAccepted() throws {
        // erpc's Pack: "body":"%s" of the body with `"` replaced by `\"` and nothing else.
        let body = "C:\\dir\\x \"q\" line1\nline2\ttab \u{1} \\u12 end"
        let erpcBody = body.replacingOccurrences(of: "\"", with: "\\\"")
        let payload = #"{"seq":7,"mtype":3,"serviceMethod":"/note","meta":"a=1","bodyCodec":115,"body":""# + erpcBody + #"","xferPipe":[]}"#
        #expect(throws: (any Error).self) { try JSONSerialization.jsonObject(with: Data(payload.utf8)) }
        let message = try json.decodeMessage(ByteBuffer(string: payload))
        #expect(String(buffer: message.body) == body)
        #expect(message.type == .push && message.seq == 7 && message.serviceMethod == "/note" && message.meta == ["a": "1"])
        #expect(message.bodyCodec == .plain)
    }

    @Test("JSON: a body with erpc's escaped quotes only, as in the specification's CALL, is read")
    func erpcQuotedBody() throws {
        let payload = #"{"seq":8,"mtype":1,"serviceMethod":"/x","meta":"","bodyCodec":106,"body":"{\"s\":\"hi\"}","xferPipe":[]}"#
        #expect(String(buffer: try json.decodeMessage(ByteBuffer(string: payload)).body) == #"{"s":"hi"}"#)
    }

    @Test("JSON: fields beyond seq and mtype may be left out or null; unknown keys are ignored")
    func optionalFields() throws {
        let message = try json.decodeMessage(ByteBuffer(string: #"{"seq":3,"mtype":3,"meta":null,"extra":{"a":[1]}}"#))
        #expect(message == FerryMessage(type: .push, seq: 3))
    }

    // MARK: Binary bodies

    @Test("a body that is not UTF-8 is refused on JSON, saying to use protobuf, and carried on protobuf")
    func binaryBody() throws {
        let message = FerryMessage(type: .call, seq: 1, serviceMethod: "/b", bodyCodec: .protobuf, body: ByteBuffer(bytes: [0x0A, 0xFF, 0xFE, 0x00]))
        var buffer = ByteBuffer(string: "kept")
        let error = try #require(throws: FerryProtocolError.self) { try json.encodeMessage(message, into: &buffer) }
        #expect(error.description.contains("protobuf sub-protocol"))
        #expect(String(buffer: buffer) == "kept")
        #expect(try roundTrip(message, with: protobuf) == message)
    }

    // MARK: Sizes

    @Test("a payload over the size limit is refused before it is parsed", arguments: FerryWebSocketProto.Subprotocol.allCases)
    func oversizedPayload(subprotocol: FerryWebSocketProto.Subprotocol) throws {
        let proto = FerryWebSocketProto(subprotocol: subprotocol, maximumMessageSize: 16)
        #expect(throws: FerryProtocolError.frameTooLarge(size: 17, limit: 16)) {
            try proto.decodeMessage(ByteBuffer(repeating: 0x7B, count: 17))
        }
        var buffer = ByteBuffer(string: "kept")
        #expect(throws: FerryProtocolError.self) { try proto.encodeMessage(Self.callMessage, into: &buffer) }
        #expect(String(buffer: buffer) == "kept")
    }

    @Test("a gzip body that inflates past the size limit is refused")
    func gzipBomb() throws {
        let small = FerryWebSocketProto(subprotocol: .protobuf, maximumMessageSize: 4096)
        let message = FerryMessage(type: .call, seq: 1, serviceMethod: "/z", body: ByteBuffer(repeating: 0, count: 100_000), filters: [.gzip])
        let encoded = try encode(message, with: protobuf)
        #expect(encoded.readableBytes < 4096)
        #expect(throws: FerryProtocolError.filter(.tooLarge(filter: .gzip, limit: 4096))) { try small.decodeMessage(encoded) }
    }

    // MARK: Message types

    @Test("an mtype outside the five known ones decodes, as in the raw proto, for the session to answer 405")
    func unknownMessageType() throws {
        let message = try json.decodeMessage(ByteBuffer(string: #"{"seq":1,"mtype":9,"serviceMethod":"","meta":"","bodyCodec":0,"body":"","xferPipe":[]}"#))
        #expect(message.type.rawValue == 9 && !message.type.isKnown)
        let pb = try protobuf.decodeMessage(ByteBuffer(bytes: [0x08, 0x01, 0x10, 0x09]))
        #expect(pb.type.rawValue == 9 && !pb.type.isKnown)
    }

    // MARK: Hostile input

    static let hostileJSON: [(String, [UInt8], FerryProtocolError?)] = [
        ("empty payload", [], nil),
        ("not JSON", Array("hello".utf8), nil),
        ("truncated", Array(callJSON.utf8.dropLast(5)), nil),
        ("an array", Array("[1,2]".utf8), nil),
        ("a string", Array(#""seq""#.utf8), nil),
        ("invalid UTF-8", Array(#"{"seq":1,"mtype":1,"body":""#.utf8) + [0xFF, 0xFE] + Array(#""}"#.utf8), nil),
        ("seq missing", Array(#"{"mtype":1}"#.utf8), .webSocketMalformed("seq", "missing")),
        ("mtype missing", Array(#"{"seq":1}"#.utf8), .webSocketMalformed("mtype", "missing")),
        ("seq a string", Array(#"{"seq":"1","mtype":1}"#.utf8), .invalidSeq),
        ("seq above Int32", Array(#"{"seq":2147483648,"mtype":1}"#.utf8), .invalidSeq),
        ("seq below Int32", Array(#"{"seq":-2147483649,"mtype":1}"#.utf8), .invalidSeq),
        ("seq a fraction", Array(#"{"seq":1.5,"mtype":1}"#.utf8), .invalidSeq),
        ("seq huge", Array(#"{"seq":1e400,"mtype":1}"#.utf8), nil),
        ("mtype above a byte", Array(#"{"seq":1,"mtype":256}"#.utf8), .webSocketMalformed("mtype", "not an integer from 0 to 255")),
        ("mtype negative", Array(#"{"seq":1,"mtype":-1}"#.utf8), .webSocketMalformed("mtype", "not an integer from 0 to 255")),
        ("mtype a string", Array(#"{"seq":1,"mtype":"call"}"#.utf8), .webSocketMalformed("mtype", "not an integer from 0 to 255")),
        ("serviceMethod a number", Array(#"{"seq":1,"mtype":1,"serviceMethod":5}"#.utf8), .webSocketMalformed("serviceMethod", "not a string")),
        ("meta an object", Array(#"{"seq":1,"mtype":1,"meta":{"k":"v"}}"#.utf8), .webSocketMalformed("meta", "not a string")),
        ("bodyCodec above a byte", Array(#"{"seq":1,"mtype":1,"bodyCodec":300}"#.utf8), .webSocketMalformed("bodyCodec", "not an integer from 0 to 255")),
        ("body a number", Array(#"{"seq":1,"mtype":1,"body":42}"#.utf8), .webSocketMalformed("body", "not a string")),
        ("xferPipe a string", Array(#"{"seq":1,"mtype":1,"xferPipe":"g"}"#.utf8), .webSocketMalformed("xferPipe", "not an array of integers from 0 to 255")),
        ("xferPipe id above a byte", Array(#"{"seq":1,"mtype":1,"xferPipe":[359]}"#.utf8), .webSocketMalformed("xferPipe", "not an array of integers from 0 to 255")),
        ("unknown filter", Array(#"{"seq":1,"mtype":1,"xferPipe":[120]}"#.utf8), .filter(.unknownFilter(FerryFilterID("x")))),
        ("corrupt gzip body", Array(#"{"seq":1,"mtype":1,"body":"not gzip","xferPipe":[103]}"#.utf8), nil),
        ("status a number", Array(#"{"seq":1,"mtype":2,"status":404}"#.utf8), .invalidQueryString(field: "status")),
        ("status code not a number", Array(#"{"seq":1,"mtype":2,"status":"code=abc"}"#.utf8), .invalidQueryString(field: "status")),
        ("status code above Int32", Array(#"{"seq":1,"mtype":2,"status":"code=4294967296"}"#.utf8), .invalidQueryString(field: "status")),
        ("lone surrogate", Array(#"{"seq":1,"mtype":1,"body":"\ud800"}"#.utf8), nil),
    ]

    @Test("JSON: hostile payloads are refused with a protocol error", arguments: hostileJSON)
    func hostileJSONPayload(name: String, bytes: [UInt8], expected: FerryProtocolError?) {
        let error = #expect(throws: FerryProtocolError.self, "\(name)") { try json.decodeMessage(ByteBuffer(bytes: bytes)) }
        if let expected { #expect(error == expected, "\(name)") }
    }

    static let hostileProtobuf: [(String, [UInt8], FerryProtocolError?)] = [
        ("truncated", Array(callProtobuf.dropLast(3)), nil),
        ("a length past the end", [0x32, 0x7F, 0x41], nil),
        ("an unfinished varint", [0x08, 0xFF], nil),
        ("an invalid wire type", [0x0F, 0x01], nil),
        ("field number 0", [0x00, 0x01], nil),
        ("JSON on the protobuf side", Array(callJSON.utf8), nil),
        ("serviceMethod not UTF-8", [0x08, 0x01, 0x10, 0x01, 0x1A, 0x02, 0xFF, 0xFE], nil),
        ("mtype above a byte", [0x08, 0x01, 0x10, 0xAC, 0x02], .webSocketMalformed("mtype", "not an integer from 0 to 255")),
        ("mtype negative", [0x08, 0x01, 0x10] + [UInt8](repeating: 0xFF, count: 9) + [0x01], .webSocketMalformed("mtype", "not an integer from 0 to 255")),
        ("bodyCodec above a byte", [0x08, 0x01, 0x10, 0x01, 0x28, 0x80, 0x02], .webSocketMalformed("bodyCodec", "not an integer from 0 to 255")),
        ("unknown filter", [0x08, 0x01, 0x10, 0x01, 0x3A, 0x01, 0x78], .filter(.unknownFilter(FerryFilterID("x")))),
        ("too many filters", [0x08, 0x01, 0x10, 0x01, 0x3A, 0x80, 0x02] + [UInt8](repeating: 0x67, count: 256), .fieldTooLong(field: "filter list", length: 256, limit: 255)),
        ("status code not a number", [0x08, 0x01, 0x10, 0x02, 0x42, 0x08] + Array("code=abc".utf8), .invalidQueryString(field: "status")),
    ]

    @Test("protobuf: hostile payloads are refused with a protocol error", arguments: hostileProtobuf)
    func hostileProtobufPayload(name: String, bytes: [UInt8], expected: FerryProtocolError?) {
        let error = #expect(throws: FerryProtocolError.self, "\(name)") { try protobuf.decodeMessage(ByteBuffer(bytes: bytes)) }
        if let expected { #expect(error == expected, "\(name)") }
    }

    @Test("random bytes never crash either decoder", arguments: FerryWebSocketProto.Subprotocol.allCases)
    func randomBytes(subprotocol: FerryWebSocketProto.Subprotocol) {
        let proto = FerryWebSocketProto(subprotocol: subprotocol, maximumMessageSize: 1024)
        var generator = SeededRandomNumberGenerator(seed: 24)
        for _ in 0..<2000 {
            let count = Int.random(in: 0...64, using: &generator)
            var bytes = (0..<count).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
            // Half start like a real payload, to reach past the first check.
            if Bool.random(using: &generator) {
                bytes = Array((subprotocol == .json ? Array(Self.callJSON.utf8) : Self.callProtobuf).prefix(count)) + bytes
            }
            do {
                _ = try proto.decodeMessage(ByteBuffer(bytes: bytes))
            } catch {
                #expect(error is FerryProtocolError)
            }
        }
    }
}

/// Reverses the bytes: a filter whose output is text when its input is.
private struct ReverseFilter: FerryTransferFilter {
    static let id = FerryFilterID("r")
    var id: FerryFilterID { Self.id }

    func encode(_ buffer: ByteBuffer, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        ByteBuffer(bytes: buffer.readableBytesView.reversed())
    }

    func decode(_ buffer: ByteBuffer, maximumSize: Int, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        ByteBuffer(bytes: buffer.readableBytesView.reversed())
    }
}
