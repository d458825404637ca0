import Ferry
import FerryGateway
import FerryTestSupport
import NIOCore
import NIOPosix
import Testing

/// An outside client that authenticates over a raw socket and then reads nothing: its socket's
/// receive buffer is small and the channel never reads, so what the gateway writes piles up.
struct SilentReader {
    let channel: any Channel

    static func connect(to address: FerryAddress, token: String) async throws -> SilentReader {
        guard case .tcp(let host, let port) = address else { throw FerryStatus.dialFailed("a TCP address is needed") }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: false)
            .channelOption(.socketOption(.so_rcvbuf), value: 4096)
            .connect(host: host, port: port).get()
        var frame = ByteBuffer()
        try FerryRawProto().encodeMessage(
            FerryMessage(type: .authCall, seq: 1, bodyCodec: .plain, body: ByteBuffer(string: token)), into: &frame)
        try await channel.writeAndFlush(frame)
        return SilentReader(channel: channel)
    }

    func close() async {
        try? await channel.close()
    }
}

@Suite("Slow readers at the gateway")
struct SlowReaderTests {
    @Test("pushes to a client that stops reading wait no longer than the push timeout, queue up to the bound, then the slow-consumer policy closes it; other users are not affected")
    func slowReaderClosed() async throws {
        var configuration = allListeners()
        configuration.outerPeer.limits.maximumQueuedOutboundBytes = 64 << 10
        configuration.outerPeer.limits.slowConsumerPolicy = .closeSession
        configuration.pushTimeout = .seconds(1)
        try await withGateway(configuration) { gateway, addresses, _ in
            let slow = try await SilentReader.connect(to: try #require(addresses.socket), token: "sloth")
            let fast = PushedClient(token: "hare")
            _ = try await fast.peer.dial(try #require(addresses.socket))
            #expect(await eventually { gateway.sessions(of: "sloth").count == 1 && gateway.sessions(of: "hare").count == 1 })

            let service = FerryPeer(logger: quietLogger())
            let inner = try await service.dial(try #require(addresses.inner))
            let chunk = ByteBuffer(string: "\"" + String(repeating: "z", count: 32 << 10) + "\"")
            var meta = FerryMeta()
            meta.add(FerryGateway.MetaKey.user, "sloth")
            meta.add(FerryGateway.MetaKey.pushRoute, "/chat/msg")
            var pushes = 0
            // Bounded: 400 pushes of 32 KiB are 12.5 MiB, far past the kernel's buffers and the
            // 64 KiB queue.
            while pushes < 400, !gateway.sessions(of: "sloth").isEmpty {
                _ = try await inner.call(
                    FerryGateway.InnerRoute.push, chunk, as: Int.self, options: FerryCallOptions(timeout: .seconds(30), meta: meta, codec: .json))
                pushes += 1
            }
            #expect(await eventually { gateway.sessions(of: "sloth").isEmpty }, "closed after \(pushes) pushes")

            var toHare = FerryMeta()
            toHare.add(FerryGateway.MetaKey.user, "hare")
            toHare.add(FerryGateway.MetaKey.pushRoute, "/chat/msg")
            let written: Int = try await inner.call(
                FerryGateway.InnerRoute.push, ByteBuffer(string: #""still here""#), options: FerryCallOptions(meta: toHare, codec: .json))
            #expect(written == 1)
            #expect(await eventually { fast.received.all == ["still here"] })
            await slow.close()
            await fast.peer.close()
            await service.close()
        }
    }
}
