/// The kind of a message on the wire.
///
/// Unknown values are representable so that a receiver can answer them with status 405 instead of
/// failing to decode the frame.
public struct FerryMessageType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The byte written on the wire.
    public let rawValue: UInt8

    /// Creates a message type from its wire byte.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// A request that expects a ``reply``.
    public static let call = FerryMessageType(rawValue: 1)
    /// The answer to a ``call``; carries the call's seq.
    public static let reply = FerryMessageType(rawValue: 2)
    /// A one-way message.
    public static let push = FerryMessageType(rawValue: 3)
    /// The first message of the optional auth handshake.
    public static let authCall = FerryMessageType(rawValue: 4)
    /// The answer to an ``authCall``.
    public static let authReply = FerryMessageType(rawValue: 5)

    /// Whether this is one of the five types defined by the protocol.
    public var isKnown: Bool { (1...5).contains(rawValue) }

    /// A short lower-case name, used in logs.
    public var description: String {
        switch rawValue {
        case 1: "call"
        case 2: "reply"
        case 3: "push"
        case 4: "auth-call"
        case 5: "auth-reply"
        default: "type(\(rawValue))"
        }
    }
}
