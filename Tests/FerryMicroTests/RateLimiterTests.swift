@testable import FerryMicro
import FerryTestSupport
import Testing

@Suite("Rate limiter", .timeLimit(.minutes(1)), .runsFerryClients)
struct RateLimiterTests {
    /// A server whose `/limited` and `/open` routes are behind `limiter`, and two sessions to it
    /// from one client peer (two session IDs on the server).
    static func serve(_ limiter: FerryRateLimiter) async throws -> (FerryPeer, FerryPeer, FerrySession, FerrySession) {
        let server = FerryPeer(logger: quietLogger())
        server.router.use(limiter)
        server.router.call("/limited") { (_: String, _: FerryContext) in "ok" }
        server.router.call("/open") { (_: String, _: FerryContext) in "ok" }
        let listener = try await server.listen(.tcp(host: "127.0.0.1", port: 0))
        let client = makeClientPeer()
        let a = try await client.dial(listener.address)
        let b = try await client.dial(listener.address)
        return (server, client, a, b)
    }

    static func code(_ session: FerrySession, _ route: String) async throws -> FerryStatus.Code {
        try await session.callForReply(route, "x").status.code
    }

    @Test("a route over its limit answers 429 Rate Limited to every session; other routes still work")
    func perRoute() async throws {
        let limiter = FerryRateLimiter(perRoute: ["/limited": .init(perSecond: 0.001, burst: 2)])
        let (server, client, a, b) = try await Self.serve(limiter)
        #expect(try await Self.code(a, "/limited") == .ok)
        #expect(try await Self.code(b, "/limited") == .ok)
        let refused = try await a.callForReply("/limited", "x").status
        #expect(refused.code == .rateLimited && refused.code.rawValue == 429)
        #expect(refused.message == "Rate Limited")
        #expect(try await Self.code(b, "/limited") == .rateLimited)
        for _ in 0..<5 { #expect(try await Self.code(a, "/open") == .ok) }
        await client.close()
        await server.close()
    }

    @Test("a session over its limit answers 429 to it alone")
    func perSession() async throws {
        let limiter = FerryRateLimiter(perSession: .init(perSecond: 0.001, burst: 3))
        let (server, client, a, b) = try await Self.serve(limiter)
        for route in ["/limited", "/open", "/open"] { #expect(try await Self.code(a, route) == .ok) }
        #expect(try await Self.code(a, "/open") == .rateLimited)
        #expect(try await Self.code(a, "/limited") == .rateLimited)
        for _ in 0..<3 { #expect(try await Self.code(b, "/open") == .ok) }
        #expect(try await Self.code(b, "/open") == .rateLimited)
        await client.close()
        await server.close()
    }

    @Test("a FerryClient neither retries a 429 nor counts it against the node")
    func clientSeesRateLimited() async throws {
        let node = try await TestNode.start("n0") { router in
            router.use(FerryRateLimiter(perRoute: ["/work": .init(perSecond: 0.001, burst: 1)]))
        }
        let registry = FerryStaticRegistry(nodes: [node.node])
        let client = runningClient(registry: registry)
        #expect(try await client.call("/work", "x", as: String.self) == "n0")
        let status = await statusThrown { try await client.call("/work", "x", as: String.self) }
        #expect(status?.code == .rateLimited)
        #expect(node.hits == 1)
        let endpoint = try #require(client.status(of: node))
        #expect(endpoint.calls == 2 && endpoint.failures == 0 && endpoint.circuit == .closed)
        await client.close()
        await node.stop()
    }

    @Test("a limited route answers 429 until the limiter's clock has refilled a token, with no waiting")
    func refillsByItsClock() async throws {
        let clock = TestClock()
        let limiter = FerryRateLimiter(perRoute: ["/limited": .init(perSecond: 2, burst: 1)], clock: clock)
        let (server, client, a, _) = try await Self.serve(limiter)
        #expect(try await Self.code(a, "/limited") == .ok)
        #expect(try await Self.code(a, "/limited") == .rateLimited)
        clock.advance(by: .milliseconds(499))
        #expect(try await Self.code(a, "/limited") == .rateLimited)
        clock.advance(by: .milliseconds(1))
        #expect(try await Self.code(a, "/limited") == .ok)
        #expect(try await Self.code(a, "/limited") == .rateLimited)
        await client.close()
        await server.close()
    }

    @Test("buckets refill at their rate, a refused message costs nothing, and idle buckets are forgotten")
    func buckets() {
        let clock = TestClock()
        let limiter = FerryRateLimiter(
            perSession: .init(perSecond: 1, burst: 3), perRoute: ["/r": .init(perSecond: 1, burst: 1)],
            defaultPerRoute: .init(perSecond: 10, burst: 10), clock: clock)
        #expect(limiter.admit(session: "a", route: "/r") == nil)
        let routeRefusal = limiter.admit(session: "a", route: "/r")
        #expect(routeRefusal?.code == .rateLimited)
        #expect(routeRefusal?.cause.contains("route /r") == true)
        // The refused call took no session token: two remain.
        #expect(limiter.admit(session: "a", route: "/x") == nil)
        #expect(limiter.admit(session: "a", route: "/y") == nil)
        let sessionRefusal = limiter.admit(session: "a", route: "/x")
        #expect(sessionRefusal?.cause.contains("session a") == true)
        // A second later: one more token for the session and for /r.
        clock.advance(by: .seconds(1))
        #expect(limiter.admit(session: "a", route: "/r") == nil)
        #expect(limiter.admit(session: "a", route: "/x")?.code == .rateLimited)
        #expect(limiter.bucketCount == 4)  // session a, /r, /x, /y
        // Long after, every bucket is full again and a sweep forgets them.
        clock.advance(by: .seconds(60))
        #expect(limiter.admit(session: "b", route: "/z") == nil)
        #expect(limiter.bucketCount == 2)  // session b and /z only

        let unlimited = FerryRateLimiter(clock: clock)
        for _ in 0..<100 { #expect(unlimited.admit(session: "a", route: "/r") == nil) }
        #expect(unlimited.bucketCount == 0)
    }
}
