import FerryCore
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

@testable import Ferry

/// `FerryPeer.serve(_:)`: a connection opened by other means becomes one of the peer's
/// accepted sessions.
@Suite("Serving a channel opened elsewhere")
struct ServeChannelTests {
    @Test("an in-memory channel's CALL is routed and answered, and the session joins the hub")
    func inMemoryChannel() async throws {
        let peer = FerryPeer(logger: quietLogger())
        addStandardRoutes(peer.router)
        let channel = EmbeddedChannel()
        let session = try peer.serve(channel, remoteAddress: "memory")
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).get()
        #expect(session.id == "memory")
        #expect(peer.hub.session(id: "memory") === session)

        let proto = FerryRawProto()
        var frame = ByteBuffer()
        try proto.encodeMessage(
            FerryMessage(
                type: .call, seq: 7, serviceMethod: "/math/add", bodyCodec: .json,
                body: ByteBuffer(string: #"{"a":20,"b":22}"#)),
            into: &frame)
        try channel.writeInbound(frame)
        channel.embeddedEventLoop.run()

        var written = try #require(try channel.readOutbound(as: ByteBuffer.self), "a reply was written")
        let reply = try #require(try proto.decodeMessage(from: &written))
        #expect(reply.type == .reply)
        #expect(reply.seq == 7)
        #expect(reply.status.isOK)
        #expect(String(buffer: reply.body) == "42")

        _ = try? channel.finish()
        await peer.close()
    }

    @Test("a connection accepted by another bootstrap is served to a Ferry client over TCP")
    func connectionFromAnotherBootstrap() async throws {
        let server = FerryPeer(logger: quietLogger())
        addStandardRoutes(server.router)
        let acceptor = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { _ = try server.serve(channel) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = try #require(acceptor.localAddress?.port)

        let client = FerryPeer(logger: quietLogger())
        let session = try await client.dial(.tcp(host: "127.0.0.1", port: port))
        #expect(try await session.call("/echo", "over a foreign accept", as: String.self) == "over a foreign accept")
        #expect(await eventually { server.hub.count == 1 })

        await client.close()
        await server.close()
        try await acceptor.close()
    }

    @Test("a draining peer refuses to serve a new channel")
    func refusedWhileDraining() async throws {
        let peer = FerryPeer(logger: quietLogger())
        await peer.shutdown(drainTimeout: .milliseconds(100))
        let channel = EmbeddedChannel()
        #expect(throws: FerryLifecycleError.self) { _ = try peer.serve(channel) }
        #expect(throws: (any Error).self, "no session handlers were added") {
            try channel.pipeline.syncOperations.handler(type: SessionHandler.self)
        }
        _ = try? channel.finish()
    }
}
