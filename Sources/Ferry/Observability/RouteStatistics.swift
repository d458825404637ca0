import FerryCore
import Synchronization

/// The per-route statistics behind ``FerryPeer/statsRoute``: counts, errors and a latency
/// histogram with fixed buckets, kept since the peer started. A reader takes differences
/// between two snapshots to get rates and recent percentiles, as `ferry top` does.
final class RouteStatistics: Sendable {
    private struct Key: Hashable {
        var kind: FerryStatsSnapshot.Kind
        var direction: FerryStatsSnapshot.Direction
        var route: String
    }

    private struct Entry {
        var count: UInt64 = 0
        var errors: UInt64 = 0
        var buckets = [UInt64](repeating: 0, count: FerryStatsSnapshot.latencyBoundsMicroseconds.count + 1)
    }

    private let entries = Mutex<[Key: Entry]>([:])

    /// Records one finished exchange.
    func record(kind: FerryStatsSnapshot.Kind, direction: FerryStatsSnapshot.Direction, route: String, failed: Bool, duration: Duration) {
        let micros = PeerMetrics.nanoseconds(duration) / 1000
        let bucket = Self.bucket(forMicroseconds: micros)
        let key = Key(kind: kind, direction: direction, route: route)
        entries.withLock { entries in Self.count(&entries[key, default: Entry()], failed: failed, bucket: bucket) }
    }

    /// One exchange into `entry`, in place (one lookup of the entry).
    private static func count(_ entry: inout Entry, failed: Bool, bucket: Int) {
        entry.count += 1
        if failed { entry.errors += 1 }
        entry.buckets[bucket] += 1
    }

    /// The index of the bucket that holds `micros`: the first bound at or above it, or the last.
    static func bucket(forMicroseconds micros: Int64) -> Int {
        let bounds = FerryStatsSnapshot.latencyBoundsMicroseconds
        var low = 0
        var high = bounds.count
        while low < high {
            let middle = (low + high) / 2
            if bounds[middle] < micros { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The routes' statistics, sorted by kind, direction and route.
    func routes() -> [FerryStatsSnapshot.Route] {
        entries.withLock { entries in
            entries.map { key, entry in
                FerryStatsSnapshot.Route(
                    kind: key.kind, direction: key.direction, route: key.route,
                    count: entry.count, errors: entry.errors, latencyBuckets: entry.buckets)
            }
        }
        .sorted { ($0.kind.rawValue, $0.direction.rawValue, $0.route) < ($1.kind.rawValue, $1.direction.rawValue, $1.route) }
    }
}
