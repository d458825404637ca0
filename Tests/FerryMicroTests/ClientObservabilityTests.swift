@testable import FerryMicro
import FerryTestSupport
import InMemoryTracing
import MetricsTestKit
import Testing
import Tracing

@Suite("FerryClient metrics and spans", .timeLimit(.minutes(1)), .runsFerryClients)
struct ClientObservabilityTests {
    @Test("retries count as attempts, and each call's span has one child client span per attempt, on the nodes it tried")
    func retriesAreAttemptsAndChildSpans() async throws {
        let nodes = try await startNodes(2)
        nodes[0].set(.fail(FerryStatus(.unavailable, "Overloaded")))
        let metrics = TestMetrics()
        let tracer = InMemoryTracer()
        let peer = makeClientPeer(FerryPeer.Configuration(observability: FerryObservability(metrics: metrics, tracer: tracer)))
        let (client, _) = ClientTests.client(nodes, peer: peer) {
            $0.balancer = .roundRobin
            $0.breaker = nil
            $0.retry.minimumRetriesPerSecond = 100
            $0.retry.idempotentRoutes = ["/work"]
        }
        for _ in 0..<4 { #expect(try await ClientTests.work(client) == "n1") }

        let attempts = { (kind: String) in
            metrics.counterTotal(label: FerryClientMetricNames.attempts, dimensions: [("service", testService), ("kind", kind)])
        }
        #expect(attempts("first") == 4)
        #expect(attempts("retry") == Int64(nodes[0].hits), "one retry per call that reached the failing node first")
        #expect(nodes[0].hits >= 1)
        #expect(attempts("backup") == 0)

        let spans = tracer.finishedSpans
        let calls = spans.filter { $0.kind == .internal && $0.operationName == "/work" }
        #expect(calls.count == 4)
        var childCounts: [Int] = []
        for call in calls {
            let children = spans.filter { $0.parentSpanID == call.spanID && $0.kind == .client }
            childCounts.append(children.count)
            #expect(children.allSatisfy { $0.traceID == call.traceID && $0.operationName == "/work" })
            let addresses = children.compactMap { $0.attributes["server.address"]?.toSpanAttribute() }
            #expect(Set(addresses.map { "\($0)" }).count == children.count, "each attempt on another node")
            #expect(call.status == nil, "the call succeeded in the end")
        }
        #expect(childCounts.allSatisfy { $0 == 1 || $0 == 2 })
        #expect(childCounts.reduce(0, +) == 4 + nodes[0].hits, "one child span per attempt, retries included")
        await client.close()
        await stopAll(nodes)
    }

    @Test("a breaker that opens is counted per endpoint")
    func breakerChanges() async throws {
        let lone = try await TestNode.start("lone", behaviour: .closeSession)
        let metrics = TestMetrics()
        let peer = makeClientPeer(FerryPeer.Configuration(observability: FerryObservability(metrics: metrics)))
        let (client, _) = ClientTests.client([lone], peer: peer) {
            $0.retry = .disabled
            $0.breaker = .init(failureRatio: 0.5, minimumCalls: 2, windowSize: 2, openDuration: .seconds(60))
        }
        for _ in 0..<3 { _ = await statusThrown { try await ClientTests.work(client) } }
        let opened = metrics.counterTotal(
            label: FerryClientMetricNames.circuitChanges,
            dimensions: [("service", testService), ("endpoint", lone.listener.address.description), ("state", "open")])
        #expect(opened == 1)
        await client.close()
        await lone.stop()
    }
}
