import Foundation
import NIOCore

/// One message of erpc v6's WebSocket JSON sub-protocol, as the JSON object travels:
///
/// ```
/// {"seq":1,"mtype":1,"serviceMethod":"/math/add","meta":"k=v","bodyCodec":106,"body":"{\"a\":40,\"b\":2}","xferPipe":[]}
/// ```
///
/// `status` is Ferry's addition, present only when the status is not a bare OK. Decoding checks
/// every field and throws ``FerryProtocolError`` naming the field; `seq` and `mtype` are
/// required, the others default to empty as a proto3 field does (erpc always sends all seven).
struct WebSocketJSONPayload: Decodable, Equatable {
    var seq: Int32
    var mtype: UInt8
    var serviceMethod: String = ""
    /// The URL-encoded meta string.
    var meta: String = ""
    var bodyCodec: UInt8 = 0
    /// The body after the transfer filters; valid UTF-8 by construction.
    var body: String = ""
    var xferPipe: [UInt8] = []
    /// The raw proto's status string, when the status is not a bare OK.
    var status: String?

    // In erpc's order.
    enum CodingKeys: String, CodingKey {
        case seq, mtype, serviceMethod, meta, bodyCodec, body, xferPipe, status
    }

    init(seq: Int32, mtype: UInt8, serviceMethod: String, meta: String, bodyCodec: UInt8, body: String, xferPipe: [UInt8], status: String?) {
        self.seq = seq
        self.mtype = mtype
        self.serviceMethod = serviceMethod
        self.meta = meta
        self.bodyCodec = bodyCodec
        self.body = body
        self.xferPipe = xferPipe
        self.status = status
    }

    init(from decoder: any Decoder) throws {
        let container: KeyedDecodingContainer<CodingKeys>
        do {
            container = try decoder.container(keyedBy: CodingKeys.self)
        } catch {
            throw FerryProtocolError.webSocketMalformed("JSON payload", "not a JSON object")
        }
        do {
            seq = try container.decode(Int32.self, forKey: .seq)
        } catch DecodingError.keyNotFound {
            throw FerryProtocolError.webSocketMalformed("seq", "missing")
        } catch {
            throw FerryProtocolError.invalidSeq
        }
        mtype = try Self.required(UInt8.self, .mtype, in: container, expecting: "an integer from 0 to 255")
        serviceMethod = try Self.optional(String.self, .serviceMethod, in: container, expecting: "a string") ?? ""
        meta = try Self.optional(String.self, .meta, in: container, expecting: "a string") ?? ""
        bodyCodec = try Self.optional(UInt8.self, .bodyCodec, in: container, expecting: "an integer from 0 to 255") ?? 0
        body = try Self.optional(String.self, .body, in: container, expecting: "a string") ?? ""
        xferPipe = try Self.optional([UInt8].self, .xferPipe, in: container, expecting: "an array of integers from 0 to 255") ?? []
        do {
            status = try container.decodeIfPresent(String.self, forKey: .status)
        } catch {
            throw FerryProtocolError.invalidQueryString(field: "status")
        }
    }

    private static func required<Value: Decodable>(
        _ type: Value.Type, _ key: CodingKeys, in container: KeyedDecodingContainer<CodingKeys>, expecting: String
    ) throws -> Value {
        guard let value = try optional(type, key, in: container, expecting: expecting) else {
            throw FerryProtocolError.webSocketMalformed(key.stringValue, "missing")
        }
        return value
    }

    /// The value of `key`; nil when it is absent or null.
    private static func optional<Value: Decodable>(
        _ type: Value.Type, _ key: CodingKeys, in container: KeyedDecodingContainer<CodingKeys>, expecting: String
    ) throws -> Value? {
        do {
            return try container.decodeIfPresent(type, forKey: key)
        } catch {
            throw FerryProtocolError.webSocketMalformed(key.stringValue, "not \(expecting)")
        }
    }

    // MARK: Bytes

    /// Appends the payload as compact JSON with the keys in erpc's order. `JSONEncoder` does not
    /// keep the order of keys, so the object is laid out here and only the values that may need
    /// escaping, the route and the body, go through it. Numbers need none, and neither do the
    /// meta and status query strings, whose bytes are all letters, digits and `*-._%=&`.
    func encode(into buffer: inout ByteBuffer) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        buffer.writeString(#"{"seq":"#)
        buffer.writeString(String(seq))
        buffer.writeString(#","mtype":"#)
        buffer.writeString(String(mtype))
        buffer.writeString(#","serviceMethod":"#)
        buffer.writeBytes(try encoder.encode(serviceMethod))
        buffer.writeString(#","meta":""#)
        buffer.writeString(meta)
        buffer.writeString(#"","bodyCodec":"#)
        buffer.writeString(String(bodyCodec))
        buffer.writeString(#","body":"#)
        buffer.writeBytes(try encoder.encode(body))
        buffer.writeString(#","xferPipe":["#)
        buffer.writeString(xferPipe.map { String($0) }.joined(separator: ","))
        buffer.writeString("]")
        if let status {
            buffer.writeString(#","status":""#)
            buffer.writeString(status)
            buffer.writeString(#"""#)
        }
        buffer.writeString("}")
    }

    /// Decodes `json`, accepting erpc's own writing of it as well as strict JSON.
    static func decode(_ json: Data) throws -> WebSocketJSONPayload {
        do {
            return try decodeStrictly(json)
        } catch {
            // Not strict JSON (the parser may find out only when it reads a field): erpc escapes
            // only `"` inside `body`, leaving backslashes and control characters as they are.
            // Read its strings the way it meant them.
            guard let repaired = ErpcJSONStrings.repaired(json) else { throw protocolError(error) }
            do {
                return try decodeStrictly(repaired)
            } catch {
                throw protocolError(error)
            }
        }
    }

    /// `error` if it is already a protocol error (a field was wrong), else the JSON parser's
    /// verdict that the payload is not JSON.
    private static func protocolError(_ error: any Error) -> FerryProtocolError {
        (error as? FerryProtocolError) ?? .webSocketMalformed("JSON payload", "not JSON")
    }

    private static func decodeStrictly(_ json: Data) throws -> WebSocketJSONPayload {
        try JSONDecoder().decode(WebSocketJSONPayload.self, from: json)
    }
}

/// Turns the strings of erpc's JSON writer into strict JSON.
///
/// erpc writes `body` as `"` + the body with each `"` turned into `\"` + `"`, so a body holding a
/// backslash or a control character arrives as a string that strict JSON refuses. Inside
/// strings, this escapes each control character and each backslash that does not start a valid
/// JSON escape, so that the string decodes to the bytes erpc had. A backslash that does start a
/// valid escape cannot be told apart from one erpc meant literally; it is read as the escape
/// (and a body holding `\"` or ending in `\` breaks erpc's JSON altogether).
/// Nothing outside strings is touched: the JSON parser still judges the structure.
enum ErpcJSONStrings {
    /// `json` with its strings repaired, or nil when there was nothing to repair.
    static func repaired(_ json: Data) -> Data? {
        var output: [UInt8] = []
        var changed = false
        json.withUnsafeBytes { bytes in
            output.reserveCapacity(bytes.count + 16)
            var inString = false
            var index = 0
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                guard inString else {
                    if byte == UInt8(ascii: "\"") { inString = true }
                    output.append(byte)
                    continue
                }
                switch byte {
                case UInt8(ascii: "\""):
                    inString = false
                    output.append(byte)
                case UInt8(ascii: "\\"):
                    let length = validEscapeLength(bytes, at: index)
                    if length > 0 {
                        output.append(byte)
                        output.append(contentsOf: bytes[index..<(index + length)])
                        index += length
                    } else {
                        output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
                        changed = true
                    }
                case 0..<0x20:
                    let hex = Array("0123456789abcdef".utf8)
                    output.append(contentsOf: Array("\\u00".utf8))
                    output.append(hex[Int(byte >> 4)])
                    output.append(hex[Int(byte & 0x0F)])
                    changed = true
                default:
                    output.append(byte)
                }
            }
        }
        return changed ? Data(output) : nil
    }

    /// How many bytes after a backslash at `index - 1` form a valid JSON escape; 0 for none.
    private static func validEscapeLength(_ bytes: UnsafeRawBufferPointer, at index: Int) -> Int {
        guard index < bytes.count else { return 0 }
        switch bytes[index] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
            UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            return 1
        case UInt8(ascii: "u"):
            guard index + 4 < bytes.count else { return 0 }
            let isHex = bytes[(index + 1)...(index + 4)].allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"),
                    UInt8(ascii: "A")...UInt8(ascii: "F"):
                    true
                default:
                    false
                }
            }
            return isHex ? 5 : 0
        default:
            return 0
        }
    }
}
