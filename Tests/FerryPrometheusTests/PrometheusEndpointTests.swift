import AsyncHTTPClient
import Ferry
import FerryPrometheus
import FerryTestSupport
import Foundation
import NIOCore
import Prometheus
import Testing

struct AddArgs: Codable, Sendable {
    var a: Int
    var b: Int
}

@Suite("Prometheus endpoint")
struct PrometheusEndpointTests {
    @Test("a peer's calls show at GET /metrics in Prometheus's text format, durations in sub-millisecond buckets")
    func scrape() async throws {
        let registry = PrometheusCollectorRegistry()
        let observed = FerryPeer.Configuration(
            observability: FerryObservability(metrics: FerryPrometheusEndpoint.metricsFactory(registry: registry)))
        let server = FerryPeer(configuration: observed, logger: quietLogger())
        server.router.call("/math/add") { (args: AddArgs, _: FerryContext) in args.a + args.b }
        let listener = try await server.listen(.tcp(host: "127.0.0.1", port: 0))
        let client = FerryPeer(logger: quietLogger())
        let session = try await client.dial(listener.address)
        for index in 0..<3 {
            #expect(try await session.call("/math/add", AddArgs(a: index, b: 1), as: Int.self) == index + 1)
        }

        let (ports, portsContinuation) = AsyncStream.makeStream(of: Int.self)
        let endpoint = FerryPrometheusEndpoint(host: "127.0.0.1", port: 0, registry: registry, logger: quietLogger()) { port in
            portsContinuation.yield(port)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await endpoint.run() }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())

            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/metrics"), timeout: .seconds(30))
            #expect(response.status.code == 200)
            #expect(response.headers.first(name: "Content-Type") == FerryPrometheusEndpoint.contentType)
            let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
            let lines = text.split(separator: "\n").map(String.init)
            // Labels are sorted or not by the library: look for the series by its parts.
            let calls = lines.first { $0.hasPrefix("ferry_calls_total{") && $0.contains(#"route="/math/add""#) && $0.contains(#"direction="in""#) }
            #expect(calls?.hasSuffix(" 3") == true, "\(text)")
            #expect(lines.contains { $0.hasPrefix("ferry_call_duration_seconds_bucket{") && $0.contains(#"le="0.0001""#) }, "\(text)")
            #expect(lines.contains { $0.hasPrefix("ferry_call_duration_seconds_count{") && $0.hasSuffix(" 3") }, "\(text)")
            #expect(lines.contains { $0.hasPrefix("ferry_sessions_open") && $0.hasSuffix(" 1") }, "\(text)")

            let missing = try await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/other"), timeout: .seconds(30))
            #expect(missing.status.code == 404)
            group.cancelAll()
        }
        await client.close()
        await server.close()
    }
}
