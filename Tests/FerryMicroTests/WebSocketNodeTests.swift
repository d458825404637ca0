import Ferry
import FerryMicro
import FerryTestSupport
import Foundation
import Testing

@Suite("Nodes that listen on WebSocket")
struct WebSocketNodeTests {
    @Test("a node registered at a ws:// address keeps it through the registry's text form, and a FerryClient calls it over WebSocket")
    func clientCallsWebSocketNode() async throws {
        let server = FerryPeer(logger: quietLogger())
        server.router.call("/work") { (_: String, _: FerryContext) in "over ws" }
        let listener = try await server.listen(.webSocket(host: "127.0.0.1", port: 0, path: "/ws"))
        let node = FerryNode(service: "ws-svc", address: listener.address, routes: ["/work"])
        let decoded = try JSONDecoder().decode(FerryNode.self, from: JSONEncoder().encode(node))
        #expect(decoded.address == listener.address, "registered as \(decoded.address)")

        try await withFerryClient(service: "ws-svc", registry: FerryStaticRegistry(nodes: [decoded]), peer: makeClientPeer()) { client in
            let answer = try await client.call("/work", "x", as: String.self)
            #expect(answer == "over ws")
        }
        #expect(await eventually { server.hub.count == 0 }, "the client's WebSocket session closed with its scope")
        await server.close()
    }
}
