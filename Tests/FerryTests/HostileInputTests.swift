import Ferry
import NIOCore
import Testing

@Suite("Hostile input")
struct HostileInputTests {
    /// The server's frame size limit in these tests.
    static let frameLimit = 4096

    /// Byte sequences that break the wire protocol; each must close its connection.
    enum BadFrame: String, CaseIterable, Sendable, CustomTestStringConvertible {
        case declaredSizeAboveLimit
        case declaredSizeBelowMinimum
        case innerLengthPastFrameEnd
        case metaLengthPastFrameEnd
        case seqNotBase36
        case unknownFilter
        case corruptMD5
        case gzipBomb
        case garbageOnConnect
        case closedMidFrame

        var testDescription: String { rawValue }

        /// The bytes to send.
        func bytes() throws -> [UInt8] {
            let call = FerryMessage(
                type: .call, seq: 1, serviceMethod: "/math/add", meta: ["k": "v"], bodyCodec: .json,
                body: ByteBuffer(string: #"{"a":1,"b":2}"#))
            switch self {
            case .declaredSizeAboveLimit:
                // 1 GiB declared, a few bytes sent: the server must refuse at once.
                return [0x40, 0x00, 0x00, 0x00, 0x00, 0x01, 0x31]
            case .declaredSizeBelowMinimum:
                return [0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00]
            case .innerLengthPastFrameEnd:
                // seq length 0x20 in a 10-byte frame.
                return [0x00, 0x00, 0x00, 0x0A, 0x00, 0x20, 0x31, 0x01, 0x00, 0x00]
            case .metaLengthPastFrameEnd:
                var frame = try RawConnection.frame(call)
                // size(4) count(1) seqlen(1) seq(1) type(1) methodlen(1) method(9) statuslen(2) "code=0"(6)
                let metaLengthOffset = 4 + 1 + 1 + 1 + 1 + 1 + 9 + 2 + 6
                #expect(frame[metaLengthOffset] == 0x00 && frame[metaLengthOffset + 1] == 0x03)
                frame[metaLengthOffset] = 0x7F
                return frame
            case .seqNotBase36:
                var frame = try RawConnection.frame(call)
                #expect(frame[6] == UInt8(ascii: "1"))
                frame[6] = UInt8(ascii: "!")
                return frame
            case .unknownFilter:
                let plain = try RawConnection.frame(call)
                return Self.frame(filters: [UInt8(ascii: "z")], payload: Array(plain[5...]))
            case .corruptMD5:
                var frame = try RawConnection.frame(FerryMessage(
                    type: call.type, seq: call.seq, serviceMethod: call.serviceMethod, meta: call.meta,
                    bodyCodec: call.bodyCodec, body: call.body, filters: [.md5]))
                #expect(frame[5] == FerryFilterID.md5.rawValue)
                frame[12] ^= 0xFF
                return frame
            case .gzipBomb:
                // A CALL whose 1 MiB zero body gzips to far below the frame limit but inflates far past it.
                let huge = FerryMessage(
                    type: .call, seq: 1, serviceMethod: "/echo", bodyCodec: .plain,
                    body: ByteBuffer(repeating: 0, count: 1 << 20))
                let plain = try RawConnection.frame(huge, proto: FerryRawProto(maximumFrameSize: 4 << 20))
                let compressed = try FerryGzipFilter().encode(
                    ByteBuffer(bytes: plain[5...]), allocator: ByteBufferAllocator())
                let frame = Self.frame(filters: [FerryFilterID.gzip.rawValue], payload: Array(compressed.readableBytesView))
                #expect(frame.count < HostileInputTests.frameLimit, "the bomb itself fits in a frame")
                return frame
            case .garbageOnConnect:
                return Array("GET / HTTP/1.1\r\nHost: example\r\n\r\n".utf8)
            case .closedMidFrame:
                return Array(try RawConnection.frame(call).prefix(12))
            }
        }

        /// Text the server's close reason must contain.
        var reason: String {
            switch self {
            case .declaredSizeAboveLimit, .garbageOnConnect: "exceeds the limit"
            case .declaredSizeBelowMinimum: "below the minimum"
            case .innerLengthPastFrameEnd, .metaLengthPastFrameEnd: "runs past the end of the frame"
            case .seqNotBase36: "seq is not a base-36"
            case .unknownFilter: "unknown transfer filter"
            case .corruptMD5: "MD5 checksum mismatch"
            case .gzipBomb: "output exceeds"
            case .closedMidFrame: "mid-frame"
            }
        }

        /// A frame with `filters` and an already-filtered payload.
        static func frame(filters: [UInt8], payload: [UInt8]) -> [UInt8] {
            let size = 4 + 1 + filters.count + payload.count
            return [UInt8(size >> 24 & 0xFF), UInt8(size >> 16 & 0xFF), UInt8(size >> 8 & 0xFF), UInt8(size & 0xFF)]
                + [UInt8(filters.count)] + filters + payload
        }
    }

    /// A server with a small frame limit and a debug log, and one well-behaved session on it.
    struct Fixture {
        let logs: LogStore
        let pair: PeerPair
        let handled: Recorder<String>

        init(exposeErrorDetails: Bool = false) async throws {
            let logs = LogStore()
            let handled = Recorder<String>()
            self.logs = logs
            self.handled = handled
            let pair = try await makePair(
                server: FerryPeer.Configuration(maximumFrameSize: HostileInputTests.frameLimit, exposeErrorDetails: exposeErrorDetails),
                serverLogger: logs.logger(label: "server")
            ) { router in
                router.addRoute(.call, "/record") { message, _ in
                    handled.append(message.serviceMethod)
                    return FerryResponse()
                }
                router.call("/boom") { (_: Void, _: FerryContext) -> Int in throw SecretError() }
            }
            self.pair = pair
            #expect(await eventually { pair.server.hub.count == 1 })
        }

        /// Checks that the good session and a new one still work.
        func expectServerHealthy(sourceLocation: SourceLocation = #_sourceLocation) async throws {
            let sum = try await pair.session.call("/math/add", AddArgs(a: 40, b: 2), as: Int.self, options: .timeout(.seconds(5)))
            #expect(sum == 42, sourceLocation: sourceLocation)
            try await expectServerStillServes(pair.listener.address, sourceLocation: sourceLocation)
        }
    }

    struct SecretError: Error, CustomStringConvertible {
        var description: String { "database password is hunter2" }
    }

    @Test("a protocol error closes only the offending connection, answers nothing, and logs why", arguments: BadFrame.allCases)
    func badFrame(_ bad: BadFrame) async throws {
        let fixture = try await Fixture()
        let raw = try await RawConnection.connect(to: fixture.pair.listener.address)
        #expect(await eventually { fixture.pair.server.hub.count == 2 }, "the raw connection is accepted first")

        try await raw.send(try bad.bytes())
        if bad == .closedMidFrame {
            await raw.close()
        } else {
            #expect(await raw.waitUntilClosed(), "the server must close the connection")
            #expect(raw.receivedBytes.isEmpty, "a protocol error is answered with nothing")
        }
        let logged = await closeReasonLogged(fixture.logs, containing: bad.reason)
        #expect(logged != nil, "close reason containing \"\(bad.reason)\"; closes logged: \(fixture.logs.all.filter { $0.message == "session closed" })")
        #expect(await eventually { fixture.pair.server.hub.count == 1 }, "only the good session is left")
        #expect(fixture.handled.count == 0)

        try await fixture.expectServerHealthy()
        await raw.close()
        await fixture.pair.close()
    }

    @Test("an unknown message type gets a 405 REPLY and then the connection closes")
    func unknownMessageType() async throws {
        let fixture = try await Fixture()
        let raw = try await RawConnection.connect(to: fixture.pair.listener.address)
        try await raw.send(FerryMessage(type: FerryMessageType(rawValue: 9), seq: 5, serviceMethod: "/record"))

        let reply = try #require(try await raw.nextMessage())
        #expect(reply.type == .reply)
        #expect(reply.seq == 5)
        #expect(reply.serviceMethod.isEmpty)
        #expect(reply.status.code == .messageTypeNotAllowed)
        #expect(await raw.waitUntilClosed())
        #expect(try await raw.nextMessage() == nil, "nothing follows the 405")
        #expect(fixture.handled.count == 0)
        try await fixture.expectServerHealthy()
        await raw.close()
        await fixture.pair.close()
    }

    @Test("a CALL with an empty service method gets 400 and the connection stays open")
    func emptyServiceMethod() async throws {
        let fixture = try await Fixture()
        let raw = try await RawConnection.connect(to: fixture.pair.listener.address)
        try await raw.send(FerryMessage(type: .call, seq: 3, serviceMethod: ""))
        let reply = try #require(try await raw.nextMessage())
        #expect(reply.seq == 3)
        #expect(reply.status.code == .badMessage)

        try await raw.send(FerryMessage(type: .call, seq: 4, serviceMethod: "/record"))
        let second = try #require(try await raw.nextMessage())
        #expect(second.seq == 4)
        #expect(second.status.isOK)
        await raw.close()
        await fixture.pair.close()
    }

    @Test("a handler that throws a non-status error gives 500 without leaking the error text")
    func handlerErrorIsNotLeaked() async throws {
        let fixture = try await Fixture()
        let reply = try await fixture.pair.session.callForReply("/boom", ())
        #expect(reply.status.code == .internalServerError)
        #expect(!reply.status.description.contains("hunter2"), "got \(reply.status)")
        #expect(reply.body.readableBytes == 0)
        #expect(reply.bodyCodec == .none)
        try await fixture.expectServerHealthy()
        await fixture.pair.close()

        // With details exposed, the same failure carries its text.
        let exposing = try await Fixture(exposeErrorDetails: true)
        let detailed = try await exposing.pair.session.callForReply("/boom", ())
        #expect(detailed.status.code == .internalServerError)
        #expect(detailed.status.cause.contains("hunter2"))
        await exposing.pair.close()
    }

    @Test("a JSON body that cannot be decoded gives 400")
    func undecodableBody() async throws {
        let fixture = try await Fixture()
        let reply = try await fixture.pair.session.callForReply(
            "/math/add", ByteBuffer(string: #"{"a":"one""#), options: FerryCallOptions(codec: .json))
        #expect(reply.status.code == .badMessage)
        try await fixture.expectServerHealthy()
        await fixture.pair.close()
    }

    @Test("an unknown body codec id gives 400")
    func unknownCodec() async throws {
        let fixture = try await Fixture()
        let reply = try await fixture.pair.session.callForReply(
            "/math/add", ByteBuffer(string: #"{"a":1,"b":2}"#), options: FerryCallOptions(codec: FerryCodecID("z")))
        #expect(reply.status.code == .badMessage)
        try await fixture.expectServerHealthy()
        await fixture.pair.close()
    }

    @Test("an unknown route gives 404")
    func unknownRoute() async throws {
        let fixture = try await Fixture()
        let reply = try await fixture.pair.session.callForReply("/no/such/route", ())
        #expect(reply.status.code == .notFound)
        let thrown = await statusThrown { try await fixture.pair.session.call("/no/such/route", (), as: Int.self) }
        #expect(thrown?.code == .notFound)
        try await fixture.expectServerHealthy()
        await fixture.pair.close()
    }

    @Test("a push to an unknown route is dropped and the session stays open")
    func pushToUnknownRoute() async throws {
        let fixture = try await Fixture()
        try await fixture.pair.session.push("/no/such/push", "hello")
        let dropped = await fixture.logs.waitFor {
            $0.level == .warning && $0.message.contains("unknown route") && $0.metadata["route"] == "/no/such/push"
        }
        #expect(dropped != nil, "the server receives the push and drops it")
        #expect(fixture.pair.session.isActive)
        #expect(fixture.pair.server.hub.count == 1)
        try await fixture.expectServerHealthy()
        await fixture.pair.close()
    }
}
