import Ferry
import FerryGateway
import FerryTestSupport
import Logging
import ServiceLifecycle
import Testing

@Suite("Gateway shutdown")
struct GatewayShutdownTests {
    @Test("a graceful shutdown lets the HTTP request and the session call in flight finish, then run() returns")
    func gracefulShutdownDrains() async throws {
        let backend = try await Backend()
        let gateway = FerryGateway(
            registry: backend.registry(), service: "backend", verifier: FerryDevelopmentTokenVerifier(),
            configuration: allListeners(), logger: quietLogger())
        let group = ServiceGroup(configuration: .init(services: [gateway], logger: quietLogger()))
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let addresses = try await gateway.listeningAddresses()
            let client = clientPeer(token: "olga")
            let session = try await client.dial(try #require(addresses.socket))

            let httpCall = Task { try await http(.POST, addresses.http, "/slow/gate") }
            let sessionCall = Task { try await session.call("/slow/gate", (), as: String.self) }
            #expect(await eventually { backend.gateArrivals.all.count == 2 }, "both calls reached the service")

            await group.triggerGracefulShutdown()
            #expect(await eventually { gateway.outerPeer.isDraining }, "the gateway drains")
            backend.openGate()
            let result = try await httpCall.value
            #expect(result.status == 200, "body: \(result.body)")
            #expect(result.body == #""opened""#)
            #expect(try await sessionCall.value == "opened")
            try await tasks.next()
            await client.close()
        }
        await backend.close()
    }
}
