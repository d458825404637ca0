/// The one-byte id of a body codec on the wire.
public struct FerryCodecID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The byte written on the wire.
    public let rawValue: UInt8

    /// Creates an id from its wire byte.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Creates an id from an ASCII character, e.g. `FerryCodecID("x")`.
    public init(_ character: Unicode.Scalar) {
        precondition(character.isASCII, "codec ids are single ASCII characters")
        self.rawValue = UInt8(character.value)
    }

    /// 0: no codec (empty body, or an error reply).
    public static let none = FerryCodecID(rawValue: 0)
    /// `j`: JSON through `Codable`.
    public static let json = FerryCodecID("j")
    /// `p`: protocol buffers through SwiftProtobuf messages.
    public static let protobuf = FerryCodecID("p")
    /// `s`: plain text or bytes, as they are.
    public static let plain = FerryCodecID("s")
    /// `f`: `application/x-www-form-urlencoded` through `Codable`.
    public static let form = FerryCodecID("f")

    /// A readable form, for logs and error messages.
    public var description: String {
        if rawValue == 0 { return "none" }
        if rawValue >= 0x21 && rawValue < 0x7F { return String(UnicodeScalar(rawValue)) }
        return "0x" + String(rawValue, radix: 16)
    }
}
