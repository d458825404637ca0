import NIOCore

/// Frames messages to bytes and back. ``FerryRawProto`` (erpc v6 compatible) is the default;
/// implement this protocol to plug in another framing.
public protocol FerryProto: Sendable {
    /// A short name for logs, e.g. `raw`.
    var name: String { get }

    /// Removes one whole frame from the front of `buffer` and returns its message, or returns nil
    /// without consuming anything when the frame is not complete yet.
    ///
    /// Throws ``FerryProtocolError`` for input that can never become a valid frame; the session
    /// is then closed.
    func decodeMessage(from buffer: inout ByteBuffer) throws -> FerryMessage?

    /// Appends the frame of `message` to `buffer`. On error nothing is appended.
    func encodeMessage(_ message: FerryMessage, into buffer: inout ByteBuffer) throws
}

/// Input that breaks the wire protocol. The receiver answers nothing, closes the session and
/// reports this reason.
public enum FerryProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The declared frame size is below the smallest possible frame.
    case frameTooSmall(size: Int)
    /// The declared (or produced) frame size is above the size limit.
    case frameTooLarge(size: Int, limit: Int)
    /// A field's declared length runs past the end of the frame.
    case truncated(field: String)
    /// The seq is not a base-36 `Int32`.
    case invalidSeq
    /// The status or meta query string is malformed.
    case invalidQueryString(field: String)
    /// A field is longer than its length prefix allows.
    case fieldTooLong(field: String, length: Int, limit: Int)
    /// The connection ended in the middle of a frame.
    case incompleteFrameAtClose(bufferedBytes: Int)
    /// A transfer filter refused the frame.
    case filter(FerryFilterError)
    /// A field is present but not what the format allows (a WebSocket payload's field of the
    /// wrong type, a binary body on the JSON sub-protocol).
    case malformed(field: String, reason: String)

    /// A readable form, for logs and error messages.
    public var description: String {
        switch self {
        case .frameTooSmall(let size): "frame size \(size) is below the minimum"
        case .frameTooLarge(let size, let limit): "frame size \(size) exceeds the limit of \(limit) bytes"
        case .truncated(let field): "\(field) runs past the end of the frame"
        case .invalidSeq: "seq is not a base-36 int32"
        case .invalidQueryString(let field): "malformed \(field) query string"
        case .fieldTooLong(let field, let length, let limit): "\(field) is \(length) bytes, limit \(limit)"
        case .incompleteFrameAtClose(let bytes): "connection closed mid-frame with \(bytes) bytes buffered"
        case .filter(let error): error.description
        case .malformed(let field, let reason): "\(field): \(reason)"
        }
    }
}
