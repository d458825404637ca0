/// The seq field: an `Int32` in base 36, lower-case, `-` for negatives (Go's
/// `strconv.FormatInt(int64(seq), 36)`).
enum Base36 {
    /// Writes `value` into `output`; returns the number of bytes (at most 7).
    static func write(_ value: Int32, into output: inout (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) -> Int {
        var count = value < 0 ? 1 : 0
        var remaining = value.magnitude
        repeat {
            count += 1
            remaining /= 36
        } while remaining > 0
        withUnsafeMutableBytes(of: &output) { raw in
            var magnitude = value.magnitude
            var index = count
            repeat {
                index -= 1
                let digit = UInt8(truncatingIfNeeded: magnitude % 36)
                raw[index] = digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10
                magnitude /= 36
            } while magnitude > 0
            if value < 0 { raw[0] = UInt8(ascii: "-") }
        }
        return count
    }

    static func encode(_ value: Int32) -> [UInt8] {
        var storage: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0)
        let count = write(value, into: &storage)
        return withUnsafeBytes(of: storage) { Array($0.prefix(count)) }
    }

    /// Parses base-36 digits (either case) with an optional leading `-`; nil when not an `Int32`.
    static func parse<Bytes: Collection>(_ bytes: Bytes) -> Int32? where Bytes.Element == UInt8 {
        var iterator = bytes.makeIterator()
        guard var byte = iterator.next() else { return nil }
        var negative = false
        if byte == UInt8(ascii: "-") {
            negative = true
            guard let next = iterator.next() else { return nil }
            byte = next
        }
        var magnitude: Int64 = 0
        while true {
            let digit: Int64
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = Int64(byte - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): digit = Int64(byte - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): digit = Int64(byte - UInt8(ascii: "A") + 10)
            default: return nil
            }
            magnitude = magnitude * 36 + digit
            guard magnitude <= Int64(Int32.max) + 1 else { return nil }
            guard let next = iterator.next() else { break }
            byte = next
        }
        let value = negative ? -magnitude : magnitude
        guard let result = Int32(exactly: value) else { return nil }
        return result
    }
}
