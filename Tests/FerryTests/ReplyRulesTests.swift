import NIOCore
import Testing

@testable import Ferry

@Suite("Reply rules")
struct ReplyRulesTests {
    static func routes(_ router: FerryRouter) {
        // Answers a String; the handler picks the plain codec when asked to in the meta.
        router.call("/codec/text") { (_: Void, ctx: FerryContext) -> String in
            if ctx.meta["handler-codec"] == "plain" { ctx.replyCodec = .plain }
            return "hello"
        }
        router.call("/codec/fail") { (_: Void, ctx: FerryContext) -> String in
            ctx.replyCodec = .json
            ctx.addReplyMeta("why", "testing")
            throw FerryStatus(code: 1234, message: "Custom Failure", cause: "on purpose")
        }
    }

    /// The JSON and plain encodings of "hello".
    static let jsonHello = #""hello""#
    static let plainHello = "hello"

    @Test("a REPLY carries the call's seq, an empty service method and the call's filters", arguments: [
        [FerryFilterID](), [.gzip], [.md5], [.gzip, .md5], [.md5, .gzip],
    ])
    func replyEchoesSeqAndFilters(_ filters: [FerryFilterID]) async throws {
        let (server, listener) = try await makeServer()
        let raw = try await RawConnection.connect(to: listener.address)
        let seq: Int32 = 1_234_567
        try await raw.send(FerryMessage(
            type: .call, seq: seq, serviceMethod: "/echo", bodyCodec: .plain, body: ByteBuffer(string: "ping"),
            filters: filters))

        let reply = try #require(try await raw.nextMessage())
        #expect(reply.type == .reply)
        #expect(reply.seq == seq)
        #expect(reply.serviceMethod == "")
        #expect(reply.filters == filters)
        #expect(reply.status.isOK)
        #expect(reply.bodyCodec == .plain)
        #expect(String(buffer: reply.body) == "ping")

        // On the wire: the filter count and ids follow the size field as sent.
        let bytes = raw.receivedBytes
        try #require(bytes.count >= 5 + filters.count)
        #expect(Int(bytes[4]) == filters.count)
        #expect(Array(bytes[5..<(5 + filters.count)]) == filters.map(\.rawValue))
        if filters.isEmpty {
            // seq "qglj" in base 36, then the REPLY type and an empty service method.
            #expect(Array(bytes[5..<12]) == [4] + Array("qglj".utf8) + [2, 0])
        }
        await raw.close()
        await server.close()
    }

    @Test("a call with gzip and md5 filters succeeds end to end, with a large compressible body")
    func filteredCallEndToEnd() async throws {
        let pair = try await makePair()
        let text = String(repeating: "ferry ", count: 50_000)
        let options = FerryCallOptions(timeout: .seconds(5), filters: [.gzip, .md5])
        #expect(try await pair.session.call("/echo", text, as: String.self, options: options) == text)
        #expect(try await pair.session.call("/math/add", AddArgs(a: 3, b: 4), as: Int.self, options: options) == 7)
        await pair.close()
    }

    @Test("reply codec: the handler's choice beats X-Accept-Body-Codec, which beats the request codec")
    func replyCodecPriority() async throws {
        let pair = try await makePair(configure: Self.routes)
        let session = pair.session

        // Handler's choice wins over the accepted codec and the request codec.
        let chosen = try await session.callForReply(
            "/codec/text", (), options: FerryCallOptions(meta: ["handler-codec": "plain"], codec: .json, acceptCodec: .json))
        #expect(chosen.bodyCodec == .plain)
        #expect(String(buffer: chosen.body) == Self.plainHello)

        // X-Accept-Body-Codec wins over the request codec.
        let accepted = try await session.callForReply("/codec/text", (), options: FerryCallOptions(codec: .json, acceptCodec: .plain))
        #expect(accepted.bodyCodec == .plain)
        #expect(String(buffer: accepted.body) == Self.plainHello)
        let acceptedJSON = try await session.callForReply("/codec/text", (), options: FerryCallOptions(codec: .plain, acceptCodec: .json))
        #expect(acceptedJSON.bodyCodec == .json)
        #expect(String(buffer: acceptedJSON.body) == Self.jsonHello)

        // The meta key itself (decimal id) has the same effect.
        let viaMeta = try await session.callForReply(
            "/codec/text", (), options: FerryCallOptions(meta: ["X-Accept-Body-Codec": "115"], codec: .json))
        #expect(viaMeta.bodyCodec == .plain)

        // Without either, the request codec is used.
        let plainRequest = try await session.callForReply("/codec/text", (), options: FerryCallOptions(codec: .plain))
        #expect(plainRequest.bodyCodec == .plain)
        #expect(String(buffer: plainRequest.body) == Self.plainHello)
        let jsonRequest = try await session.callForReply("/codec/text", (), options: FerryCallOptions(codec: .json))
        #expect(jsonRequest.bodyCodec == .json)
        #expect(String(buffer: jsonRequest.body) == Self.jsonHello)
        #expect(try jsonRequest.decode(String.self) == "hello")
        await pair.close()
    }

    @Test("a reply too large to send becomes a 500 at once, and the session keeps working")
    func replyTooLarge() async throws {
        let pair = try await makePair(server: FerryPeer.Configuration(maximumFrameSize: 4096)) { router in
            router.call("/big") { (size: Int, _: FerryContext) -> String in String(repeating: "x", count: size) }
        }
        let status = await statusThrown {
            try await pair.session.call("/big", 10_000, as: String.self, options: .timeout(.seconds(20)))
        }
        #expect(status?.code == .internalServerError)
        #expect(status?.cause.contains("exceeds the limit") == true, "cause: \(status?.cause ?? "")")
        #expect(try await pair.session.call("/big", 10, as: String.self) == String(repeating: "x", count: 10))
        await pair.close()
    }

    @Test("a call too large to send fails at once with 104, and the session keeps working")
    func callTooLarge() async throws {
        let pair = try await makePair(client: FerryPeer.Configuration(maximumFrameSize: 4096)) { router in
            router.call("/size") { (text: String, _: FerryContext) in text.count }
        }
        let start = ContinuousClock.now
        let status = await statusThrown {
            try await pair.session.call("/size", String(repeating: "x", count: 10_000), as: Int.self, options: .timeout(.seconds(20)))
        }
        #expect(status?.code == .writeFailed)
        #expect(status?.cause.contains("exceeds the limit") == true, "cause: \(status?.cause ?? "")")
        #expect(ContinuousClock.now - start < .seconds(5))
        #expect(pair.session.outstanding.pendingCalls == 0)
        #expect(try await pair.session.call("/size", "xyz", as: Int.self) == 3)
        await pair.close()
    }

    @Test("an error reply has its status and meta, an empty body and codec 0")
    func errorReplyShape() async throws {
        let (server, listener) = try await makeServer(configure: Self.routes)
        let raw = try await RawConnection.connect(to: listener.address)
        try await raw.send(FerryMessage(
            type: .call, seq: 9, serviceMethod: "/codec/fail", meta: [FerryCallOptions.acceptCodecMetaKey: "106"],
            bodyCodec: .json))
        let reply = try #require(try await raw.nextMessage())
        #expect(reply.seq == 9)
        #expect(reply.status.code == FerryStatus.Code(1234))
        #expect(reply.status.message == "Custom Failure")
        #expect(reply.status.cause == "on purpose")
        #expect(reply.meta["why"] == "testing")
        #expect(reply.bodyCodec == .none)
        #expect(reply.body.readableBytes == 0)
        // The codec byte is the last byte of the frame.
        #expect(raw.receivedBytes.last == 0)

        try await raw.send(FerryMessage(
            type: .call, seq: 10, serviceMethod: "/missing", bodyCodec: .json, body: ByteBuffer(string: "{}"),
            filters: [.md5]))
        let notFound = try #require(try await raw.nextMessage())
        #expect(notFound.seq == 10)
        #expect(notFound.serviceMethod == "")
        #expect(notFound.filters == [.md5], "an error reply keeps the call's filters too")
        #expect(notFound.status.code == .notFound)
        #expect(notFound.bodyCodec == .none)
        #expect(notFound.body.readableBytes == 0)
        await raw.close()
        await server.close()
    }
}
