import Ferry
import FerryGateway
import FerryMicro
import FerryPush
import FerryTestSupport
import NIOCore
import Testing

@Suite("Gateways in a cluster")
struct ClusterTests {
    @Test("a push accepted by one gateway reaches the user on another, best effort and at least once; presence follows the user")
    func pushFromAnyNode() async throws {
        let presence = FerryStaticRegistry()
        let mailbox = FerryMemoryMailbox()
        @Sendable func configuration() -> FerryGateway.Configuration {
            var configuration = allListeners()
            configuration.cluster = FerryGateway.Cluster(registry: presence)
            configuration.durablePush = FerryGateway.DurablePush(mailbox: mailbox)
            return configuration
        }
        try await withGateway(configuration()) { _, first, _ in
            try await withGateway(configuration()) { secondGateway, second, _ in
                // The user is on the second gateway; a service talks to the first.
                let user = PushedClient(token: "rita")
                let receiver = FerryPushReceiver(router: user.peer.router)
                let session = try await user.peer.dial(try #require(second.socket))
                let secondInner = try #require(second.inner)
                #expect(await eventually {
                    (try? await presence.nodes(service: "ferry.presence/rita").map(\.address)) == [secondInner]
                })
                let service = FerryPeer(logger: quietLogger())
                let inner = try await service.dial(try #require(first.inner))

                let meta: FerryMeta = [FerryGateway.MetaKey.user: "rita", FerryGateway.MetaKey.pushRoute: "/chat/msg"]
                let written: Int = try await inner.call(
                    FerryGateway.InnerRoute.push, ByteBuffer(string: #""best effort""#), options: FerryCallOptions(meta: meta, codec: .json))
                #expect(written == 1)
                #expect(await eventually { user.received.all == ["best effort"] })

                let durable = Recorded<String>()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask { try await receiver.receive(on: session) { durable.append(try $0.decode(String.self)) } }
                    // Resumed on the second gateway, with nothing stored yet: only the first
                    // gateway's word that it stored something wakes the delivery.
                    #expect(await eventually { secondGateway.pushService?.deliveringSessions(of: "rita") == 1 })
                    let stored: [FerryGateway.Stored] = try await inner.call(
                        FerryGateway.InnerRoute.send, ByteBuffer(string: #""kept""#), options: FerryCallOptions(meta: meta, codec: .json))
                    #expect(stored.map(\.offset) == [1])
                    #expect(await eventually { durable.all == ["kept"] })
                    await user.peer.close()
                    try await group.next()
                }
                #expect(await eventually { (try? await presence.nodes(service: "ferry.presence/rita").isEmpty) == true })
                await service.close()
            }
        }
    }
}
