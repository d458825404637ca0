import Ferry
import FerryGateway
import FerryPush
import FerryTestSupport
import NIOCore
import Testing

@Suite("Rooms at the gateway")
struct RoomTests {
    func broadcast(_ text: String, to room: String, via inner: FerrySession) async throws -> Int {
        let meta: FerryMeta = [FerryGateway.MetaKey.room: room, FerryGateway.MetaKey.pushRoute: "/chat/msg"]
        return try await inner.call(
            FerryGateway.InnerRoomRoute.broadcast, ByteBuffer(string: "\"\(text)\""), options: FerryCallOptions(meta: meta, codec: .json))
    }

    @Test("members get a room's broadcasts, others do not; presence and counts follow joins, leaves and disconnects")
    func joinBroadcastLeave() async throws {
        var configuration = allListeners()
        configuration.rooms = FerryGateway.Rooms()
        try await withGateway(configuration) { gateway, addresses, _ in
            let ann = PushedClient(token: "ann")
            let ben = PushedClient(token: "ben")
            let cat = PushedClient(token: "cat")
            let annSession = try await ann.peer.dial(try #require(addresses.socket))
            let benSession = try await ben.peer.dial(try #require(addresses.webSocket))
            let catSession = try await cat.peer.dial(try #require(addresses.socket))
            try await annSession.call(FerryGateway.RoomRoute.join, "lobby", as: Void.self)
            try await benSession.call(FerryGateway.RoomRoute.join, "lobby", as: Void.self)
            try await catSession.call(FerryGateway.RoomRoute.join, "kitchen", as: Void.self)

            let service = FerryPeer(logger: quietLogger())
            let inner = try await service.dial(try #require(addresses.inner))
            #expect(try await broadcast("hello lobby", to: "lobby", via: inner) == 2)
            #expect(await eventually { ann.received.all == ["hello lobby"] && ben.received.all == ["hello lobby"] })
            #expect(cat.received.all.isEmpty)
            let members: [String] = try await inner.call(FerryGateway.InnerRoomRoute.members, "lobby")
            #expect(members == ["ann", "ben"])
            let rooms: [String: Int] = try await inner.call(FerryGateway.InnerRoomRoute.list, ())
            #expect(rooms == ["lobby": 2, "kitchen": 1])

            try await benSession.call(FerryGateway.RoomRoute.leave, "lobby", as: Void.self)
            #expect(try await broadcast("after ben left", to: "lobby", via: inner) == 1)
            await ann.peer.close()
            #expect(await eventually { gateway.rooms?.counts == ["kitchen": 1] }, "a closed session leaves its rooms")
            #expect(try await broadcast("nobody", to: "lobby", via: inner) == 0)
            await ben.peer.close()
            await cat.peer.close()
            await service.close()
        }
    }

    @Test("a join the access check refuses is 403")
    func accessCheck() async throws {
        var configuration = allListeners()
        configuration.rooms = FerryGateway.Rooms(mayJoin: { user, room in room != "staff" || user == "boss" })
        try await withGateway(configuration) { _, addresses, _ in
            let client = clientPeer(token: "intern")
            let session = try await client.dial(try #require(addresses.socket))
            let status = await #expect(throws: FerryStatus.self) {
                try await session.call(FerryGateway.RoomRoute.join, "staff", as: Void.self)
            }
            #expect(status?.code.rawValue == 403)
            try await session.call(FerryGateway.RoomRoute.join, "lobby", as: Void.self)
            await client.close()
        }
    }

    @Test("a room over its broadcast rate drops broadcasts with 429 until time refills it")
    func rateCap() async throws {
        let clock = TestClock()
        var configuration = allListeners()
        configuration.rooms = FerryGateway.Rooms(configuration: FerryRooms.Configuration(maximumBroadcastsPerSecond: 2, clock: clock))
        try await withGateway(configuration) { gateway, addresses, _ in
            let member = PushedClient(token: "dee")
            let session = try await member.peer.dial(try #require(addresses.socket))
            try await session.call(FerryGateway.RoomRoute.join, "busy", as: Void.self)
            let service = FerryPeer(logger: quietLogger())
            let inner = try await service.dial(try #require(addresses.inner))
            #expect(try await broadcast("1", to: "busy", via: inner) == 1)
            #expect(try await broadcast("2", to: "busy", via: inner) == 1)
            let status = await #expect(throws: FerryStatus.self) { _ = try await broadcast("3", to: "busy", via: inner) }
            #expect(status?.code.rawValue == 429)
            #expect(gateway.rooms?.dropped(in: "busy") == 1)
            clock.advance(by: .seconds(1))
            #expect(try await broadcast("4", to: "busy", via: inner) == 1)
            #expect(await eventually { member.received.all == ["1", "2", "4"] })
            await member.peer.close()
            await service.close()
        }
    }
}
