import Ferry
import FerryGateway
import FerryPush
import FerryTestSupport
import NIOCore
import Synchronization
import Testing

@Suite("At-least-once pushes through the gateway")
struct DurablePushTests {
    /// Stores through the inner API's `/gateway/send`.
    func send(_ text: String, to users: [String], via session: FerrySession) async throws -> [FerryGateway.Stored] {
        var meta = FerryMeta()
        for user in users { meta.add(FerryGateway.MetaKey.user, user) }
        meta.add(FerryGateway.MetaKey.pushRoute, "/chat/msg")
        return try await session.call(
            FerryGateway.InnerRoute.send, ByteBuffer(string: "\"\(text)\""), options: FerryCallOptions(meta: meta, codec: .json))
    }

    @Test("a message sent to an offline user is stored, then delivered when the user connects over WebSocket and resumes, followed by live ones")
    func offlineUserGetsMailbox() async throws {
        var configuration = allListeners()
        configuration.durablePush = FerryGateway.DurablePush(mailbox: FerryMemoryMailbox())
        try await withGateway(configuration) { _, addresses, _ in
            let service = FerryPeer(logger: quietLogger())
            let inner = try await service.dial(try #require(addresses.inner))
            let stored = try await send("while you were out", to: ["pia", "quinn"], via: inner)
            #expect(stored.map(\.user) == ["pia", "quinn"])
            #expect(stored.map(\.offset) == [1, 1])

            let received = Recorded<String>()
            let client = clientPeer(token: "pia")
            let receiver = FerryPushReceiver(router: client.router)
            let session = try await client.dial(try #require(addresses.webSocket))
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await receiver.receive(on: session) { received.append(try $0.decode(String.self)) } }
                #expect(await eventually { received.all == ["while you were out"] })
                _ = try await send("live", to: ["pia"], via: inner)
                #expect(await eventually { received.all == ["while you were out", "live"] })
                await client.close()
                try await group.next()
            }
            #expect(receiver.position?.offset == 2)
            await service.close()
        }
    }

    @Test("without a mailbox, /gateway/send is refused with 405")
    func sendNeedsMailbox() async throws {
        try await withGateway(allListeners()) { _, addresses, _ in
            let service = FerryPeer(logger: quietLogger())
            let inner = try await service.dial(try #require(addresses.inner))
            let status = await #expect(throws: FerryStatus.self) { _ = try await send("x", to: ["pia"], via: inner) }
            #expect(status?.code == .messageTypeNotAllowed)
            await service.close()
        }
    }
}
