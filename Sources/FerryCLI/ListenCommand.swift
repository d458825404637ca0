import ArgumentParser
import Ferry
import FerryGateway
import FerryPush
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

struct ListenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "listen",
        abstract: "Receive a user's at-least-once pushes from a gateway, in order, acknowledging each.",
        discussion: """
            Examples, with ferry gateway --socket 127.0.0.1:5020 --ws 127.0.0.1:5040 --data ./data --dev-auth:
              ferry listen 127.0.0.1:5020 --user alice
              ferry listen ws://127.0.0.1:5040/ws --user alice --count 2 --output json
              ferry listen 127.0.0.1:5020 --user alice --from EPOCH:2
              ferry listen 127.0.0.1:5020 --token "$JWT"
            Connects as the user (the token is the user name unless --token says otherwise, as \
            --dev-auth gateways take it), resumes the user's stream after --from (by default from \
            the oldest message the mailbox keeps) and prints each message as OFFSET  ROUTE  BODY, \
            or one JSON object per line with --output json. Each message is acknowledged once \
            printed; a message sent again is dropped by its offset. Notices go to standard error: \
            messages lost to the mailbox's cap or time to live, a stream whose history was lost \
            (a new epoch), and at the end the position to resume from with --from. \
            Stops after --count messages, or on Ctrl-C, and exits 0; exits 1 when the gateway \
            refuses to deliver or closes the session first, 2 when it cannot be reached.
            """
    )

    @Argument(help: "The gateway's socket or WebSocket listener: HOST:PORT, unix:PATH, ws://HOST:PORT/PATH or wss://….")
    var address: String

    @Option(help: ArgumentHelp("The user to receive as; also the token, unless --token is given.", valueName: "name"))
    var user: String?

    @Option(help: ArgumentHelp("The token to authenticate with (by default the user name, as --dev-auth gateways take it).", valueName: "token"))
    var token: String?

    @Option(help: ArgumentHelp("Resume after this position, the last message already processed (ferry push and ferry listen print it).", valueName: "epoch:offset"))
    var from: String?

    @Option(help: ArgumentHelp("Stop after this many messages (by default, run until Ctrl-C).", valueName: "n"))
    var count: Int?

    @Option(help: "Output: text (OFFSET  ROUTE  BODY lines) or json (one object per message and line).")
    var output: OutputFormat = .text

    @Option(help: "WebSocket sub-protocol of a ws:// or wss:// gateway: json or pb (protobuf); it must match the gateway's.")
    var wsProto: WebSocketSubprotocolOption?

    @OptionGroup(title: "TLS") var tls: TLSOptions

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard let target = CallTarget(address) else {
            throw ValidationError("address must be HOST:PORT, unix:PATH, ws://HOST:PORT/PATH or wss://HOST:PORT/PATH, got \(address)")
        }
        if wsProto != nil, !target.isWebSocket {
            throw ValidationError("--ws-proto applies to ws:// and wss:// addresses, not to \(address)")
        }
        if user == nil && token == nil { throw ValidationError("name the user to receive as: --user NAME (or give its --token)") }
        if user?.isEmpty == true { throw ValidationError("--user needs a name") }
        if let count, count < 1 { throw ValidationError("--count must be 1 or more, got \(count)") }
        _ = try startPosition()
        _ = try tls.clientConfiguration(required: target.requiresTLS)
    }

    /// The `--from` position, or nil.
    private func startPosition() throws -> FerryStreamPosition? {
        guard let from else { return nil }
        guard let colon = from.lastIndex(of: ":"), colon != from.startIndex,
            let offset = UInt64(from[from.index(after: colon)...])
        else {
            throw ValidationError("--from must be EPOCH:OFFSET, as ferry push prints it, got \(from)")
        }
        return FerryStreamPosition(epoch: String(from[..<colon]), offset: offset)
    }

    func run() async throws {
        logging.bootstrap()
        let target = CallTarget(address)!
        let tlsConfiguration = try tls.clientConfiguration(required: target.requiresTLS)
        let start = try startPosition()
        let credential = token ?? user ?? ""
        let logger = Logger(label: "ferry.listen")
        let peer = FerryPeer(
            configuration: .init(
                dialTimeout: .seconds(5), webSocket: .init(subprotocol: (wsProto ?? .json).subprotocol),
                auth: FerryAuth(credential: { credential })),
            logger: logger)
        let receiver = FerryPushReceiver(router: peer.router, position: start)
        let closingReason = Mutex<String?>(nil)
        peer.router.push(FerryGateway.closingRoute) { (closing: FerryGateway.Closing, _) in
            closingReason.withLock { $0 = closing.reason }
        }
        let printer = ListenOutput(format: output)
        try await closing(peer.close) {
            let session: FerrySession
            do {
                session = try await peer.dial(target.address, tls: tlsConfiguration, serverHostname: tls.serverName)
            } catch let status as FerryStatus {
                printer.notice("Error: dial failed: \(status.explained)")
                throw ExitCode(2)
            }
            let place = target.address.displayed(tls: tlsConfiguration != nil)
            let position = start.map { "after \($0.epoch):\($0.offset)" } ?? "from the oldest message kept"
            printer.notice("listening as \(user ?? "the token's user") on \(place), \(position)")
            let progress = ListenProgress()
            let outcome = try await closing(session.close) {
                let outcome = try await listen(on: session, receiver: receiver, progress: progress, printer: printer, logger: logger)
                if outcome.sessionIsOpen, let last = progress.state.withLock({ $0.last }) {
                    // The receiver acknowledges as it goes; this makes sure the last one is in.
                    _ = try? await session.callForReply(
                        FerryPushProtocol.ackRoute, FerryPushProtocol.Ack(epoch: last.epoch, offset: last.offset), options: .timeout(.seconds(2)))
                }
                return outcome
            }
            try finish(outcome, receiver: receiver, progress: progress, printer: printer, closingReason: closingReason.withLock { $0 })
        }
    }

    /// Receives until `--count` messages are printed, the session closes, or Ctrl-C / SIGTERM
    /// (a graceful shutdown of the service group, which owns those signals meanwhile).
    private func listen(
        on session: FerrySession, receiver: FerryPushReceiver, progress: ListenProgress, printer: ListenOutput, logger: Logger
    ) async throws -> ListenOutcome {
        let run = ListenRun(
            session: session, receiver: receiver, progress: progress, printer: printer, count: count, from: try startPosition())
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: run, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        return run.outcome ?? .interrupted
    }

    /// Reports how listening ended, and exits 1 unless it ended as asked.
    private func finish(
        _ outcome: ListenOutcome, receiver: FerryPushReceiver, progress: ListenProgress, printer: ListenOutput, closingReason: String?
    ) throws {
        let (printed, last, lostReported, toldEpochChange) = progress.state.withLock { ($0.printed, $0.last, $0.lostReported, $0.toldEpochChange) }
        if receiver.lostMessages > lostReported { printer.lost(receiver.lostMessages - lostReported, before: nil) }
        let position = last ?? receiver.position
        if !toldEpochChange, let start = try startPosition(), let position, position.epoch != start.epoch {
            printer.notice(ListenRun.epochChange(from: start.epoch, to: position.epoch))
        }
        let resume = position.flatMap { $0.offset > 0 ? " (resume with --from \($0.epoch):\($0.offset))" : nil } ?? ""
        let processed = "\(printed) message\(printed == 1 ? "" : "s")"
        switch outcome {
        case .counted, .interrupted:
            printer.notice("received \(processed)\(resume)")
        case .closed:
            let why = closingReason.map { " (\($0))" } ?? ""
            printer.notice("Error: the gateway closed the session\(why) after \(processed)\(resume)")
            throw ExitCode.failure
        case .failed(let status):
            let what = printed == 0 ? "the gateway refused to deliver" : "receiving failed after \(processed)"
            printer.notice("Error: \(what): \(status.explained)")
            if status.code == .notFound || status.code == .messageTypeNotAllowed {
                printer.notice("The gateway does not deliver at-least-once pushes: start it with --data DIR (or --memory-mailbox).")
            }
            throw ExitCode.failure
        }
    }
}
