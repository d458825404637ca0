/// The seq field: an `Int32` in base 36, lower-case, `-` for negatives (Go's
/// `strconv.FormatInt(int64(seq), 36)`).
enum Base36 {
    private static let digits: [UInt8] = Array("0123456789abcdefghijklmnopqrstuvwxyz".utf8)

    /// Writes `value` into `output`; returns the number of bytes (at most 7).
    static func write(_ value: Int32, into output: inout (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) -> Int {
        var magnitude = value.magnitude
        var reversed: [UInt8] = []
        reversed.reserveCapacity(7)
        repeat {
            reversed.append(digits[Int(magnitude % 36)])
            magnitude /= 36
        } while magnitude > 0
        if value < 0 { reversed.append(UInt8(ascii: "-")) }
        withUnsafeMutableBytes(of: &output) { raw in
            for (index, byte) in reversed.reversed().enumerated() { raw[index] = byte }
        }
        return reversed.count
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
