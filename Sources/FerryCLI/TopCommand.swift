import ArgumentParser
import Ferry
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

struct TopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "Watch a peer's routes: calls per second, errors and latency, refreshed until Ctrl-C.",
        discussion: """
            Examples:
              ferry top 127.0.0.1:9090
              ferry top 127.0.0.1:9090 --interval 5s --sessions
              ferry top ws://127.0.0.1:9091/ws --token SECRET
              ferry top 127.0.0.1:9090 --count 3 --interval 500ms > top.txt
            Polls the peer's \(FerryPeer.statsRoute) route (every Ferry peer serves it unless its \
            statistics are off) and shows a header (uptime, sessions, handlers running and their \
            bound, draining) and the routes, busiest first: KIND (call or push), DIR (in: handled \
            by the peer, out: made by it), CALLS/S and ERR/S, P50 and P99 latency (the upper bound \
            of the latency bucket), and TOTAL since the peer started. Rates and percentiles cover \
            the time since the previous frame; the first frame covers the time since the peer \
            started. On a terminal the view is redrawn in place; to a pipe or a file each frame \
            is written once, frames separated by a blank line. Exits 0 after --count frames or on \
            Ctrl-C, 1 when the peer does not serve its statistics or polling fails, 2 when it \
            cannot be reached.
            """
    )

    @Argument(help: "The peer: HOST:PORT, [IPv6]:PORT, unix:PATH, ws://HOST:PORT/PATH or wss://….")
    var address: String

    @Option(help: "How often to poll and redraw, e.g. 1s, 500ms, 2s.")
    var interval: String = "1s"

    @Option(help: ArgumentHelp("Stop after this many frames (by default, run until Ctrl-C).", valueName: "n"))
    var count: Int?

    @Flag(help: "List the peer's sessions below the routes.")
    var sessions = false

    @Option(help: "WebSocket sub-protocol of a ws:// or wss:// peer: json or pb (protobuf); it must match the peer's.")
    var wsProto: WebSocketSubprotocolOption?

    @OptionGroup(title: "TLS") var tls: TLSOptions

    @OptionGroup var auth: AuthOptions

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard let target = CallTarget(address) else {
            throw ValidationError("address must be HOST:PORT, unix:PATH, ws://HOST:PORT/PATH or wss://HOST:PORT/PATH, got \(address)")
        }
        if wsProto != nil, !target.isWebSocket {
            throw ValidationError("--ws-proto applies to ws:// and wss:// addresses, not to \(address)")
        }
        if let count, count < 1 { throw ValidationError("--count must be 1 or more, got \(count)") }
        _ = try durationOption(interval, named: "--interval")
        _ = try tls.clientConfiguration(required: target.requiresTLS)
    }

    func run() async throws {
        logging.bootstrap()
        let target = CallTarget(address)!
        let tlsConfiguration = try tls.clientConfiguration(required: target.requiresTLS)
        let place = target.address.displayed(tls: tlsConfiguration != nil)
        let logger = Logger(label: "ferry.top")
        let peer = FerryPeer(
            configuration: .init(
                dialTimeout: .seconds(5), webSocket: .init(subprotocol: (wsProto ?? .json).subprotocol), auth: auth.dialling,
                observability: FerryObservability(servesStats: false)),
            logger: logger)
        try await closing(peer.close) {
            let session: FerrySession
            do {
                session = try await peer.dial(target.address, tls: tlsConfiguration, serverHostname: tls.serverName)
            } catch let status as FerryStatus {
                FileHandle.standardError.write(Data("Error: dial failed: \(status.explained)\n".utf8))
                throw ExitCode(2)
            }
            try await closing(session.close) {
                let run = TopRun(
                    place: place, session: session, interval: try durationOption(interval, named: "--interval"), count: count,
                    showsSessions: sessions, screen: TopScreen(isTerminal: isatty(STDOUT_FILENO) == 1))
                let group = ServiceGroup(configuration: .init(
                    services: [.init(service: run, successTerminationBehavior: .gracefullyShutdownGroup)],
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger))
                try await group.run()
                if let failure = run.failure {
                    FileHandle.standardError.write(Data("Error: \(failure)\n".utf8))
                    throw ExitCode.failure
                }
            }
        }
    }
}

/// Why `ferry top` stopped before its count; it exits 1.
struct TopFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }

    /// The peer answers 404: its statistics are off (or it is not a Ferry peer, e.g. Go erpc).
    static func statisticsOff(_ place: String) -> TopFailure {
        TopFailure("\(place) does not serve \(FerryPeer.statsRoute) (statistics are off)")
    }
}

/// Where frames go: redrawn in place on a terminal, one after another (separated by a blank
/// line, without escape codes) to a pipe or a file.
struct TopScreen: Sendable {
    /// Clears the screen and puts the cursor at its top left.
    static let clear = "\u{1B}[H\u{1B}[2J"

    var isTerminal: Bool

    /// The text that shows `lines` as frame number `index` (from 0).
    func text(of lines: [String], index: Int) -> String {
        let frame = lines.joined(separator: "\n")
        if isTerminal { return Self.clear + frame }
        return index == 0 ? frame : "\n" + frame
    }

    /// Writes frame number `index` and flushes it.
    func show(_ lines: [String], index: Int) {
        print(text(of: lines, index: index))
        fflush(nil)
    }
}

/// One run of `ferry top`, as a service of a group that owns SIGINT and SIGTERM: polls and
/// shows frames until `count` of them are shown, polling fails, or a graceful shutdown.
final class TopRun: Service, Sendable {
    private let place: String
    private let session: FerrySession
    private let interval: Duration
    private let count: Int?
    private let showsSessions: Bool
    private let screen: TopScreen
    private let failed = Mutex<TopFailure?>(nil)

    init(place: String, session: FerrySession, interval: Duration, count: Int?, showsSessions: Bool, screen: TopScreen) {
        self.place = place
        self.session = session
        self.interval = interval
        self.count = count
        self.showsSessions = showsSessions
        self.screen = screen
    }

    /// Why the run stopped early; nil when it showed its frames or was interrupted.
    var failure: TopFailure? { failed.withLock { $0 } }

    func run() async {
        do {
            try await cancelWhenGracefulShutdown { try await self.loop() }
        } catch is CancellationError {
            // Ctrl-C or SIGTERM cancelled the poll or the wait: a clean stop.
        } catch let failure as TopFailure {
            failed.withLock { $0 = failure }
        } catch {
            if !Task.isCancelled && !Task.isShuttingDownGracefully {
                failed.withLock { $0 = TopFailure("polling \(self.place) failed: \(error)") }
            }
        }
    }

    private func loop() async throws {
        let clock = ContinuousClock()
        var next = clock.now
        var previous: FerryStatsSnapshot?
        var shown = 0
        while true {
            let current = try await poll()
            screen.show(TopView.lines(address: place, previous: previous, current: current, showsSessions: showsSessions), index: shown)
            shown += 1
            if let count, shown >= count { return }
            previous = current
            // On schedule, without a burst of polls to catch up after a slow one.
            next = max(next.advanced(by: interval), clock.now)
            try await Task.sleep(until: next, clock: clock)
        }
    }

    /// One snapshot of the peer's statistics.
    private func poll() async throws -> FerryStatsSnapshot {
        let reply: FerryReply
        do {
            reply = try await session.call(FerryPeer.statsRoute, body: ByteBuffer(), codec: .json, options: FerryCallOptions(timeout: .seconds(5)))
        } catch let status as FerryStatus {
            if Task.isCancelled { throw CancellationError() }
            if status.code == .notFound { throw TopFailure.statisticsOff(place) }
            throw TopFailure("polling \(place) failed: \(status.explained)")
        }
        if reply.status.code == .notFound { throw TopFailure.statisticsOff(place) }
        guard reply.status.isOK else { throw TopFailure("\(place) refused \(FerryPeer.statsRoute): \(reply.status.explained)") }
        do {
            return try JSONDecoder().decode(FerryStatsSnapshot.self, from: Data(reply.body.readableBytesView))
        } catch {
            throw TopFailure("\(place) answered \(FerryPeer.statsRoute) with what is not a statistics snapshot: \(error)")
        }
    }
}
