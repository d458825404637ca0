import NIOCore

/// Escaping and parsing of the query strings used for status and meta on the wire.
///
/// Bytes `A-Z a-z 0-9 * - . _` are kept; every other byte becomes `%XX` (upper-case hex).
/// When decoding, `+` also means a space.
enum QueryString {
    enum DecodingError: Error, Equatable {
        case invalidStatusCode
    }

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

    /// The most bytes the escaping of `text` can take.
    static func escapedBound(_ text: String) -> Int {
        3 * text.utf8.count
    }

    static func escape(_ text: String, into writer: inout HeaderWriter) {
        var text = text
        text.withUTF8 { utf8 in
            // Most keys and values need no escaping: copy them in one go.
            if utf8.allSatisfy(isUnreserved) {
                writer.write(UnsafeRawBufferPointer(utf8))
                return
            }
            for byte in utf8 {
                if isUnreserved(byte) {
                    writer.write(byte)
                } else {
                    writer.write(UInt8(ascii: "%"))
                    writer.write(hexDigit(byte >> 4))
                    writer.write(hexDigit(byte & 0x0F))
                }
            }
        }
    }

    @inline(__always)
    private static func hexDigit(_ value: UInt8) -> UInt8 {
        value < 10 ? UInt8(ascii: "0") + value : UInt8(ascii: "A") + value - 10
    }

    static func escape(_ text: String) -> String {
        var buffer = ByteBuffer()
        HeaderWriter.append(to: &buffer, bound: escapedBound(text)) { escape(text, into: &$0) }
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

    /// `bytes` with `%XX` escapes and `+` decoded, as UTF-8 (invalid sequences repaired).
    static func unescape(_ bytes: UnsafeRawBufferPointer) -> String {
        // Most keys and values need no unescaping: read them as they are.
        if !bytes.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "%") }) {
            return String(decoding: bytes, as: UTF8.self)
        }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "+"):
                output.append(UInt8(ascii: " "))
                index += 1
            case UInt8(ascii: "%"):
                // A malformed escape is kept as it is, as erpc's own decoder does.
                if bytes.count - index >= 3, let high = hexValue(bytes[index + 1]),
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
    static func forEachPair(in bytes: UnsafeRawBufferPointer, _ pair: (String, String) throws -> Void) rethrows {
        var start = 0
        while start < bytes.count {
            // Simple scans, one per question: a single loop that tests each byte against four
            // values compiles to a jump table, one mispredicted branch per byte.
            var end = start
            while end < bytes.count && bytes[end] != UInt8(ascii: "&") { end += 1 }
            if end > start {
                let segment = bytes[start..<end]
                let equals = segment.firstIndex(of: UInt8(ascii: "="))
                let escaped = segment.contains { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }
                let keyEnd = equals ?? end
                let keyBytes = UnsafeRawBufferPointer(rebasing: bytes[start..<keyEnd])
                let valueBytes = equals.map { UnsafeRawBufferPointer(rebasing: bytes[($0 + 1)..<end]) }
                let key = escaped ? unescape(keyBytes) : String(decoding: keyBytes, as: UTF8.self)
                let value = valueBytes.map { escaped ? unescape($0) : String(decoding: $0, as: UTF8.self) } ?? ""
                // A pair with neither key nor value carries nothing (erpc drops it too).
                if !key.isEmpty || !value.isEmpty { try pair(key, value) }
            }
            start = end + 1
        }
    }

    // MARK: Meta

    /// The most bytes `meta` can take as a query string.
    static func bound(_ meta: FerryMeta) -> Int {
        var bound = 0
        for (key, value) in meta {
            bound += escapedBound(key) + escapedBound(value) + 2
        }
        return bound
    }

    /// Writes `meta` as a query string; at most ``bound(_:)-(FerryMeta)`` bytes.
    static func write(_ meta: FerryMeta, into writer: inout HeaderWriter) {
        var first = true
        for (key, value) in meta {
            if !first { writer.write(UInt8(ascii: "&")) }
            first = false
            escape(key, into: &writer)
            if !value.isEmpty {
                writer.write(UInt8(ascii: "="))
                escape(value, into: &writer)
            }
        }
    }

    /// `meta` as a query string.
    static func encode(_ meta: FerryMeta) -> [UInt8] {
        var buffer = ByteBuffer()
        HeaderWriter.append(to: &buffer, bound: bound(meta)) { write(meta, into: &$0) }
        return Array(buffer.readableBytesView)
    }

    /// The pairs of a meta query string; any bytes parse (a malformed escape is kept as it is).
    static func decodeMeta(_ bytes: UnsafeRawBufferPointer) -> FerryMeta {
        var meta = FerryMeta()
        forEachPair(in: bytes) { meta.add($0, $1) }
        return meta
    }

    // MARK: Status

    /// How a plain OK status is written.
    private static let okStatus: StaticString = "code=0"

    /// Whether `status` is written as the bare `code=0`.
    private static func isPlainOK(_ status: FerryStatus) -> Bool {
        status.isOK && status.message.isEmpty && status.cause.isEmpty
    }

    /// The most bytes `status` can take as a query string.
    static func bound(_ status: FerryStatus) -> Int {
        if isPlainOK(status) { return 6 }
        // "code=" and an Int32, "&msg=", "&cause=".
        return 5 + 11 + 5 + 7 + escapedBound(status.message) + escapedBound(status.cause)
    }

    /// `code=0` for OK; otherwise `code=N[&msg=…]&cause=…`, as erpc writes its statuses (the
    /// message only when it is not empty, the cause always); at most
    /// ``bound(_:)-(FerryStatus)`` bytes.
    static func write(_ status: FerryStatus, into writer: inout HeaderWriter) {
        if isPlainOK(status) {
            okStatus.withUTF8Buffer { writer.write(UnsafeRawBufferPointer($0)) }
            return
        }
        writer.write("code=")
        writer.write(String(status.code.rawValue))
        if !status.message.isEmpty {
            writer.write("&msg=")
            escape(status.message, into: &writer)
        }
        writer.write("&cause=")
        escape(status.cause, into: &writer)
    }

    /// `status` as a query string.
    static func encode(_ status: FerryStatus) -> [UInt8] {
        var buffer = ByteBuffer()
        HeaderWriter.append(to: &buffer, bound: bound(status)) { write(status, into: &$0) }
        return Array(buffer.readableBytesView)
    }

    /// The OK status as read from the wire.
    private static let remoteOK = FerryStatus(.ok, origin: .remote)

    /// Parses a status read from the wire: its ``FerryStatus/origin`` is
    /// ``FerryStatus/Origin/remote``, since the other peer wrote it.
    static func decodeStatus(_ bytes: UnsafeRawBufferPointer) throws -> FerryStatus {
        if bytes.isEmpty || okStatus.withUTF8Buffer({ bytes.elementsEqual(UnsafeRawBufferPointer($0)) }) { return remoteOK }
        var status = remoteOK
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
