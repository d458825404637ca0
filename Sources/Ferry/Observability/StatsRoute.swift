import FerryCore
import Foundation
import NIOCore

extension FerryPeer {
    /// The route of the statistics a peer answers when ``FerryObservability/servesStats`` is
    /// on: `/ferry/stats`.
    ///
    /// A CALL to it is answered with a JSON ``FerryStatsSnapshot``: per-route counts, errors and
    /// latency buckets since the peer started, its sessions and its load. `ferry top` polls it.
    /// As for ``healthRoute``, auth and the header hook apply; a route the user registers under
    /// this name replaces it, and it is not announced to discovery.
    public static let statsRoute = "/ferry/stats"

    /// The peer's statistics now; nil when ``FerryObservability/servesStats`` is off.
    public func statistics() -> FerryStatsSnapshot? {
        guard let routes = instruments.statistics?.routes() else { return nil }
        let sessions = hub.all
        return FerryStatsSnapshot(
            uptimeSeconds: Double(Self.nanoseconds(instruments.startedAt.duration(to: .now))) / 1e9,
            sessionCount: sessions.count,
            sessions: sessions.prefix(FerryStatsSnapshot.maximumSessionsListed).map {
                FerryStatsSnapshot.Session(id: $0.id, remote: $0.remoteAddress, dialled: $0.isDialled)
            },
            handlersRunning: runningHandlers.load(ordering: .relaxed),
            maximumHandlers: configuration.limits.maximumConcurrentHandlers,
            draining: isDraining,
            routes: routes)
    }

    private static func nanoseconds(_ duration: Duration) -> Int64 { PeerMetrics.nanoseconds(duration) }

    /// The built-in stats route's handler; it holds the peer weakly (the peer holds its routes).
    var statsHandler: FerrySynchronousHandler {
        { [weak self] _, context in
            guard let snapshot = self?.statistics() else { throw FerryStatus.shuttingDown("the peer is gone") }
            let body = try JSONEncoder().encode(snapshot)
            return FerryResponse(meta: context.replyMeta, bodyCodec: .json, body: ByteBuffer(bytes: body))
        }
    }
}
