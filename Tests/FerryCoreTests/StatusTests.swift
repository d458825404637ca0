import NIOCore
import Testing

@testable import FerryCore

private struct Point: Codable, Equatable, Sendable {
    var x: Int
    var y: Int
}

private struct Thrown: Error, Equatable {
    var id: Int
}

@Suite("Statuses: where they came from, equality, factories")
struct StatusTests {
    /// The framework's factories with the code and message each must keep on the wire.
    static let factories: [(FerryStatus, Int32, String)] = [
        (.unknown(), -1, "Unknown Error"),
        (.invalidOperation(), 1, "Invalid Operation"),
        (.wrongConnection(), 100, "Wrong Connection"),
        (.connectionClosed(), 102, "Connection Closed"),
        (.writeFailed(), 104, "Write Failed"),
        (.slowConsumer(), 104, "Slow Consumer"),
        (.dialFailed(), 105, "Dial Failed"),
        (.shuttingDown(), 106, "Shutting Down"),
        (.badMessage(), 400, "Bad Message"),
        (.invalidHeartbeatRate(), 400, "Invalid Heartbeat Rate"),
        (.undecodableReply(), 400, "Undecodable Reply"),
        (.unauthorized(), 401, "Unauthorized"),
        (.notFound(), 404, "Not Found"),
        (.messageTypeNotAllowed(), 405, "Message Type Not Allowed"),
        (.timedOut(), 408, "Timeout"),
        (.cancelled(), 499, "Cancelled"),
        (.internalServerError(), 500, "Internal Server Error"),
        (.badGateway(), 502, "Bad Gateway"),
        (.overloaded(), 503, "Overloaded"),
        (.deadlineExceeded(), 504, "Deadline Exceeded"),
    ]

    @Test("each factory keeps the code and message written on the wire today", arguments: 0..<factories.count)
    func factoryMessages(index: Int) {
        let (status, code, message) = Self.factories[index]
        #expect(status.code.rawValue == code)
        #expect(status.message == message)
    }

    @Test("factories take the cause, the origin and the underlying error; a status raised here is local unless said otherwise")
    func factoryArguments() throws {
        let status = FerryStatus.timedOut("no reply within 1 s", origin: .localAfterSending, underlyingError: Thrown(id: 7))
        #expect(status.cause == "no reply within 1 s")
        #expect(status.origin == .localAfterSending)
        #expect(try #require(status.underlyingError as? Thrown) == Thrown(id: 7))

        #expect(FerryStatus.dialFailed("x").origin == .local)
        #expect(FerryStatus(.notFound, "Not Found").origin == .local)
        #expect(FerryStatus(code: 1234).origin == .local && FerryStatus(code: 1234).underlyingError == nil)
        #expect(FerryStatus.cancelled().cause == "the calling task was cancelled")
        #expect(FerryStatus.undecodableReply().origin == .localAfterSending)
    }

    @Test("equality and hashing take code, message and cause; origin and underlying error do not")
    func equality() {
        let remote = FerryStatus(.connectionClosed, "Connection Closed", cause: "gone", origin: .remote)
        let local = FerryStatus.connectionClosed("gone", origin: .localAfterSending, underlyingError: Thrown(id: 1))
        #expect(remote == local)
        #expect(remote.hashValue == local.hashValue)
        #expect(Set([remote, local]).count == 1)
        #expect(remote != FerryStatus.connectionClosed("other"))
        #expect(remote != FerryStatus(.connectionClosed, "Closed", cause: "gone"))
        #expect(remote != FerryStatus(.writeFailed, "Connection Closed", cause: "gone"))
    }

    @Test("a remote status prints as before; a local one says it was raised here, and whether after sending")
    func description() {
        #expect(FerryStatus(.notFound, "Not Found", cause: "/a", origin: .remote).description == #"404: "Not Found" (cause: "/a")"#)
        #expect(FerryStatus(.ok, origin: .remote).description == #"0: """#)
        #expect(FerryStatus.dialFailed("refused").description == #"105: "Dial Failed" (cause: "refused") [local]"#)
        #expect(
            FerryStatus.connectionClosed("reset", origin: .localAfterSending).description
                == #"102: "Connection Closed" (cause: "reset") [local, after sending]"#)
    }

    @Test("a status read from the wire is the remote's: in the query string and in a decoded reply frame")
    func decodedStatusIsRemote() throws {
        let bytes = QueryString.encode(FerryStatus(code: 503, message: "Overloaded", cause: "busy"))
        let decoded = try bytes.withUnsafeBytes(QueryString.decodeStatus)
        #expect(decoded.origin == .remote)
        #expect(decoded == FerryStatus(.unavailable, "Overloaded", cause: "busy"))
        #expect(try Array("code=0".utf8).withUnsafeBytes(QueryString.decodeStatus).origin == .remote)
        #expect(try [UInt8]().withUnsafeBytes(QueryString.decodeStatus).origin == .remote)

        let proto = FerryRawProto()
        for status in [FerryStatus.ok, .notFound("/x"), .connectionClosed("upstream lost")] {
            var buffer = ByteBuffer()
            try proto.encodeMessage(FerryMessage(type: .reply, seq: 9, status: status), into: &buffer)
            let message = try #require(try proto.decodeMessage(from: &buffer))
            #expect(message.status == status)
            #expect(message.status.origin == .remote, "\(status)")
            #expect(message.status.underlyingError == nil)
        }
    }
}

@Suite("Decoding a reply")
struct ReplyDecodingTests {
    let codecs = FerryCodecRegistry.standard

    /// A reply as the session hands it over: read from the wire, so its status is the remote's.
    func received(status: FerryStatus = .ok, codec: FerryCodecID = .json, body: String = "") throws -> FerryReply {
        let proto = FerryRawProto()
        var buffer = ByteBuffer()
        let sent = FerryMessage(type: .reply, seq: 1, status: status, bodyCodec: codec, body: ByteBuffer(string: body))
        try proto.encodeMessage(sent, into: &buffer)
        let message = try #require(try proto.decodeMessage(from: &buffer))
        return FerryReply(message: message, cost: .zero, codecs: codecs)
    }

    func thrown<Value>(_ body: () throws -> Value) -> FerryStatus? {
        do {
            _ = try body()
            return nil
        } catch let status as FerryStatus {
            return status
        } catch {
            Issue.record("expected a FerryStatus, got \(type(of: error)): \(error)")
            return nil
        }
    }

    @Test("a decodable body is decoded")
    func decodes() throws {
        #expect(try received(body: #"{"x":1,"y":2}"#).decode(Point.self) == Point(x: 1, y: 2))
    }

    @Test("a non-OK reply status is thrown as the remote sent it, with origin remote")
    func remoteStatusThrown() throws {
        let reply = try received(status: FerryStatus(.badMessage, "Bad Message", cause: "your args"), codec: .none)
        let status = try #require(thrown { try reply.decode(Point.self) })
        #expect(status == FerryStatus(.badMessage, "Bad Message", cause: "your args"))
        #expect(status.origin == .remote)
        #expect(status.underlyingError == nil)
        #expect(thrown { try reply.decode(Void.self) }?.origin == .remote)
    }

    @Test("a body that does not decode here throws a local 400 that says so and keeps the decoding error")
    func undecodableBody() throws {
        let status = try #require(thrown { try received(body: #"{"x":"one"}"#).decode(Point.self) })
        #expect(status.code == .badMessage)
        #expect(status.message == "Undecodable Reply")
        #expect(status.origin == .localAfterSending)
        #expect(status.cause.contains("decoded here as Point"), "\(status.cause)")
        let decodingError = try #require(status.underlyingError as? FerryCodecError)
        guard case .invalidBody(let codec, _) = decodingError else {
            Issue.record("expected invalidBody, got \(decodingError)")
            return
        }
        #expect(codec == "json")
        #expect(status != FerryStatus.badMessage(status.cause), "not the remote's Bad Message")

        let unknownCodec = try #require(thrown { try received(codec: FerryCodecID("z"), body: "1").decode(Int.self) })
        #expect(unknownCodec.origin == .localAfterSending)
        let codecError = try #require(unknownCodec.underlyingError as? FerryCodecError)
        guard case .unknownCodec(let id) = codecError else {
            Issue.record("expected unknownCodec, got \(codecError)")
            return
        }
        #expect(id == FerryCodecID("z"))
    }
}
