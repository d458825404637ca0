import ArgumentParser
import FerryGateway
import FerryPush
import FerryPushSQLite
import Foundation
import Logging

/// Where `ferry gateway` keeps at-least-once pushes (`/gateway/send`): an SQLite file in a data
/// directory (`--data`), memory (`--memory-mailbox`), or nowhere, when at-least-once pushes are
/// off and `/gateway/send` is refused with 405.
struct MailboxOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Turn on at-least-once pushes (/gateway/send) and keep them in DIR/mailbox.sqlite (DIR is created if missing), so that they survive a restart.",
        valueName: "dir"))
    var data: String?

    @Flag(help: "Turn on at-least-once pushes with a mailbox in memory: gone with the process (a restart starts every stream over in a new epoch).")
    var memoryMailbox = false

    @Option(help: ArgumentHelp("The most messages kept per user; past it the oldest are dropped and reported lost (default 1000).", valueName: "n"))
    var mailboxMax: Int?

    @Option(help: ArgumentHelp("How long a message is kept, e.g. 7d, 12h, 30m, 90s (default 7d).", valueName: "duration"))
    var mailboxTtl: String?

    @Option(help: ArgumentHelp("How long a delivered message may stay unacknowledged before it is sent again, e.g. 10s, 500ms (default 10s).", valueName: "duration"))
    var pushResendAfter: String?

    /// The file of the `--data` mailbox.
    static let fileName = "mailbox.sqlite"

    /// Whether at-least-once pushes are on.
    var isEnabled: Bool { data != nil || memoryMailbox }

    func validate() throws {
        if data != nil && memoryMailbox {
            throw ValidationError("--data and --memory-mailbox do not go together: the mailbox is either a file or in memory")
        }
        if !isEnabled && (mailboxMax != nil || mailboxTtl != nil || pushResendAfter != nil) {
            throw ValidationError("--mailbox-max, --mailbox-ttl and --push-resend-after need a mailbox: --data DIR or --memory-mailbox")
        }
        if let data, data.isEmpty { throw ValidationError("--data needs a directory") }
        if let mailboxMax, mailboxMax < 1 { throw ValidationError("--mailbox-max must be 1 or more, got \(mailboxMax)") }
        _ = try limits()
        _ = try resendAfter()
    }

    /// The cap and time to live the options ask for.
    func limits() throws -> FerryMailboxLimits {
        var limits = FerryMailboxLimits()
        if let mailboxMax { limits.maximumMessages = mailboxMax }
        if let mailboxTtl {
            guard let ttl = parseRetention(mailboxTtl) else {
                throw ValidationError("--mailbox-ttl must look like 7d, 12h, 30m or 90s, got \(mailboxTtl)")
            }
            guard ttl > .zero else { throw ValidationError("--mailbox-ttl must be positive, got \(mailboxTtl)") }
            limits.timeToLive = ttl
        }
        return limits
    }

    /// The resend time the options ask for.
    func resendAfter() throws -> Duration {
        guard let pushResendAfter else { return FerryPushService.Configuration().resendAfter }
        return try durationOption(pushResendAfter, named: "--push-resend-after")
    }

    /// The path of the `--data` mailbox file, or nil.
    var filePath: String? {
        data.map { URL(fileURLWithPath: $0).appendingPathComponent(Self.fileName).path }
    }

    /// Opens the mailbox the options ask for (creating the data directory), or nil when
    /// at-least-once pushes are off.
    func open(logger: Logger) async throws -> OpenedMailbox? {
        let limits = try limits()
        let delivery = FerryPushService.Configuration(resendAfter: try resendAfter())
        if memoryMailbox {
            return OpenedMailbox(durablePush: .init(mailbox: FerryMemoryMailbox(limits: limits), delivery: delivery), place: "in memory", close: {})
        }
        guard let data, let path = filePath else { return nil }
        do {
            try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        } catch {
            throw MailboxFailure("--data \(data): cannot create the directory: \(error.localizedDescription)")
        }
        let mailbox: FerrySQLiteMailbox
        do {
            mailbox = try await FerrySQLiteMailbox.open(path: path, limits: limits, logger: logger)
        } catch {
            throw MailboxFailure("--data \(data): cannot open the mailbox \(path): \(error)")
        }
        return OpenedMailbox(durablePush: .init(mailbox: mailbox, delivery: delivery), place: path, close: { try await mailbox.close() })
    }

    /// What the start-up line says after the mailbox's place: `at most 1000 messages per user,
    /// kept 7d, resent after 10s`.
    var summary: String {
        let limits = FerryMailboxLimits()
        let resend = pushResendAfter ?? "10s"
        return "at most \(mailboxMax ?? limits.maximumMessages) messages per user, kept \(mailboxTtl ?? "7d"), resent after \(resend) unacknowledged"
    }
}

/// An open mailbox, how the start-up line names it, and how to close it after the gateway stops.
struct OpenedMailbox: Sendable {
    var durablePush: FerryGateway.DurablePush
    /// The file's path, or `in memory`.
    var place: String
    var close: @Sendable () async throws -> Void
}

/// A mailbox that could not be opened; the gateway does not start.
struct MailboxFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}

/// Parses what ``parseDuration(_:)`` parses, and whole or fractional hours and days: `12h`,
/// `7d`, `1.5d`.
func parseRetention(_ text: String) -> Duration? {
    let units: [(String, Double)] = [("d", 86_400), ("h", 3_600)]
    for (suffix, scale) in units where text.hasSuffix(suffix) {
        guard let value = Double(text.dropLast(suffix.count)), value.isFinite, abs(value * scale) < 1e9 else { return nil }
        return .nanoseconds(Int64(value * scale * 1e9))
    }
    return parseDuration(text)
}
