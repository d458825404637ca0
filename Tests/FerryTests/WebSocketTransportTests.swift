import Ferry
import FerryTestSupport
import Foundation
import NIOCore
import Testing

/// Sessions over WebSocket (erpc v6's mixer): Ferry peers on both ends, and hand-made frames
/// as a browser or a Go erpc peer sends them.
@Suite("WebSocket transport")
struct WebSocketTransportTests {
    static let path = "/ws"

    /// A server with the standard routes listening for WebSocket on 127.0.0.1.
    static func server(
        _ configuration: FerryPeer.Configuration = FerryPeer.Configuration(), configure: (FerryRouter) -> Void = { _ in }
    ) async throws -> (FerryPeer, FerryAddress) {
        let (server, listener) = try await makeServer(configuration, address: .webSocket(host: "127.0.0.1", port: 0, path: path), configure: configure)
        return (server, listener.address)
    }

    @Test("a WebSocket session calls and pushes both ways, like a TCP one")
    func callsAndPushesBothWays() async throws {
        let pushed = Recorder<String>()
        let (server, address) = try await Self.server { router in
            router.push("/note") { (text: String, _: FerryContext) in pushed.append("server got \(text)") }
        }
        guard case .webSocket(_, let port, let path) = address else { Issue.record("not a WebSocket address: \(address)"); return }
        #expect(port > 0 && path == Self.path)
        #expect(address.description == "ws://127.0.0.1:\(port)/ws")
        let client = FerryPeer(logger: quietLogger())
        client.router.call("/client/hello") { (name: String, _: FerryContext) in "hello, \(name)" }
        client.router.push("/note") { (text: String, _: FerryContext) in pushed.append("client got \(text)") }
        let session = try await client.dial(try #require(FerryAddress("ws://127.0.0.1:\(port)/ws")))

        #expect(try await session.call("/math/add", AddArgs(a: 40, b: 2), as: Int.self) == 42)
        try await session.push("/note", "up")
        #expect(await eventually { server.hub.count == 1 })
        let accepted = try #require(server.hub.all.first)
        #expect(try await accepted.call("/client/hello", "server", as: String.self) == "hello, server")
        try await accepted.push("/note", "down")
        #expect(await eventually { Set(pushed.all) == ["server got up", "client got down"] })
        let missing = try await session.callForReply("/no/such/route", ())
        #expect(missing.status.code == .notFound, "the status crosses WebSocket: \(missing.status)")
        await client.close()
        await server.close()
    }

    @Test("over TLS (wss), with a certificate checked against the CA, a call goes through; a client that does not trust the CA is refused")
    func overTLS() async throws {
        let certificates = try await TestCertificates.generate()
        defer { certificates.remove() }
        let server = FerryPeer(logger: quietLogger())
        addStandardRoutes(server.router)
        let listener = try await server.listen(
            .webSocket(host: "127.0.0.1", port: 0, path: Self.path), tls: try certificates.serverConfiguration(requireClientCertificate: false))
        let client = FerryPeer(logger: quietLogger())
        let session = try await client.dial(listener.address, tls: try certificates.clientConfiguration(withCertificate: false))
        #expect(try await session.call("/math/add", AddArgs(a: 20, b: 22), as: Int.self) == 42)
        // The system's trust roots do not include the test CA: the handshake fails.
        let untrusting = await statusThrown { try await client.dial(listener.address, tls: .makeClientConfiguration()) }
        #expect(untrusting?.code == .dialFailed, "\(String(describing: untrusting))")
        await client.close()
        await server.close()
    }

    @Test("with the protobuf sub-protocol on both ends, calls work and statuses arrive")
    func protobufSubprotocol() async throws {
        var configuration = FerryPeer.Configuration()
        configuration.webSocket.subprotocol = .protobuf
        let (server, address) = try await Self.server(configuration)
        let client = FerryPeer(configuration: configuration, logger: quietLogger())
        let session = try await client.dial(address)
        #expect(try await session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) == 3)
        #expect(try await session.call("/echo", String(repeating: "é", count: 50_000), as: String.self).count == 50_000)
        let missing = try await session.callForReply("/nope", ())
        #expect(missing.status.code == .notFound)
        await client.close()
        await server.close()
    }

    @Test("ends on different sub-protocols: the server closes with 1002 and says why, and the caller's 102 carries it")
    func subprotocolMismatch() async throws {
        var protobuf = FerryPeer.Configuration()
        protobuf.webSocket.subprotocol = .protobuf
        let (server, address) = try await Self.server(protobuf)
        let client = FerryPeer(logger: quietLogger())
        let session = try await client.dial(address)
        let status = await statusThrown { try await session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) }
        #expect(status?.code == .connectionClosed)
        #expect(status?.cause.contains("closed the WebSocket with 1002") == true, "\(String(describing: status))")
        await client.close()
        await server.close()
    }

    @Test("plain HTTP gets 426 on the WebSocket path and 404 elsewhere; a dial to the wrong path fails with 105")
    func plainHTTPIsRefused() async throws {
        let (server, address) = try await Self.server()
        guard case .webSocket(let host, let port, _) = address else { return }
        for (target, status) in [("/ws", "426"), ("/other", "404")] {
            let raw = try await RawConnection.connect(to: .tcp(host: host, port: port))
            try await raw.send(Array("GET \(target) HTTP/1.1\r\nHost: \(host)\r\n\r\n".utf8))
            #expect(await raw.waitUntilClosed(), "the server closes after answering")
            let answer = String(decoding: raw.receivedBytes, as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 \(status)"), "\(target): \(answer)")
            await raw.close()
        }
        let client = FerryPeer(logger: quietLogger())
        let refused = await statusThrown { try await client.dial(.webSocket(host: host, port: port, path: "/elsewhere")) }
        #expect(refused?.code == .dialFailed)
        #expect(refused?.cause.contains("404") == true, "\(String(describing: refused))")
        await server.close()
        let nobody = await statusThrown { try await client.dial(address) }
        #expect(nobody?.code == .dialFailed, "nothing listens any more: \(String(describing: nobody))")
        await client.close()
    }

    @Test("a WebSocket session redials after its server restarts, keeps its ID, and calls go on; a graceful shutdown refuses new calls with 106")
    func redialAndShutdown() async throws {
        let (first, address) = try await Self.server()
        let client = FerryPeer(
            configuration: FerryPeer.Configuration(
                redial: FerryPeer.Redial(maximumAttempts: 40, baseDelay: .milliseconds(50), maximumDelay: .milliseconds(200))),
            logger: quietLogger())
        let session = try await client.dial(address)
        session.setID("browser-1")
        #expect(try await session.call("/math/add", AddArgs(a: 1, b: 1), as: Int.self) == 2)

        await first.close()
        #expect(await eventually { !session.isActive })
        let second = FerryPeer(logger: quietLogger())
        addStandardRoutes(second.router)
        _ = try await second.listen(address)
        #expect(await eventually { session.isActive }, "the session upgraded a new connection by itself")
        #expect(session.id == "browser-1")
        #expect(try await session.call("/math/add", AddArgs(a: 2, b: 2), as: Int.self) == 4)

        // Drain: the server says go away; with nowhere to move, new calls are refused unhandled.
        let draining = Task { await second.shutdown(drainTimeout: .seconds(30)) }
        #expect(await eventually { second.isDraining })
        await draining.value
        #expect(second.hub.count == 0, "the drained server holds no session")
        await client.close()
    }

    @Test("the session's timers run over WebSocket too: an idle WebSocket session is closed by the server's idle timeout, which says why")
    func idleTimeoutOverWebSocket() async throws {
        let logs = LogStore()
        let server = FerryPeer(configuration: FerryPeer.Configuration(idleTimeout: .seconds(2)), logger: logs.logger(label: "server"))
        addStandardRoutes(server.router)
        let listener = try await server.listen(.webSocket(host: "127.0.0.1", port: 0, path: Self.path))
        let client = FerryPeer(logger: quietLogger())
        // On a machine busy enough, the server's idle timer fires before the dial is done; the
        // dial then fails, and the server's log must still say it closed for idleness.
        if let session = try? await client.dial(listener.address) {
            #expect(await eventually(timeout: .seconds(30)) { !session.isActive })
        }
        #expect(await closeReasonLogged(logs, containing: "idle", timeout: .seconds(30)) != nil)
        await client.close()
        await server.close()
    }

    @Test("a connection that does not upgrade within the read timeout is closed, and its slot under maximumConnections is freed")
    func silentHTTPClientIsClosed() async throws {
        // The timeout is also what the real client below has for its upgrade: seconds, for a
        // busy machine.
        let (server, address) = try await Self.server(
            FerryPeer.Configuration(readTimeout: .seconds(3), limits: FerryPeer.Limits(maximumConnections: 1)))
        guard case .webSocket(let host, let port, _) = address else { return }
        let silent = try await RawConnection.connect(to: .tcp(host: host, port: port))
        #expect(await silent.waitUntilClosed(timeout: .seconds(30)), "a client that never asks for the upgrade is closed")
        let client = FerryPeer(logger: quietLogger())
        let session = try await client.dial(address)
        #expect(try await session.call("/math/add", AddArgs(a: 3, b: 4), as: Int.self) == 7, "the freed slot takes a new connection")
        await silent.close()
        await client.close()
        await server.close()
    }

    @Test("shouldUpgrade sees the request: a wrong Origin or a missing token gets 403 before any session; the right ones connect")
    func upgradeHook() async throws {
        var configuration = FerryPeer.Configuration()
        let seen = Recorder<FerryPeer.WebSocket.Request>()
        configuration.webSocket.shouldUpgrade = { request in
            seen.append(request)
            return request.headers.first(name: "origin") == "https://app.example" && request.query["token"] == "s e/cret"
        }
        let (server, address) = try await Self.server(configuration)
        guard case .webSocket(let host, let port, _) = address else { return }
        for (origin, query) in [("https://evil.example", "?token=s+e%2Fcret"), ("https://app.example", ""), ("https://app.example", "?token=nope")] {
            let raw = try await RawConnection.connect(to: .tcp(host: host, port: port))
            let request = "GET /ws\(query) HTTP/1.1\r\nHost: \(host)\r\nOrigin: \(origin)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            try await raw.send(Array(request.utf8))
            #expect(await raw.waitUntilClosed())
            let answer = String(decoding: raw.receivedBytes, as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 403"), "\(origin) \(query): \(answer)")
            await raw.close()
        }
        #expect(server.hub.count == 0, "no session for a refused upgrade")
        let socket = try await RawWebSocket.connect(to: address, origin: "https://app.example", query: "?token=s+e%2Fcret")
        await socket.close()
        let last = try #require(seen.all.last)
        #expect(last.path == "/ws" && last.query["token"] == "s e/cret" && last.remoteAddress.hasPrefix("127.0.0.1:"))
        await server.close()
    }

    @Test("the CALL an erpc peer sends (WIRE.md's JSON vector, a masked binary frame) gets erpc's REPLY")
    func erpcJSONFrame() async throws {
        let (server, address) = try await Self.server()
        let socket = try await RawWebSocket.connect(to: address)
        let call = #"{"seq":1,"mtype":1,"serviceMethod":"/math/add","meta":"k=v","bodyCodec":106,"body":"{\"a\":40,\"b\":2}","xferPipe":[]}"#
        try await socket.send(opcode: 2, Array(call.utf8))
        let reply = try await socket.nextFrame()
        #expect(reply.opcode == 2, "erpc sends binary frames")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(reply.payload)) as? [String: Any])
        #expect(object["seq"] as? Int == 1)
        #expect(object["mtype"] as? Int == 2)
        #expect(object["body"] as? String == "42")
        #expect(object["bodyCodec"] as? Int == 106)
        #expect(object["status"] == nil, "no status key on an OK reply")
        await socket.close()
        await server.close()
    }

    @Test("a ping gets a pong with the same data; a close gets a close back")
    func controlFrames() async throws {
        let (server, address) = try await Self.server()
        let socket = try await RawWebSocket.connect(to: address)
        try await socket.send(opcode: 9, Array("hi".utf8))
        let pong = try await socket.nextFrame()
        #expect(pong.opcode == 10 && pong.payload == Array("hi".utf8))
        try await socket.send(opcode: 8, [0x03, 0xE8])
        let close = try await socket.nextFrame()
        #expect(close.opcode == 8 && Array(close.payload.prefix(2)) == [0x03, 0xE8])
        #expect(await socket.waitUntilClosed())
        await server.close()
    }

    @Test("hostile messages close the connection with the matching close code: 1007 bad UTF-8, 1002 not a message, 1009 too large")
    func hostileMessages() async throws {
        var configuration = FerryPeer.Configuration()
        configuration.webSocket.maximumMessageSize = 1024
        let (server, address) = try await Self.server(configuration)
        let cases: [(name: String, opcode: UInt8, payload: [UInt8], code: UInt16)] = [
            ("a text message that is not UTF-8", 1, [0x7B, 0xFF, 0xFE, 0x7D], 1007),
            ("a binary message that is not JSON", 2, Array("not json".utf8), 1002),
            ("a message over the size limit", 2, [UInt8](repeating: 0x20, count: 2000), 1009),
        ]
        for hostile in cases {
            let socket = try await RawWebSocket.connect(to: address)
            try await socket.send(opcode: hostile.opcode, hostile.payload)
            let close = try await socket.nextFrame()
            #expect(close.opcode == 8, "\(hostile.name): a close frame")
            let code = close.payload.count >= 2 ? UInt16(close.payload[0]) << 8 | UInt16(close.payload[1]) : 0
            #expect(code == hostile.code, "\(hostile.name): close code \(code)")
            #expect(await socket.waitUntilClosed(), "\(hostile.name): the connection closes")
            await socket.close()
        }
        // The server still serves.
        let client = FerryPeer(configuration: configuration, logger: quietLogger())
        let session = try await client.dial(address)
        #expect(try await session.call("/math/add", AddArgs(a: 2, b: 2), as: Int.self) == 4)
        await client.close()
        await server.close()
    }
}

/// A WebSocket client made by hand, as a browser or an erpc peer behaves on the wire: the
/// upgrade request, then masked frames out and unmasked frames in.
struct RawWebSocket {
    let connection: RawConnection

    static func connect(to address: FerryAddress, origin: String? = nil, query: String = "") async throws -> RawWebSocket {
        guard case .webSocket(let host, let port, let path) = address else { throw SetupError(what: "a WebSocket address is required") }
        let connection = try await RawConnection.connect(to: .tcp(host: host, port: port))
        let request = "GET \(path)\(query) HTTP/1.1\r\nHost: \(host):\(port)\r\n\(origin.map { "Origin: \($0)\r\n" } ?? "")Upgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        try await connection.send(Array(request.utf8))
        let socket = RawWebSocket(connection: connection)
        guard await eventually(timeout: .seconds(10), { socket.headerEnd != nil }) else { throw SetupError(what: "no upgrade response") }
        let head = String(decoding: connection.receivedBytes[..<socket.headerEnd!], as: UTF8.self)
        guard head.hasPrefix("HTTP/1.1 101") else { throw SetupError(what: "upgrade refused: \(head)") }
        return socket
    }

    /// Where the upgrade response's header ends, once it has arrived.
    private var headerEnd: Int? {
        let bytes = connection.receivedBytes
        guard bytes.count >= 4 else { return nil }
        for index in 3..<bytes.count where bytes[index - 3...index].elementsEqual([13, 10, 13, 10]) { return index + 1 }
        return nil
    }

    /// Sends one whole, masked frame.
    func send(opcode: UInt8, _ payload: [UInt8]) async throws {
        var frame: [UInt8] = [0x80 | opcode]
        switch payload.count {
        case ..<126: frame.append(0x80 | UInt8(payload.count))
        case ..<65536: frame += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        default: frame += [0x80 | 127] + (0..<8).reversed().map { UInt8((payload.count >> ($0 * 8)) & 0xFF) }
        }
        let mask: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        frame += mask
        frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        try await connection.send(frame)
    }

    /// The next frame from the server (servers do not mask).
    func nextFrame(timeout: Duration = .seconds(10)) async throws -> (opcode: UInt8, payload: [UInt8]) {
        let start = headerEnd ?? 0
        let skipped = consumed.value ?? 0
        let connection = connection
        // Bytes only accumulate, so a frame found once is there on the next look too.
        guard await eventually(timeout: timeout, { Self.frame(in: Array(connection.receivedBytes[start...]), skipping: skipped) != nil }),
            let frame = Self.frame(in: Array(connection.receivedBytes[start...]), skipping: skipped)
        else { throw TimeoutError(what: "no frame within \(timeout)") }
        consumed.value = skipped + frame.end
        return (frame.opcode, frame.payload)
    }

    /// The bytes of frames already returned by ``nextFrame(timeout:)``.
    private let consumed = Box<Int>()

    private static func frame(in bytes: [UInt8], skipping skipped: Int) -> (opcode: UInt8, payload: [UInt8], end: Int)? {
        let bytes = Array(bytes.dropFirst(skipped))
        guard bytes.count >= 2 else { return nil }
        var length = Int(bytes[1] & 0x7F)
        var offset = 2
        if length == 126 {
            guard bytes.count >= 4 else { return nil }
            length = Int(bytes[2]) << 8 | Int(bytes[3])
            offset = 4
        } else if length == 127 {
            guard bytes.count >= 10 else { return nil }
            length = bytes[2..<10].reduce(0) { $0 << 8 | Int($1) }
            offset = 10
        }
        guard bytes.count >= offset + length else { return nil }
        return (bytes[0] & 0x0F, Array(bytes[offset..<offset + length]), offset + length)
    }

    func waitUntilClosed() async -> Bool { await connection.waitUntilClosed() }

    func close() async { await connection.close() }
}
