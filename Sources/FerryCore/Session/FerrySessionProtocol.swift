import NIOCore
import SwiftProtobuf

/// What code on either side of a connection can do with it: identify it, CALL and PUSH the
/// remote peer, close it. `FerrySession` in the `Ferry` module is the implementation.
public protocol FerrySessionProtocol: AnyObject, Sendable {
    /// The session ID: the remote address until ``setID(_:)`` changes it.
    var id: String { get }
    /// The remote address, e.g. `127.0.0.1:52100` or `unix:/tmp/app.sock`.
    var remoteAddress: String { get }
    /// The codecs used to encode and decode typed bodies.
    var codecs: FerryCodecRegistry { get }
    /// The codec used when a call names none.
    var defaultCodec: FerryCodecID { get }

    /// Changes the session ID. An older session with the same ID is closed (single login).
    func setID(_ newID: String)

    /// Sends a CALL with an encoded body and waits for the reply, the deadline or cancellation.
    ///
    /// A reply with any status is returned; failures on this side (timeout, cancellation,
    /// connection closed, write failed) are thrown as ``FerryStatus``.
    ///
    /// `call` and `push`, and the typed helpers below, run on the caller's executor (they are
    /// `nonisolated(nonsending)`): a call made on an actor or an event loop builds and queues
    /// its message there, with no hop to the global executor and back.
    nonisolated(nonsending) func call(_ serviceMethod: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws -> FerryReply

    /// Sends a PUSH with an encoded body; returns once it is written.
    nonisolated(nonsending) func push(_ serviceMethod: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws

    /// Closes the connection; pending calls fail with status 102.
    func close() async
}

// The typed helpers are inlinable: the caller's module specializes them for its session and
// body types, so a typed call adds no async frame, witness call or generic dispatch on top of
// `call(_:body:codec:options:)`.
extension FerrySessionProtocol {
    /// Calls `serviceMethod` with `args` and decodes the reply as `Reply`.
    ///
    /// Any non-OK reply status, and any local failure, is thrown as ``FerryStatus``.
    /// A `ByteBuffer` argument is sent as is with the options' codec id.
    ///
    /// ```swift
    /// let sum: Int = try await session.call("/math/add", Add(a: 1, b: 2))
    /// ```
    @inlinable
    nonisolated(nonsending) public func call<Args, Reply>(
        _ serviceMethod: String, _ args: Args, as type: Reply.Type = Reply.self,
        options: FerryCallOptions = FerryCallOptions()
    ) async throws -> Reply {
        try await callForReply(serviceMethod, args, options: options).decode(type)
    }

    /// Calls `serviceMethod` with `args` and returns the whole reply (status, meta, body, cost)
    /// without throwing for a non-OK status.
    @inlinable
    nonisolated(nonsending) public func callForReply<Args>(
        _ serviceMethod: String, _ args: Args, options: FerryCallOptions = FerryCallOptions()
    ) async throws -> FerryReply {
        let codec = options.codec ?? defaultCodec
        let body = Args.self == Void.self ? ByteBuffer() : try encodeBody { try codecs.encode(args, codec: codec) }
        return try await call(serviceMethod, body: body, codec: codec, options: options)
    }

    /// Pushes `args` to `serviceMethod`; returns once the message is written.
    @inlinable
    nonisolated(nonsending) public func push<Args>(_ serviceMethod: String, _ args: Args, options: FerryCallOptions = FerryCallOptions()) async throws {
        let codec = options.codec ?? defaultCodec
        let body = Args.self == Void.self ? ByteBuffer() : try encodeBody { try codecs.encode(args, codec: codec) }
        try await push(serviceMethod, body: body, codec: codec, options: options)
    }

    @usableFromInline
    func encodeBody(_ encode: () throws -> ByteBuffer) throws -> ByteBuffer {
        do {
            return try encode()
        } catch {
            throw FerryStatus.badMessage("cannot encode the body: \(error)")
        }
    }
}

extension FerrySessionProtocol {
    /// Calls `serviceMethod` with a protobuf message and decodes the reply as the protobuf
    /// message `Reply`: the same as the unconstrained ``call(_:_:as:options:)``, with no search
    /// for the types' conformances per call when the body codec is ``FerryProtobufCodec``.
    @inlinable
    nonisolated(nonsending) public func call<Args: SwiftProtobuf.Message, Reply: SwiftProtobuf.Message>(
        _ serviceMethod: String, _ args: Args, as type: Reply.Type = Reply.self,
        options: FerryCallOptions = FerryCallOptions()
    ) async throws -> Reply {
        try await callForReply(serviceMethod, args, options: options).decode(type)
    }

    /// Calls `serviceMethod` with a protobuf message and returns the whole reply: the same as
    /// the unconstrained ``callForReply(_:_:options:)``, with no search for the message type's
    /// conformance per call when the body codec is ``FerryProtobufCodec``.
    @inlinable
    nonisolated(nonsending) public func callForReply<Args: SwiftProtobuf.Message>(
        _ serviceMethod: String, _ args: Args, options: FerryCallOptions = FerryCallOptions()
    ) async throws -> FerryReply {
        let codec = options.codec ?? defaultCodec
        let body = try encodeBody { try codecs.encode(args, codec: codec) }
        return try await call(serviceMethod, body: body, codec: codec, options: options)
    }

    /// Pushes a protobuf message to `serviceMethod`: the same as the unconstrained
    /// ``push(_:_:options:)``, with no search for the message type's conformance per push when
    /// the body codec is ``FerryProtobufCodec``.
    @inlinable
    nonisolated(nonsending) public func push<Args: SwiftProtobuf.Message>(
        _ serviceMethod: String, _ args: Args, options: FerryCallOptions = FerryCallOptions()
    ) async throws {
        let codec = options.codec ?? defaultCodec
        let body = try encodeBody { try codecs.encode(args, codec: codec) }
        try await push(serviceMethod, body: body, codec: codec, options: options)
    }
}
