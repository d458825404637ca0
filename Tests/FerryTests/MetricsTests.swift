import Ferry
import Foundation
import Metrics
import MetricsTestKit
import NIOCore
import Testing

@Suite("Metrics")
struct MetricsTests {
    static func observed(_ metrics: TestMetrics) -> FerryPeer.Configuration {
        FerryPeer.Configuration(observability: FerryObservability(metrics: metrics))
    }

    static func calls(_ metrics: TestMetrics, _ direction: String, _ route: String, _ code: String) -> Int64 {
        metrics.counterTotal(label: FerryMetricNames.calls, dimensions: [("direction", direction), ("route", route), ("code", code)])
    }

    @Test("calls and pushes are counted on both sides by route and status, with their durations, body bytes, and sessions opened and closed by reason")
    func callsPushesAndSessions() async throws {
        let serverMetrics = TestMetrics()
        let clientMetrics = TestMetrics()
        let pushed = Recorder<String>()
        let pair = try await makePair(server: Self.observed(serverMetrics), client: Self.observed(clientMetrics)) { router in
            router.push("/note") { (text: String, _: FerryContext) in pushed.append(text) }
        }
        #expect(try await pair.session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) == 3)
        #expect(try await pair.session.call("/math/add", AddArgs(a: 2, b: 2), as: Int.self) == 4)
        let missing = await statusThrown { try await pair.session.call("/nope", "x", as: String.self) }
        #expect(missing?.code == .notFound)
        try await pair.session.push("/note", "hello")
        #expect(await eventually { pushed.count == 1 })

        // The server counts what it handled; a route it does not know is `unknown`.
        #expect(await eventually { Self.calls(serverMetrics, "in", "/math/add", "0") == 2 })
        #expect(await eventually { Self.calls(serverMetrics, "in", "unknown", "404") == 1 })
        #expect(Self.calls(serverMetrics, "in", "/nope", "404") == 0, "no series for a route the router does not know")
        #expect(await eventually {
            serverMetrics.counterTotal(label: FerryMetricNames.pushes, dimensions: [("direction", "in"), ("route", "/note"), ("code", "0")]) == 1
        })
        // The client counts what it made, under the routes it chose.
        #expect(Self.calls(clientMetrics, "out", "/math/add", "0") == 2)
        #expect(Self.calls(clientMetrics, "out", "/nope", "404") == 1)
        #expect(clientMetrics.counterTotal(label: FerryMetricNames.pushes, dimensions: [("direction", "out"), ("route", "/note"), ("code", "0")]) == 1)

        // Durations: one per call, on each side.
        let serverTimer = try serverMetrics.expectTimer(FerryMetricNames.callDuration, [("direction", "in"), ("route", "/math/add")])
        #expect(serverTimer.values.count == 2)
        #expect(serverTimer.values.allSatisfy { $0 > 0 })
        let clientTimer = try clientMetrics.expectTimer(FerryMetricNames.callDuration, [("direction", "out"), ("route", "/math/add")])
        #expect(clientTimer.values.count == 2)
        #expect(clientTimer.values.allSatisfy { $0 > 0 })

        // Body bytes: the server read the two `{"a":…,"b":…}` bodies, `"x"` and `"hello"`.
        let bodyIn = serverMetrics.counterTotal(label: FerryMetricNames.bodyBytes, dimensions: [("direction", "in")])
        #expect(bodyIn == Int64(2 * #"{"a":1,"b":2}"#.utf8.count + #""x""#.utf8.count + #""hello""#.utf8.count))
        #expect(clientMetrics.counterTotal(label: FerryMetricNames.bodyBytes, dimensions: [("direction", "in")]) == 2, "the replies 3 and 4")
        // At the socket, every frame counts whole: more than the bodies, the same on both ends.
        let wireIn = serverMetrics.counterTotal(label: FerryMetricNames.wireBytes, dimensions: [("direction", "in")])
        #expect(wireIn > bodyIn)
        #expect(await eventually {
            clientMetrics.counterTotal(label: FerryMetricNames.wireBytes, dimensions: [("direction", "out")])
                == serverMetrics.counterTotal(label: FerryMetricNames.wireBytes, dimensions: [("direction", "in")])
        })

        // Nothing left in flight; one session open on each side, accepted and dialled.
        #expect(try clientMetrics.expectMeter(FerryMetricNames.callsInFlight, [("direction", "out")]).lastValue == 0)
        #expect(await eventually { (try? serverMetrics.expectMeter(FerryMetricNames.handlersRunning).lastValue) == 0 })
        #expect(try serverMetrics.expectMeter(FerryMetricNames.sessionsOpen).lastValue == 1)
        #expect(serverMetrics.counterTotal(label: FerryMetricNames.sessionsOpened, dimensions: [("how", "accepted")]) == 1)
        #expect(clientMetrics.counterTotal(label: FerryMetricNames.sessionsOpened, dimensions: [("how", "dialled")]) == 1)

        // The client closes: the server counts a session closed by the remote, the client one closed locally.
        await pair.client.close()
        #expect(await eventually { serverMetrics.counterTotal(label: FerryMetricNames.sessionsClosed, dimensions: [("reason", "remote")]) == 1 })
        #expect(try serverMetrics.expectMeter(FerryMetricNames.sessionsOpen).lastValue == 0)
        #expect(clientMetrics.counterTotal(label: FerryMetricNames.sessionsClosed, dimensions: [("reason", "local")]) == 1)
        await pair.server.close()
    }

    @Test("a remote that calls a thousand made-up routes adds one series, `unknown`, not a thousand")
    func hostileRoutesAreBounded() async throws {
        let metrics = TestMetrics()
        let pair = try await makePair(server: Self.observed(metrics))
        for index in 0..<1000 {
            _ = try await pair.session.call("/made-up/\(index)", body: ByteBuffer(), codec: .plain, options: FerryCallOptions())
        }
        #expect(await eventually { Self.calls(metrics, "in", "unknown", "404") == 1000 })
        let routes = Set(metrics.counters(label: FerryMetricNames.calls).compactMap { counter in
            counter.dimensions.first { $0.0 == "route" }?.1
        })
        #expect(routes == ["unknown"])
        await pair.close()
    }

    @Test("close reasons fall into the fixed set of the reason label")
    func closeCategories() {
        #expect(FerryCloseCategory(reason: "idle for 2 seconds") == .idle)
        #expect(FerryCloseCategory(reason: "frame incomplete with no bytes for 200 milliseconds") == .readTimeout)
        #expect(FerryCloseCategory(reason: "no heartbeat or traffic for 2 seconds, twice the announced period") == .heartbeat)
        #expect(FerryCloseCategory(reason: "no auth within 200 milliseconds") == .auth)
        #expect(FerryCloseCategory(reason: "redial stopped: auth refused: 401") == .redial)
        #expect(FerryCloseCategory(reason: "slow consumer: the outbound queue is full") == .slowConsumer)
        #expect(FerryCloseCategory(reason: "older than its maximum age of 1 second") == .maximumAge)
        #expect(FerryCloseCategory(reason: "closed by this side") == .local)
        #expect(FerryCloseCategory(reason: "frame size 1213486160 exceeds the limit") == .protocolError)
        #expect(FerryCloseCategory(reason: "connection lost") == .remote)
    }

    @Test("without a metrics factory, nothing is recorded and calls work as before")
    func offByDefault() async throws {
        let pair = try await makePair()
        #expect(pair.server.configuration.observability.metrics == nil)
        #expect(pair.server.configuration.observability.tracer == nil)
        #expect(try await pair.session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) == 3)
        await pair.close()
    }
}
