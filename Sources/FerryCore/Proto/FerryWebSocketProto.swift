import Foundation
import NIOCore
import SwiftProtobuf

/// erpc v6's WebSocket mixer format: one Ferry message per WebSocket message, no size prefix.
///
/// The transport hands the whole payload of each WebSocket message to
/// ``decodeMessage(_:)`` and sends what ``encodeMessage(_:into:)`` appends as one binary
/// message, as erpc does (erpc accepts text messages too). Transfer filters apply to the body
/// alone, not to a header as in ``FerryRawProto``.
///
/// - JSON sub-protocol: `{"seq":1,"mtype":1,"serviceMethod":"/math/add","meta":"k=v",`
///   `"bodyCodec":106,"body":"{\"a\":40,\"b\":2}","xferPipe":[]}`. The body travels as a JSON
///   string, so it must be valid UTF-8 after its filters: binary bodies (protobuf, gzip) need
///   the protobuf sub-protocol. Bodies written by erpc, which escapes only `"`, are accepted.
/// - Protobuf sub-protocol: erpc's proto3 `payload` message (seq 1, mtype 2, serviceMethod 3,
///   meta 4, bodyCodec 5, body 6, xferPipe 7).
///
/// erpc carries no status on WebSocket; Ferry adds it (the raw proto's status string, in a
/// `status` key or field 8) whenever it is not a bare OK. erpc ignores it.
///
/// ```swift
/// let proto = FerryWebSocketProto(subprotocol: .protobuf)
/// var payload = ByteBuffer()
/// try proto.encodeMessage(message, into: &payload)
/// let decoded = try proto.decodeMessage(payload)
/// ```
public struct FerryWebSocketProto: Sendable {
    /// The two formats erpc offers; both ends must use the same one (there is no negotiation).
    public enum Subprotocol: String, Sendable, CaseIterable {
        /// One JSON object per message; erpc's default and what browsers use.
        case json
        /// One protobuf `payload` message per message; carries binary bodies.
        case protobuf
    }

    /// The format of every message.
    public let subprotocol: Subprotocol
    /// The largest payload accepted or produced, in bytes; also bounds a body after its
    /// filters are undone.
    public let maximumMessageSize: Int
    /// The filters this side can apply and undo.
    let filters: FerryFilterRegistry

    /// The most transfer filters one message may name, as in the raw proto.
    static let maximumFilterCount = Int(UInt8.max)

    private let allocator = ByteBufferAllocator()

    /// Creates the codec for one sub-protocol, with a payload size limit (default 16 MiB) and a
    /// filter registry.
    public init(subprotocol: Subprotocol = .json, maximumMessageSize: Int = 16 << 20, filters: FerryFilterRegistry = .standard) {
        precondition(maximumMessageSize > 0, "the message size limit must be positive")
        self.subprotocol = subprotocol
        self.maximumMessageSize = maximumMessageSize
        self.filters = filters
    }

    // MARK: Encoding

    /// Appends the payload of the one WebSocket message that carries `message`: the body after
    /// the message's transfer filters. On error nothing is appended.
    ///
    /// Throws ``FerryProtocolError``: `frameTooLarge` past ``maximumMessageSize``, `filter` when
    /// a filter is unknown or fails, and on the JSON sub-protocol an error naming the body when
    /// the filtered body is not valid UTF-8.
    public func encodeMessage(_ message: FerryMessage, into buffer: inout ByteBuffer) throws {
        guard message.filters.count <= Self.maximumFilterCount else {
            throw FerryProtocolError.fieldTooLong(field: "filter list", length: message.filters.count, limit: Self.maximumFilterCount)
        }
        let body = try filteredBody(of: message)
        guard body.readableBytes <= maximumMessageSize else {
            throw FerryProtocolError.frameTooLarge(size: body.readableBytes, limit: maximumMessageSize)
        }
        let payload: ByteBuffer
        switch subprotocol {
        case .json: payload = try jsonPayload(of: message, body: body)
        case .protobuf: payload = try protobufPayload(of: message, body: body)
        }
        guard payload.readableBytes <= maximumMessageSize else {
            throw FerryProtocolError.frameTooLarge(size: payload.readableBytes, limit: maximumMessageSize)
        }
        buffer.writeImmutableBuffer(payload)
    }

    /// The body with the message's filters applied, the last id first.
    private func filteredBody(of message: FerryMessage) throws -> ByteBuffer {
        try filters.apply(message.filters, to: message.body, allocator: allocator)
    }

    private func jsonPayload(of message: FerryMessage, body: ByteBuffer) throws -> ByteBuffer {
        guard let text = String(validating: body.readableBytesView, as: UTF8.self) else {
            throw FerryProtocolError.webSocketMalformed("body", "not UTF-8: binary bodies need the protobuf sub-protocol")
        }
        let payload = WebSocketJSONPayload(
            seq: message.seq,
            mtype: message.type.rawValue,
            serviceMethod: message.serviceMethod,
            meta: String(decoding: QueryString.encode(message.meta), as: UTF8.self),
            bodyCodec: message.bodyCodec.rawValue,
            body: text,
            xferPipe: message.filters.map(\.rawValue),
            status: Self.carriesStatus(message.status) ? String(decoding: QueryString.encode(message.status), as: UTF8.self) : nil
        )
        var buffer = allocator.buffer(capacity: 96 + message.serviceMethod.utf8.count + body.readableBytes)
        try payload.encode(into: &buffer)
        return buffer
    }

    private func protobufPayload(of message: FerryMessage, body: ByteBuffer) throws -> ByteBuffer {
        var payload = WebSocketPayload()
        payload.seq = message.seq
        payload.mtype = Int32(message.type.rawValue)
        payload.serviceMethod = message.serviceMethod
        payload.meta = Data(QueryString.encode(message.meta))
        payload.bodyCodec = Int32(message.bodyCodec.rawValue)
        payload.body = Data(body.readableBytesView)
        payload.xferPipe = Data(message.filters.map(\.rawValue))
        if Self.carriesStatus(message.status) {
            payload.status = String(decoding: QueryString.encode(message.status), as: UTF8.self)
        }
        let bytes: ProtobufBytes = try payload.serializedBytes()
        return bytes.buffer
    }

    /// Whether `status` is written: anything but a bare OK, so that no part of it is lost.
    private static func carriesStatus(_ status: FerryStatus) -> Bool {
        !(status.isOK && status.message.isEmpty && status.cause.isEmpty)
    }

    // MARK: Decoding

    /// Decodes the whole payload of one WebSocket message (erpc sends binary frames; text frames
    /// carry the same bytes), undoing the transfer filters. Throws ``FerryProtocolError``.
    ///
    /// A message type outside the five known ones decodes, as in the raw proto, so that the
    /// session can answer it with status 405; a value that is not a byte does not.
    public func decodeMessage(_ payload: ByteBuffer) throws -> FerryMessage {
        guard payload.readableBytes <= maximumMessageSize else {
            throw FerryProtocolError.frameTooLarge(size: payload.readableBytes, limit: maximumMessageSize)
        }
        switch subprotocol {
        case .json: return try decodeJSON(payload)
        case .protobuf: return try decodeProtobuf(payload)
        }
    }

    private func decodeJSON(_ payload: ByteBuffer) throws -> FerryMessage {
        let json = try WebSocketJSONPayload.decode(Data(payload.readableBytesView))
        var status = json.status ?? ""
        var meta = json.meta
        return try message(
            seq: json.seq,
            type: json.mtype,
            serviceMethod: json.serviceMethod,
            status: status.withUTF8 { try Self.decodeStatus(UnsafeRawBufferPointer($0)) },
            meta: meta.withUTF8 { QueryString.decodeMeta(UnsafeRawBufferPointer($0)) },
            bodyCodec: json.bodyCodec,
            body: ByteBuffer(string: json.body),
            filters: json.xferPipe
        )
    }

    private func decodeProtobuf(_ payload: ByteBuffer) throws -> FerryMessage {
        var options = BinaryDecodingOptions()
        options.discardUnknownFields = true
        let decoded: WebSocketPayload
        do {
            decoded = try WebSocketPayload(serializedBytes: ProtobufBytes(buffer: payload), options: options)
        } catch {
            throw FerryProtocolError.webSocketMalformed("protobuf payload", "\(error)")
        }
        guard let type = UInt8(exactly: decoded.mtype) else {
            throw FerryProtocolError.webSocketMalformed("mtype", "not an integer from 0 to 255")
        }
        guard let codec = UInt8(exactly: decoded.bodyCodec) else {
            throw FerryProtocolError.webSocketMalformed("bodyCodec", "not an integer from 0 to 255")
        }
        var status = decoded.status
        return try message(
            seq: decoded.seq,
            type: type,
            serviceMethod: decoded.serviceMethod,
            status: status.withUTF8 { try Self.decodeStatus(UnsafeRawBufferPointer($0)) },
            meta: decoded.meta.withUnsafeBytes { QueryString.decodeMeta($0) },
            bodyCodec: codec,
            body: ByteBuffer(bytes: decoded.body),
            filters: Array(decoded.xferPipe)
        )
    }

    /// The message of decoded fields, its body with the filters undone, the first id first.
    private func message(
        seq: Int32, type: UInt8, serviceMethod: String, status: FerryStatus, meta: FerryMeta, bodyCodec: UInt8, body: ByteBuffer,
        filters ids: [UInt8]
    ) throws -> FerryMessage {
        guard ids.count <= Self.maximumFilterCount else {
            throw FerryProtocolError.fieldTooLong(field: "filter list", length: ids.count, limit: Self.maximumFilterCount)
        }
        let filterIDs = ids.map(FerryFilterID.init(rawValue:))
        let body = try filters.undo(filterIDs, on: body, maximumSize: maximumMessageSize, allocator: allocator)
        return FerryMessage(
            type: FerryMessageType(rawValue: type), seq: seq, serviceMethod: serviceMethod, status: status, meta: meta,
            bodyCodec: FerryCodecID(rawValue: bodyCodec), body: body, filters: filterIDs
        )
    }

    /// The status of a status string; empty means OK. The status is the remote's.
    private static func decodeStatus(_ bytes: UnsafeRawBufferPointer) throws -> FerryStatus {
        do {
            return try QueryString.decodeStatus(bytes)
        } catch {
            throw FerryProtocolError.invalidQueryString(field: "status")
        }
    }
}

extension FerryProtocolError {
    /// A WebSocket payload, or one of its fields, that is missing, of the wrong type or out of
    /// range, or a body the JSON sub-protocol cannot carry.
    static func webSocketMalformed(_ field: String, _ reason: String) -> FerryProtocolError {
        .malformed(field: field, reason: reason)
    }
}
