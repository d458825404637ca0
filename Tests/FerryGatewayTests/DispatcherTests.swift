import Ferry
import FerryGateway
import FerryMicro
import FerryTestSupport
import Foundation
import Testing

@Suite("The gateway list (dispatcher)")
struct DispatcherTests {
    @Test("GET /gateways on any gateway lists the gateways least loaded first, with their public addresses; a gateway that stops leaves the list")
    func leastLoadedFirst() async throws {
        let gateways = FerryStaticRegistry()
        let announcement = FerryGateway.Announcement(registry: gateways, interval: .milliseconds(50), listed: 5)
        var busyConfiguration = allListeners()
        busyConfiguration.announcement = announcement
        try await withGateway(busyConfiguration) { _, busy, _ in
            var idleConfiguration = allListeners()
            idleConfiguration.announcement = FerryGateway.Announcement(
                registry: gateways, publicAddresses: ["webSocket": "wss://idle.example/ws"], interval: .milliseconds(50), listed: 5)
            try await withGateway(idleConfiguration) { _, idle, _ in
                let clients = (0..<2).map { _ in clientPeer(token: "kim") }
                _ = try await clients[0].dial(try #require(busy.socket))
                _ = try await clients[1].dial(try #require(busy.webSocket))

                @Sendable func list() async throws -> [FerryGateway.GatewayEntry] {
                    let result = try await http(.GET, idle.http, "/gateways")
                    return try JSONDecoder().decode([FerryGateway.GatewayEntry].self, from: Data(result.body.utf8))
                }
                #expect(await eventually { (try? await list().map(\.load)) == [0, 1] }, "single login leaves kim one session on the busy gateway")
                let entries = try await list()
                #expect(entries[0].webSocket == "wss://idle.example/ws", "the idle gateway's public address")
                #expect(entries[0].socket == idle.socket.map { "\($0)" })
                #expect(entries[1].socket == busy.socket.map { "\($0)" })
                #expect(entries[1].http == busy.http.map { "\($0)" })
                for client in clients { await client.close() }
            }
            #expect(await eventually { (try? await gateways.nodes(service: "gateway").count) == 1 }, "the stopped gateway deregistered")
        }
    }
}
