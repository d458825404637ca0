import Ferry
import NIOCore
import Testing

@Suite("Health route")
struct HealthRouteTests {
    /// Where handlers run: the built-in route is synchronous, run in place on the event loop and
    /// in a task on the global executor.
    static let executions: [FerryPeer.HandlerExecution] = [.eventLoop, .globalExecutor]

    @Test("a peer answers /ferry/health by default: OK, JSON when the caller asks for JSON, plain text otherwise", arguments: executions)
    func answeredByDefault(execution: FerryPeer.HandlerExecution) async throws {
        var configuration = FerryPeer.Configuration()
        configuration.handlerExecution = execution
        let pair = try await makePair(server: configuration)

        let json = try await pair.session.callForReply(FerryPeer.healthRoute, (), options: .timeout(.seconds(10)))
        #expect(json.status.isOK, "got \(json.status)")
        #expect(json.bodyCodec == .json)
        #expect(String(buffer: json.body) == #"{"status":"serving"}"#)
        #expect(try json.decode([String: String].self) == ["status": "serving"])

        let accepted = try await pair.session.callForReply(
            FerryPeer.healthRoute, (), options: FerryCallOptions(timeout: .seconds(10), acceptCodec: .plain))
        #expect(accepted.status.isOK, "got \(accepted.status)")
        #expect(accepted.bodyCodec == .plain)
        #expect(String(buffer: accepted.body) == "serving")

        let plainRequest = try await pair.session.call(
            FerryPeer.healthRoute, "", as: String.self, options: FerryCallOptions(timeout: .seconds(10), codec: .plain))
        #expect(plainRequest == "serving")

        #expect(!pair.server.router.routes.contains { $0.path == FerryPeer.healthRoute }, "the built-in route is not listed: \(pair.server.router.routes)")
        #expect(pair.server.router.routes.map(\.path) == ["/echo", "/math/add"])
        await pair.close()
    }

    @Test("with servesHealthRoute off, /ferry/health is an unknown route: 404")
    func turnedOff() async throws {
        var configuration = FerryPeer.Configuration()
        configuration.servesHealthRoute = false
        let pair = try await makePair(server: configuration)

        let reply = try await pair.session.callForReply(FerryPeer.healthRoute, (), options: .timeout(.seconds(10)))
        #expect(reply.status.code == .notFound, "got \(reply.status)")
        #expect(try await pair.session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) == 3, "other routes are served")
        await pair.close()
    }

    @Test("a route the user registers as /ferry/health replaces the built-in one")
    func userRouteWins() async throws {
        let pair = try await makePair(configure: { router in
            router.call(FerryPeer.healthRoute) { (_: Void, _: FerryContext) in "database reachable" }
        })

        let answer = try await pair.session.call(FerryPeer.healthRoute, (), as: String.self, options: .timeout(.seconds(10)))
        #expect(answer == "database reachable")
        #expect(pair.server.router.routes.contains(FerryRoute(kind: .call, path: FerryPeer.healthRoute)), "the user's route is listed")
        await pair.close()
    }

    @Test("the health route is answered by the peer itself before the catch-all, which still gets other unknown calls")
    func answeredBeforeCatchAll() async throws {
        let forwarded = Recorder<String>()
        let pair = try await makePair(configure: { router in
            router.unknownCall { message, _ in
                forwarded.append(message.serviceMethod)
                return FerryResponse(bodyCodec: .plain, body: ByteBuffer(string: "forwarded"))
            }
        })

        let health = try await pair.session.callForReply(FerryPeer.healthRoute, (), options: .timeout(.seconds(10)))
        #expect(health.status.isOK, "got \(health.status)")
        #expect(String(buffer: health.body) == #"{"status":"serving"}"#)
        let other = try await pair.session.callForReply("/not/registered", (), options: .timeout(.seconds(10)))
        #expect(String(buffer: other.body) == "forwarded")
        #expect(forwarded.all == ["/not/registered"], "only the unknown route reached the catch-all")
        await pair.close()
    }

    @Test("a draining peer answers /ferry/health with 106 Shutting Down, so a load balancer takes it out")
    func drainingPeer() async throws {
        let gate = Signal<Void>()
        let started = Signal<Void>()
        let pair = try await makePair(configure: { router in
            router.call("/work") { (_: Void, _: FerryContext) async -> String in
                started.fulfil(())
                await gate.wait()
                return "done"
            }
        })
        defer { gate.fulfil(()) }
        let healthy = try await pair.session.callForReply(FerryPeer.healthRoute, (), options: .timeout(.seconds(10)))
        #expect(healthy.status.isOK, "got \(healthy.status)")

        // A call in flight keeps the session open while the peer drains.
        let inFlight = Task { try await pair.session.call("/work", (), as: String.self, options: .timeout(.seconds(60))) }
        try #require(await started.wait(timeout: .seconds(20)) != nil, "the in-flight call reaches its handler")
        let shutdown = Task { await pair.server.shutdown(drainTimeout: .seconds(30)) }
        #expect(await eventually { pair.server.isDraining })

        let draining = try await pair.session.callForReply(FerryPeer.healthRoute, (), options: .timeout(.seconds(10)))
        #expect(draining.status.code == .shuttingDown, "got \(draining.status)")
        #expect(draining.status.message == "Shutting Down")
        #expect(draining.body.readableBytes == 0)

        gate.fulfil(())
        #expect(try await inFlight.value == "done")
        try await withDeadline(.seconds(20), "shutdown") { await shutdown.value }
        await pair.close()
    }
}
