@testable import FerryCLI
import Ferry
import Testing

@Suite("ferry top's frames")
struct TopViewTests {
    static func route(_ name: String, count: UInt64, errors: UInt64 = 0, fastBucket: UInt64, slowBucket: UInt64 = 0) -> FerryStatsSnapshot.Route {
        var buckets = [UInt64](repeating: 0, count: FerryStatsSnapshot.latencyBoundsMicroseconds.count + 1)
        buckets[2] = fastBucket  // at most 250 µs
        buckets[8] = slowBucket  // at most 25 ms
        return .init(kind: .call, direction: .inbound, route: name, count: count, errors: errors, latencyBuckets: buckets)
    }

    static func snapshot(uptime: Double, _ routes: [FerryStatsSnapshot.Route]) -> FerryStatsSnapshot {
        FerryStatsSnapshot(
            uptimeSeconds: uptime, sessionCount: 1, sessions: [.init(id: "alice", remote: "127.0.0.1:5000", dialled: false)],
            handlersRunning: 0, maximumHandlers: 512, draining: false, routes: routes)
    }

    @Test("rates and percentiles cover the time between two snapshots, busiest route first")
    func ratesBetweenSnapshots() {
        let before = Self.snapshot(uptime: 10, [Self.route("/a", count: 100, fastBucket: 100), Self.route("/b", count: 5, fastBucket: 5)])
        let after = Self.snapshot(
            uptime: 12,
            [Self.route("/a", count: 110, errors: 2, fastBucket: 100, slowBucket: 10), Self.route("/b", count: 45, fastBucket: 45)])
        let rows = TopView.rows(previous: before, current: after, seconds: 2)
        #expect(rows.map(\.route) == ["/b", "/a"], "20 calls/s before 5 calls/s")
        #expect(rows[0].rate == 20 && rows[0].p50 == "250us" && rows[0].total == 45)
        #expect(rows[1].rate == 5 && rows[1].errorRate == 1)
        #expect(rows[1].p50 == "25ms", "the last interval's calls were all slow, whatever came before")

        let lines = TopView.lines(address: "127.0.0.1:9090", previous: before, current: after, showsSessions: true)
        #expect(lines[0].contains("127.0.0.1:9090") && lines[0].contains("rates over 2.0s") && lines[0].contains("handlers 0/512"))
        #expect(lines.contains { $0.hasPrefix("KIND") && $0.contains("CALLS/S") && $0.contains("P99") })
        #expect(lines.contains { $0.contains("/b") && $0.contains("20.0") })
        #expect(lines.contains { $0.contains("alice") && $0.contains("accepted") })
    }

    @Test("a route with nothing new shows 0.0 and no percentiles; a first frame covers the time since start")
    func quietRoutesAndFirstFrame() {
        let before = Self.snapshot(uptime: 10, [Self.route("/a", count: 3, fastBucket: 3)])
        let after = Self.snapshot(uptime: 11, [Self.route("/a", count: 3, fastBucket: 3)])
        let row = TopView.rows(previous: before, current: after, seconds: 1)[0]
        #expect(row.rate == 0 && row.p50 == "-" && row.p99 == "-" && row.total == 3)
        #expect(TopView.lines(address: "x", previous: nil, current: after, showsSessions: false)[0].contains("rates since start"))
        #expect(TopView.lines(address: "x", previous: nil, current: Self.snapshot(uptime: 1, []), showsSessions: false).contains("no calls or pushes yet"))
    }

    @Test("durations and uptimes read as people write them")
    func formats() {
        #expect(TopView.latency(microseconds: 50) == "50us")
        #expect(TopView.latency(microseconds: 2_500) == "2.5ms")
        #expect(TopView.latency(microseconds: 1_000_000) == "1s")
        #expect(TopView.uptime(45) == "45s")
        #expect(TopView.uptime(187) == "3m07s")
        #expect(TopView.uptime(3_723) == "1h02m03s")
        #expect(TopView.uptime(187_200) == "2d04h")
    }
}
