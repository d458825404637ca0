import Ferry
import FerryPush
import ServiceLifecycle
import Synchronization

/// How `ferry listen` ended.
enum ListenOutcome: Sendable {
    /// `--count` messages printed.
    case counted
    /// Ctrl-C or SIGTERM.
    case interrupted
    /// The gateway closed the session.
    case closed
    /// The gateway refused to deliver (the resume failed), or receiving failed.
    case failed(FerryStatus)

    /// Whether the session may still be used (for a last acknowledgement).
    var sessionIsOpen: Bool {
        switch self {
        case .counted, .interrupted: true
        case .closed, .failed: false
        }
    }
}

/// One run of `ferry listen` on a session, as a service of a group that owns SIGINT and
/// SIGTERM: runs the receiver, prints each new message, and stops at the first of `count`
/// messages printed, the session's close, a failure, or a graceful shutdown.
final class ListenRun: Service, Sendable {
    private let session: FerrySession
    private let receiver: FerryPushReceiver
    private let progress: ListenProgress
    private let printer: ListenOutput
    private let count: Int?
    private let from: FerryStreamPosition?
    private let decided = Mutex<ListenOutcome?>(nil)

    init(session: FerrySession, receiver: FerryPushReceiver, progress: ListenProgress, printer: ListenOutput, count: Int?, from: FerryStreamPosition?) {
        self.session = session
        self.receiver = receiver
        self.progress = progress
        self.printer = printer
        self.count = count
        self.from = from
    }

    /// How the run ended; nil before it has.
    var outcome: ListenOutcome? { decided.withLock { $0 } }

    /// Thrown by the handler for a message past `count`: it is neither printed nor acknowledged.
    private struct CountReached: Error {}

    func run() async {
        let (events, event) = AsyncStream.makeStream(of: ListenOutcome.self)
        let first = await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { [self] in
                    do {
                        try await receiver.receive(on: session) { delivery in try self.handle(delivery, done: event) }
                        event.yield(.closed)
                    } catch is CountReached {
                        // .counted was told before this message came.
                    } catch let status as FerryStatus {
                        event.yield(.failed(status))
                    } catch {
                        event.yield(.failed(FerryStatus(.internalServerError, "receiving failed", cause: "\(error)")))
                    }
                }
                var first: ListenOutcome?
                for await outcome in events {
                    first = outcome
                    break
                }
                group.cancelAll()
                return first
            }
        } onGracefulShutdown: {
            event.yield(.interrupted)
        }
        decided.withLock { $0 = first }
    }

    /// Prints one new message (the receiver has dropped duplicates), with the losses and the
    /// epoch change not told yet; tells `done` when it is the `count`th.
    private func handle(_ delivery: FerryDelivery, done: AsyncStream<ListenOutcome>.Continuation) throws {
        // Messages the resume found lost are in the receiver's count before the first delivery
        // is handled; each delivery's own loss is added once its handler returns.
        let lostSoFar = receiver.lostMessages
        let (reached, unreported, tellEpochChange) = progress.state.withLock { state -> (Bool, UInt64, Bool) in
            if let count, state.printed >= count { return (true, 0, false) }
            let unreported = lostSoFar > state.lostReported ? lostSoFar - state.lostReported : 0
            let tell = !state.toldEpochChange && from.map { $0.epoch != delivery.epoch } == true
            state.toldEpochChange = state.toldEpochChange || tell
            state.lostReported += unreported + delivery.lost
            state.printed += 1
            state.last = FerryStreamPosition(epoch: delivery.epoch, offset: delivery.offset)
            return (false, unreported, tell)
        }
        if reached { throw CountReached() }
        if tellEpochChange, let from { printer.notice(Self.epochChange(from: from.epoch, to: delivery.epoch)) }
        if unreported > 0 { printer.lost(unreported, before: delivery.offset) }
        printer.message(delivery)
        if let count, progress.state.withLock({ $0.printed }) == count { done.yield(.counted) }
    }

    /// The notice of a `--from` epoch that is not the stream's.
    static func epochChange(from old: String, to new: String) -> String {
        "epoch \(old) is not the stream's: its history was lost, and delivery starts over from the oldest message of epoch \(new)"
    }
}
