import NIOCore

/// Escaping and parsing of the query strings used for status and meta on the wire.
///
/// Bytes `A-Z a-z 0-9 * - . _` are kept; every other byte becomes `%XX` (upper-case hex).
/// When decoding, `+` also means a space.
enum QueryString {
    enum DecodingError: Error, Equatable {
        case invalidStatusCode
    }

    private static let hexDigits: [UInt8] = Array("0123456789ABCDEF".utf8)

    @inline(__always)
    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "*"), UInt8(ascii: "-"),
            UInt8(ascii: "."), UInt8(ascii: "_"):
            true
        default:
            false
        }
    }

    static func escape(_ text: String, into buffer: inout ByteBuffer) {
        var text = text
        // Most keys and values need no escaping: copy them in one go.
        let copied = text.withUTF8 { utf8 in
            guard utf8.allSatisfy(isUnreserved) else { return false }
            buffer.writeBytes(utf8)
            return true
        }
        if copied { return }
        for byte in text.utf8 {
            if isUnreserved(byte) {
                buffer.writeInteger(byte)
            } else {
                buffer.writeInteger(UInt8(ascii: "%"))
                buffer.writeInteger(hexDigits[Int(byte >> 4)])
                buffer.writeInteger(hexDigits[Int(byte & 0x0F)])
            }
        }
    }

    static func escape(_ text: String) -> String {
        var buffer = ByteBuffer()
        escape(text, into: &buffer)
        return String(buffer: buffer)
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    static func unescape<Bytes: Collection>(_ bytes: Bytes) -> String
    where Bytes.Element == UInt8, Bytes.Index == Int {
        // Most keys and values need no unescaping: read them as they are.
        if !bytes.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "%") }) {
            return bytes.withContiguousStorageIfAvailable { String(decoding: $0, as: UTF8.self) }
                ?? String(decoding: bytes, as: UTF8.self)
        }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "+"):
                output.append(UInt8(ascii: " "))
                index += 1
            case UInt8(ascii: "%"):
                // A malformed escape is kept as it is, as erpc's own decoder does.
                if bytes.endIndex - index >= 3, let high = hexValue(bytes[index + 1]),
                    let low = hexValue(bytes[index + 2])
                {
                    output.append(high << 4 | low)
                    index += 3
                } else {
                    output.append(byte)
                    index += 1
                }
            default:
                output.append(byte)
                index += 1
            }
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Splits `a=1&b=2` into unescaped pairs and hands them to `pair` in order. Empty segments
    /// and `=` alone are skipped.
    static func forEachPair<Bytes: Collection>(in bytes: Bytes, _ pair: (String, String) throws -> Void) rethrows
    where Bytes.Element == UInt8, Bytes.Index == Int, Bytes.SubSequence: Collection, Bytes.SubSequence.Index == Int {
        var start = bytes.startIndex
        while start < bytes.endIndex {
            var end = start
            while end < bytes.endIndex && bytes[end] != UInt8(ascii: "&") { end += 1 }
            if end > start {
                var equals = start
                while equals < end && bytes[equals] != UInt8(ascii: "=") { equals += 1 }
                let key = unescape(bytes[start..<equals])
                let value = equals < end ? unescape(bytes[(equals + 1)..<end]) : ""
                // A pair with neither key nor value carries nothing (erpc drops it too).
                if !key.isEmpty || !value.isEmpty { try pair(key, value) }
            }
            start = end + 1
        }
    }

    // MARK: Meta

    /// Writes `meta` as a query string at the end of `buffer`.
    static func write(_ meta: FerryMeta, into buffer: inout ByteBuffer) {
        var first = true
        for (key, value) in meta {
            if !first { buffer.writeInteger(UInt8(ascii: "&")) }
            first = false
            escape(key, into: &buffer)
            if !value.isEmpty {
                buffer.writeInteger(UInt8(ascii: "="))
                escape(value, into: &buffer)
            }
        }
    }

    /// `meta` as a query string.
    static func encode(_ meta: FerryMeta) -> [UInt8] {
        var buffer = ByteBuffer()
        write(meta, into: &buffer)
        return Array(buffer.readableBytesView)
    }

    /// The pairs of a meta query string; any bytes parse (a malformed escape is kept as it is).
    static func decodeMeta<Bytes: Collection>(_ bytes: Bytes) -> FerryMeta
    where Bytes.Element == UInt8, Bytes.Index == Int, Bytes.SubSequence: Collection, Bytes.SubSequence.Index == Int {
        var meta = FerryMeta()
        forEachPair(in: bytes) { meta.add($0, $1) }
        return meta
    }

    // MARK: Status

    static let okStatus: [UInt8] = Array("code=0".utf8)

    /// `code=0` for OK; otherwise `code=N[&msg=…]&cause=…`, as erpc writes its statuses (the
    /// message only when it is not empty, the cause always).
    static func write(_ status: FerryStatus, into buffer: inout ByteBuffer) {
        if status.isOK && status.message.isEmpty && status.cause.isEmpty {
            buffer.writeBytes(okStatus)
            return
        }
        buffer.writeString("code=\(status.code.rawValue)")
        if !status.message.isEmpty {
            buffer.writeString("&msg=")
            escape(status.message, into: &buffer)
        }
        buffer.writeString("&cause=")
        escape(status.cause, into: &buffer)
    }

    /// `status` as a query string.
    static func encode(_ status: FerryStatus) -> [UInt8] {
        var buffer = ByteBuffer()
        write(status, into: &buffer)
        return Array(buffer.readableBytesView)
    }

    static func decodeStatus<Bytes: Collection>(_ bytes: Bytes) throws -> FerryStatus
    where Bytes.Element == UInt8, Bytes.Index == Int, Bytes.SubSequence: Collection, Bytes.SubSequence.Index == Int {
        if bytes.isEmpty || bytes.elementsEqual(okStatus) { return .ok }
        var status = FerryStatus.ok
        try forEachPair(in: bytes) { key, value in
            switch key {
            case "code":
                guard let code = Int32(value) else { throw DecodingError.invalidStatusCode }
                status.code = FerryStatus.Code(code)
            case "msg": status.message = value
            case "cause": status.cause = value
            default: break
            }
        }
        return status
    }
}
