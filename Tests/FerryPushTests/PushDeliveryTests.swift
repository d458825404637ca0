import Ferry
import FerryPush
import FerryTestSupport
import MetricsTestKit
import NIOCore
import Synchronization
import Testing

/// A server peer whose sessions authenticate with their user name, with a push service.
struct PushServer {
    let peer: FerryPeer
    let service: FerryPushService
    let address: FerryAddress

    /// Runs a server for the duration of `body`.
    static func with<Result: Sendable>(
        mailbox: any FerryMailbox = FerryMemoryMailbox(), configuration: FerryPushService.Configuration = .init(),
        _ body: @Sendable (PushServer) async throws -> Result
    ) async throws -> Result {
        let services = Mutex<FerryPushService?>(nil)
        var peerConfiguration = FerryPeer.Configuration()
        peerConfiguration.auth = FerryAuth(verify: { token, session in
            session.setID(token)
            return token
        })
        peerConfiguration.hooks.onDisconnect = { session in services.withLock { $0 }?.sessionClosed(session) }
        let peer = FerryPeer(configuration: peerConfiguration, logger: quietLogger())
        let service = FerryPushService(mailbox: mailbox, configuration: configuration, logger: quietLogger()) { $0.id }
        services.withLock { $0 = service }
        service.install(on: peer.router)
        let listener = try await peer.listen(.tcp(host: "127.0.0.1", port: 0))
        let server = PushServer(peer: peer, service: service, address: listener.address)
        let result = try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await service.run() }
            defer { group.cancelAll() }
            return try await body(server)
        }
        await peer.close()
        return result
    }

    /// Dials as `user`.
    func dial(as user: String, peer client: FerryPeer) async throws -> FerrySession {
        try await client.dial(address)
    }
}

/// A client peer that authenticates as `user`.
func userPeer(_ user: String) -> FerryPeer {
    var configuration = FerryPeer.Configuration()
    configuration.auth = FerryAuth(credential: { user })
    return FerryPeer(configuration: configuration, logger: quietLogger())
}

/// Collects what a receiver's handler gets.
final class Inbox: Sendable {
    private let items = Mutex<[(offset: UInt64, text: String, lost: UInt64)]>([])
    func add(_ delivery: FerryDelivery) throws {
        let text = try delivery.decode(String.self)
        items.withLock { $0.append((delivery.offset, text, delivery.lost)) }
    }
    func add(offset: UInt64, text: String) {
        items.withLock { $0.append((offset, text, 0)) }
    }
    var offsets: [UInt64] { items.withLock { $0.map(\.offset) } }
    var texts: [String] { items.withLock { $0.map(\.text) } }
    var count: Int { items.withLock { $0.count } }
}

@Suite("At-least-once pushes")
struct PushDeliveryTests {
    @Test("pushes stored while the user was offline arrive in order when a session resumes, then live ones follow")
    func offlineThenLive() async throws {
        try await PushServer.with { server in
            for text in ["one", "two", "three"] {
                try await server.service.push(to: "ann", route: "/chat/msg", text)
            }
            let client = userPeer("ann")
            let receiver = FerryPushReceiver(router: client.router)
            let session = try await client.dial(server.address)
            let inbox = Inbox()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await receiver.receive(on: session) { try inbox.add($0) } }
                #expect(await eventually { inbox.count == 3 })
                try await server.service.push(to: "ann", route: "/chat/msg", "four")
                #expect(await eventually { inbox.count == 4 })
                await client.close()
                try await group.next()
            }
            #expect(inbox.texts == ["one", "two", "three", "four"])
            #expect(inbox.offsets == [1, 2, 3, 4])
            #expect(receiver.position?.offset == 4)
        }
    }

    @Test("a receiver that reconnects resumes after the last message it processed")
    func resumeAfterReconnect() async throws {
        try await PushServer.with { server in
            let client = userPeer("bo")
            let receiver = FerryPushReceiver(router: client.router)
            let inbox = Inbox()
            for text in ["a", "b"] { try await server.service.push(to: "bo", route: "/r", text) }
            let first = try await client.dial(server.address)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await receiver.receive(on: first) { try inbox.add($0) } }
                #expect(await eventually { inbox.count == 2 })
                #expect(await eventually { server.service.deliveringSessions(of: "bo") == 1 })
                await first.close()
                try await group.next()
            }
            for text in ["c", "d"] { try await server.service.push(to: "bo", route: "/r", text) }
            let second = try await client.dial(server.address)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    let resumed = try await receiver.receive(on: second) { try inbox.add($0) }
                    #expect(!resumed.epochChanged && resumed.lost == 0 && resumed.offset == 4)
                }
                #expect(await eventually { inbox.count == 4 })
                await client.close()
                try await group.next()
            }
            #expect(inbox.texts == ["a", "b", "c", "d"], "nothing twice, nothing missing")
        }
    }

    @Test("a receiver from another epoch starts over, and what the cap dropped is reported as lost")
    func epochAndLoss() async throws {
        try await PushServer.with(mailbox: FerryMemoryMailbox(limits: FerryMailboxLimits(maximumMessages: 3))) { server in
            for index in 1...5 { try await server.service.push(to: "cy", route: "/r", "m\(index)") }
            let client = userPeer("cy")
            let receiver = FerryPushReceiver(router: client.router, position: FerryStreamPosition(epoch: "gone", offset: 9))
            let session = try await client.dial(server.address)
            let inbox = Inbox()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    let resumed = try await receiver.receive(on: session) { try inbox.add($0) }
                    #expect(resumed.epochChanged)
                    #expect(resumed.lost == 2)
                }
                #expect(await eventually { inbox.count == 3 })
                await client.close()
                try await group.next()
            }
            #expect(inbox.texts == ["m3", "m4", "m5"])
            #expect(receiver.lostMessages == 2)
        }
    }

    @Test("at most a window of unacknowledged messages is in flight; acks make room")
    func windowBound() async throws {
        try await PushServer.with(configuration: .init(window: 2, resendAfter: .seconds(3600))) { server in
            for index in 1...5 { try await server.service.push(to: "di", route: "/r", "m\(index)") }
            let client = userPeer("di")
            let seen = Inbox()
            client.router.addRoute(.push, FerryPushProtocol.deliverRoute) { message, context in
                let offset = UInt64(message.meta[FerryPushProtocol.MetaKey.offset] ?? "") ?? 0
                seen.add(offset: offset, text: String(buffer: message.body))
                return FerryResponse()
            }
            let session = try await client.dial(server.address)
            let resumed: FerryPushProtocol.Resumed = try await session.call(FerryPushProtocol.resumeRoute, FerryPushProtocol.Resume())
            #expect(await eventually { seen.count == 2 })
            try await session.call(FerryPushProtocol.ackRoute, FerryPushProtocol.Ack(epoch: resumed.epoch, offset: 1), as: Void.self)
            #expect(await eventually { seen.count == 3 })
            #expect(seen.offsets == [1, 2, 3])
            await client.close()
        }
    }

    @Test("bad acks are refused with 400: an offset never sent, another epoch, no resumed stream")
    func badAcks() async throws {
        try await PushServer.with { server in
            try await server.service.push(to: "ed", route: "/r", "x")
            let client = userPeer("ed")
            let session = try await client.dial(server.address)
            let early = await #expect(throws: FerryStatus.self) {
                try await session.call(FerryPushProtocol.ackRoute, FerryPushProtocol.Ack(epoch: "e", offset: 1), as: Void.self)
            }
            #expect(early?.code == .badMessage)
            let resumed: FerryPushProtocol.Resumed = try await session.call(FerryPushProtocol.resumeRoute, FerryPushProtocol.Resume())
            let unsent = await #expect(throws: FerryStatus.self) {
                try await session.call(FerryPushProtocol.ackRoute, FerryPushProtocol.Ack(epoch: resumed.epoch, offset: 7), as: Void.self)
            }
            #expect(unsent?.code == .badMessage)
            let foreign = await #expect(throws: FerryStatus.self) {
                try await session.call(FerryPushProtocol.ackRoute, FerryPushProtocol.Ack(epoch: "someone else's", offset: 1), as: Void.self)
            }
            #expect(foreign?.code == .badMessage)
            let past = await #expect(throws: FerryStatus.self) {
                let _: FerryPushProtocol.Resumed = try await session.call(
                    FerryPushProtocol.resumeRoute, FerryPushProtocol.Resume(epoch: resumed.epoch, offset: 99))
            }
            #expect(past?.code == .badMessage)
            await client.close()
        }
    }

    @Test("an unacknowledged message is sent again after the resend time, and the receiver drops the duplicate; the metrics count each step")
    func resendAndDuplicates() async throws {
        let clock = TestClock()
        let metrics = TestMetrics()
        try await PushServer.with(configuration: .init(resendAfter: .seconds(10), clock: clock, metrics: metrics)) { server in
            try await server.service.push(to: "fay", route: "/r", "only")
            let client = userPeer("fay")
            let receiver = FerryPushReceiver(router: client.router)
            let session = try await client.dial(server.address)
            let gate = Gate()
            let inbox = Inbox()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await receiver.receive(on: session) { delivery in
                        await gate.pass()
                        try inbox.add(delivery)
                    }
                }
                // The handler holds the first delivery, so no ack goes; the server's stream
                // waits for its resend time.
                #expect(await eventually { clock.sleeperCount > 0 })
                clock.advance(by: .seconds(11))
                #expect(await eventually { receiver.duplicatesDropped == 0 && server.service.deliveringSessions(of: "fay") == 1 })
                #expect(try metrics.expectMeter(FerryPushMetricNames.streams).lastValue == 1)
                #expect(await eventually { metrics.counterTotal(label: FerryPushMetricNames.deliveries) == 2 })
                #expect(try metrics.expectMeter(FerryPushMetricNames.unacknowledged).lastValue == 1, "sent again, awaiting its ack")
                gate.open()
                #expect(await eventually { receiver.duplicatesDropped == 1 })
                #expect(await eventually { (try? metrics.expectMeter(FerryPushMetricNames.unacknowledged).lastValue) == 0 })
                await client.close()
                try await group.next()
            }
            #expect(inbox.texts == ["only"], "handled once")
            #expect(metrics.counterTotal(label: FerryPushMetricNames.stored) == 1)
            #expect(metrics.counterTotal(label: FerryPushMetricNames.deliveries) == 2, "sent, then sent again")
            #expect(metrics.counterTotal(label: FerryPushMetricNames.resends) == 1)
            #expect(metrics.counterTotal(label: FerryPushMetricNames.acks) >= 1)
            #expect(await eventually { (try? metrics.expectMeter(FerryPushMetricNames.streams).lastValue) == 0 })
        }
    }
}
