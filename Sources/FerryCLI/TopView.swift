import Ferry
import Foundation

/// What one frame of `ferry top` shows, as lines of text: a header with the peer's load, then
/// its routes sorted by rate, then (with `--sessions`) its sessions. A pure function of two
/// snapshots, so that it can be checked without a terminal.
///
/// Rates and percentiles come from the difference between the two snapshots, over the time
/// between them as the peer's uptime measures it. Without an earlier snapshot (the first frame),
/// they cover everything since the peer started.
enum TopView {
    /// The column titles of the route table.
    static let titles = ["KIND", "DIR", "ROUTE", "CALLS/S", "ERR/S", "P50", "P99", "TOTAL"]

    /// One row of the route table, before formatting.
    struct Row: Equatable {
        var kind: String
        var direction: String
        var route: String
        var rate: Double
        var errorRate: Double
        var p50: String
        var p99: String
        var total: UInt64

        var cells: [String] {
            [kind, direction, route, TopView.rate(rate), TopView.rate(errorRate), p50, p99, String(total)]
        }
    }

    /// The frame for `current`, with rates since `previous` (or since the peer started).
    static func lines(address: String, previous: FerryStatsSnapshot?, current: FerryStatsSnapshot, showsSessions: Bool) -> [String] {
        let window = window(previous: previous, current: current)
        var lines = [header(address: address, current: current, window: window)]
        let rows = rows(previous: previous, current: current, seconds: window.seconds)
        if rows.isEmpty {
            lines.append("")
            lines.append("no calls or pushes yet")
        } else {
            lines.append("")
            lines += table(rows)
        }
        if showsSessions {
            lines.append("")
            lines += sessions(current)
        }
        return lines
    }

    /// The time the rates cover: between the snapshots, or since the start.
    private static func window(previous: FerryStatsSnapshot?, current: FerryStatsSnapshot) -> (seconds: Double, sinceStart: Bool) {
        if let previous, current.uptimeSeconds > previous.uptimeSeconds {
            return (current.uptimeSeconds - previous.uptimeSeconds, false)
        }
        return (current.uptimeSeconds, true)
    }

    /// `127.0.0.1:9090  up 1h02m03s  sessions 2  handlers 1/512  not draining  (rates over 1.0s)`.
    private static func header(address: String, current: FerryStatsSnapshot, window: (seconds: Double, sinceStart: Bool)) -> String {
        let over = window.sinceStart ? "rates since start" : "rates over \(String(format: "%.1f", window.seconds))s"
        return [
            address, "up \(uptime(current.uptimeSeconds))", "sessions \(current.sessionCount)",
            "handlers \(current.handlersRunning)/\(current.maximumHandlers)", current.draining ? "DRAINING" : "not draining", "(\(over))",
        ].joined(separator: "  ")
    }

    /// The routes with their rates, busiest first (then by total, then by name).
    static func rows(previous: FerryStatsSnapshot?, current: FerryStatsSnapshot, seconds: Double) -> [Row] {
        let earlier = Dictionary(
            (previous?.routes ?? []).map { (RouteKey($0), $0) }, uniquingKeysWith: { first, _ in first })
        let rows = current.routes.map { route -> Row in
            // A route the earlier snapshot lacks: all of its exchanges are new.
            let delta = route.since(earlier[RouteKey(route)])
            return Row(
                kind: route.kind.rawValue, direction: route.direction.rawValue, route: route.route,
                rate: seconds > 0 ? Double(delta.count) / seconds : 0,
                errorRate: seconds > 0 ? Double(delta.errors) / seconds : 0,
                p50: percentile(delta, 0.5), p99: percentile(delta, 0.99), total: route.count)
        }
        return rows.sorted { lhs, rhs in
            if lhs.rate != rhs.rate { return lhs.rate > rhs.rate }
            if lhs.total != rhs.total { return lhs.total > rhs.total }
            return (lhs.route, lhs.kind, lhs.direction) < (rhs.route, rhs.kind, rhs.direction)
        }
    }

    private struct RouteKey: Hashable {
        var kind: FerryStatsSnapshot.Kind
        var direction: FerryStatsSnapshot.Direction
        var route: String

        init(_ route: FerryStatsSnapshot.Route) {
            (kind, direction, self.route) = (route.kind, route.direction, route.route)
        }
    }

    /// The titles and rows, in columns: text left-aligned, figures right-aligned.
    private static func table(_ rows: [Row]) -> [String] {
        let cells = [titles] + rows.map(\.cells)
        let widths = titles.indices.map { column in cells.map { $0[column].count }.max() ?? 0 }
        let leftAligned: Set<Int> = [0, 1, 2]
        return cells.map { row in
            row.indices.map { column in
                let padding = String(repeating: " ", count: widths[column] - row[column].count)
                return leftAligned.contains(column) ? row[column] + padding : padding + row[column]
            }
            .joined(separator: "  ")
            .trimmingTrailingSpaces
        }
    }

    /// `SESSIONS 2`, then `ID  REMOTE  accepted|dialled` per listed session.
    private static func sessions(_ current: FerryStatsSnapshot) -> [String] {
        let listed = current.sessions.count
        var lines = ["SESSIONS \(current.sessionCount)" + (listed < current.sessionCount ? " (\(listed) listed)" : "")]
        let idWidth = current.sessions.map(\.id.count).max() ?? 0
        let remoteWidth = current.sessions.map(\.remote.count).max() ?? 0
        for session in current.sessions {
            let id = session.id + String(repeating: " ", count: idWidth - session.id.count)
            let remote = session.remote + String(repeating: " ", count: remoteWidth - session.remote.count)
            lines.append("  \(id)  \(remote)  \(session.dialled ? "dialled" : "accepted")")
        }
        return lines
    }

    /// `12.5`, `0.0`.
    static func rate(_ value: Double) -> String {
        String(format: "%.1f", value)
    }

    /// The percentile of a route's exchanges: `-` without any, `>10s` past the last bucket.
    static func percentile(_ route: FerryStatsSnapshot.Route, _ fraction: Double) -> String {
        guard route.latencyBuckets.contains(where: { $0 > 0 }) else { return "-" }
        guard let duration = route.percentile(fraction) else {
            let last = FerryStatsSnapshot.latencyBoundsMicroseconds.last ?? 0
            return ">" + latency(microseconds: last)
        }
        let (seconds, attoseconds) = duration.components
        return latency(microseconds: seconds * 1_000_000 + attoseconds / 1_000_000_000_000)
    }

    /// `50us`, `2.5ms`, `1s`.
    static func latency(microseconds: Int64) -> String {
        func trimmed(_ value: Double) -> String {
            value == value.rounded() ? String(Int64(value)) : String(format: "%.1f", value)
        }
        if microseconds < 1_000 { return "\(microseconds)us" }
        if microseconds < 1_000_000 { return trimmed(Double(microseconds) / 1_000) + "ms" }
        return trimmed(Double(microseconds) / 1_000_000) + "s"
    }

    /// `45s`, `3m07s`, `1h02m03s`, `2d04h`.
    static func uptime(_ seconds: Double) -> String {
        let total = Int(max(0, seconds))
        let (days, hours, minutes, secs) = (total / 86_400, total / 3_600 % 24, total / 60 % 60, total % 60)
        if days > 0 { return String(format: "%dd%02dh", days, hours) }
        if hours > 0 { return String(format: "%dh%02dm%02ds", hours, minutes, secs) }
        if minutes > 0 { return String(format: "%dm%02ds", minutes, secs) }
        return "\(secs)s"
    }
}

extension String {
    /// The string without the spaces at its end.
    fileprivate var trimmingTrailingSpaces: String {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }
}
