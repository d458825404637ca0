import Ferry
import Foundation
import NIOCore
import Testing

@Suite("The stats route")
struct StatsRouteTests {
    @Test("/ferry/stats answers per-route counts, errors and latency buckets, the sessions and the load, as JSON")
    func snapshot() async throws {
        let stats = FerryPeer.Configuration(observability: FerryObservability(servesStats: true))
        let pair = try await makePair(server: stats, client: stats)
        for index in 0..<5 {
            #expect(try await pair.session.call("/math/add", AddArgs(a: index, b: 1), as: Int.self) == index + 1)
        }
        _ = await statusThrown { try await pair.session.call("/nope", "x", as: String.self) }
        let snapshot = try await pair.session.call(FerryPeer.statsRoute, "", as: FerryStatsSnapshot.self)
        let add = try #require(snapshot.routes.first { $0.route == "/math/add" && $0.direction == .inbound })
        #expect(add.kind == .call)
        #expect(add.count == 5)
        #expect(add.errors == 0)
        #expect(add.latencyBuckets.reduce(0, +) == 5)
        #expect(add.latencyBuckets.count == FerryStatsSnapshot.latencyBoundsMicroseconds.count + 1)
        #expect(add.percentile(0.99) != nil || add.latencyBuckets.last! > 0)
        let unknown = try #require(snapshot.routes.first { $0.route == "unknown" })
        #expect(unknown.count == 1 && unknown.errors == 1)
        #expect(snapshot.sessionCount == 1)
        #expect(snapshot.sessions.first?.id == pair.session.id || snapshot.sessions.count == 1)
        #expect(snapshot.sessions.first?.dialled == false)
        #expect(snapshot.maximumHandlers == pair.server.configuration.limits.maximumConcurrentHandlers)
        #expect(!snapshot.draining)
        #expect(snapshot.uptimeSeconds > 0)
        // The client kept its own figures: the calls it made.
        let made = try #require(pair.client.statistics()?.routes.first { $0.route == "/math/add" && $0.direction == .outbound })
        #expect(made.count == 5)
        await pair.close()
    }

    @Test("the JSON keys are snake case, as `ferry top` and scripts read them")
    func jsonKeys() throws {
        let snapshot = FerryStatsSnapshot(
            uptimeSeconds: 1.5, sessionCount: 1, sessions: [.init(id: "a", remote: "127.0.0.1:1", dialled: false)],
            handlersRunning: 0, maximumHandlers: 10, draining: false,
            routes: [.init(kind: .call, direction: .inbound, route: "/x", count: 1, errors: 0, latencyBuckets: [1])])
        let json = try #require(String(data: try JSONEncoder().encode(snapshot), encoding: .utf8))
        for key in ["uptime_seconds", "session_count", "handlers_running", "maximum_handlers", "latency_buckets", "\"direction\":\"in\""] {
            #expect(json.contains(key), "\(key) in \(json)")
        }
        #expect(try JSONDecoder().decode(FerryStatsSnapshot.self, from: Data(json.utf8)) == snapshot)
    }

    @Test("percentiles come from the difference of two snapshots")
    func percentilesBetweenSnapshots() {
        let bounds = FerryStatsSnapshot.latencyBoundsMicroseconds
        var earlier = [UInt64](repeating: 0, count: bounds.count + 1)
        earlier[0] = 100  // 100 fast calls before
        var later = earlier
        later[4] += 98  // then 98 calls under 1 ms
        later[8] += 2  // and 2 under 25 ms
        let before = FerryStatsSnapshot.Route(kind: .call, direction: .inbound, route: "/x", count: 100, errors: 0, latencyBuckets: earlier)
        let after = FerryStatsSnapshot.Route(kind: .call, direction: .inbound, route: "/x", count: 200, errors: 1, latencyBuckets: later)
        let recent = after.since(before)
        #expect(recent.count == 100)
        #expect(recent.errors == 1)
        #expect(recent.percentile(0.5) == .microseconds(bounds[4]))
        #expect(recent.percentile(0.99) == .microseconds(bounds[8]))
        #expect(after.percentile(0.5) == .microseconds(bounds[0]), "over all time, half were fast")
    }

    @Test("by default a peer keeps no statistics and answers /ferry/stats with 404")
    func offByDefault() async throws {
        let pair = try await makePair()
        let status = await statusThrown { try await pair.session.call(FerryPeer.statsRoute, "", as: FerryStatsSnapshot.self) }
        #expect(status?.code == .notFound)
        #expect(pair.server.statistics() == nil)
        await pair.close()
    }
}
