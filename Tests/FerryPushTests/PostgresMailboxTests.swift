import Ferry
import FerryPush
import FerryPushPostgres
import FerryTestSupport
import Foundation
import NIOCore
import PostgresNIO
import ServiceLifecycle
import Synchronization
import Testing

@Suite("The PostgreSQL mailbox", .postgresServer)
struct PostgresMailboxTests {
    @Test("keeps the mailbox promises", arguments: MailboxConformance.allCases)
    func conformance(_ promise: MailboxConformance) async throws {
        try await withPostgresMailboxes { mailboxes in
            try await promise.run { limits, clock in
                try await mailboxes.open(limits: limits, now: { clock.now })
            }
        }
    }

    @Test("streams, epochs and messages survive a new mailbox on the same database")
    func durableAcrossRestart() async throws {
        let server = try PostgresServer.current()
        let database = try await server.makeDatabase()
        let configuration = FerryPostgresMailbox.Configuration(postgres: server.clientConfiguration(database: database), timeout: .seconds(60))
        let clock = ManualWallClock()
        let bytes = ByteBuffer(bytes: [0, 1, 0xFF, 13, 10])
        let (appended, idle, before) = try await FerryPostgresMailbox.withMailbox(
            configuration: configuration, now: { clock.now }, logger: quietLogger()
        ) { first in
            let appended = try await first.append(
                [MailboxConformance.entry("a"), FerryMailboxEntry(route: "/bin", codec: .protobuf, body: bytes)], to: "ann")
            _ = try await first.append([MailboxConformance.entry("b")], to: "bob")
            let idle = try await first.position(of: "cyd")
            return (appended, idle, try await first.read("ann", after: 0, limit: 10))
        }
        try await FerryPostgresMailbox.withMailbox(configuration: configuration, now: { clock.now }, logger: quietLogger()) { second in
            let after = try await second.read("ann", after: 0, limit: 10)
            #expect(after == before, "same epoch, offsets, routes, codecs, bodies and times")
            #expect(after.epoch == appended.epoch && after.messages.map(\.offset) == [1, 2])
            #expect(MailboxConformance.texts(try await second.read("bob", after: 0, limit: 10)) == ["b"])
            #expect(try await second.position(of: "cyd") == idle, "a stream with no message keeps its epoch too")
            let next = try await second.append([MailboxConformance.entry("c")], to: "ann")
            #expect(next.epoch == appended.epoch && next.offsets == 3...3)
        }
    }

    @Test("concurrent appends for one user, from many tasks and two mailboxes, get distinct gap-free offsets")
    func concurrentAppendsAreGapFree() async throws {
        try await withPostgresMailboxes { mailboxes in
            let database = try await mailboxes.server.makeDatabase()
            let first = try await mailboxes.open(database: database)
            let second = try await mailboxes.open(database: database)
            let count = 200
            let seen = try await withThrowingTaskGroup(of: (index: Int, offset: UInt64, visible: Bool).self) { group in
                for index in 0..<count {
                    group.addTask {
                        let mailbox = index.isMultiple(of: 2) ? first : second
                        let result = try await mailbox.append([MailboxConformance.entry("m\(index)")], to: "ann")
                        // Committed when it returned: the other mailbox reads it at once.
                        let other = index.isMultiple(of: 2) ? second : first
                        let page = try await other.read("ann", after: result.offsets.lowerBound - 1, limit: 1)
                        return (index, result.offsets.lowerBound, page.messages.first?.offset == result.offsets.lowerBound)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(seen.map(\.offset).sorted() == Array(1...UInt64(count)), "distinct offsets with no gap")
            #expect(seen.allSatisfy { $0.visible }, "every append was committed when it returned")
            let page = try await first.read("ann", after: 0, limit: 1000)
            #expect(page.messages.map(\.offset) == Array(1...UInt64(count)))
            let textAt = Dictionary(uniqueKeysWithValues: zip(page.messages.map(\.offset), MailboxConformance.texts(page)))
            #expect(seen.allSatisfy { textAt[$0.offset] == "m\($0.index)" }, "each offset holds the message that was given it")
        }
    }

    @Test("the cap and the time to live delete the oldest rows, and reads count them as lost")
    func capAndTimeToLiveDeleteRows() async throws {
        try await withPostgresMailboxes { mailboxes in
            let server = mailboxes.server
            let database = try await server.makeDatabase()
            let clock = ManualWallClock()
            let limits = FerryMailboxLimits(maximumMessages: 5, timeToLive: .seconds(60))
            let mailbox = try await mailboxes.open(database: database, limits: limits, now: { clock.now })
            for batch in 0..<3 {
                _ = try await mailbox.append((0..<4).map { MailboxConformance.entry("c\(batch)-\($0)") }, to: "capped")
            }
            let capped = try await mailbox.read("capped", after: 0, limit: 100)
            #expect(capped.messages.map(\.offset) == Array(8...12) && capped.lost == 7 && capped.lastOffset == 12)
            #expect(try await mailbox.read("capped", after: 9, limit: 100).lost == 0)
            let cappedRows = "SELECT count(*) FROM ferry_mailbox_messages WHERE user_id = 'capped'"
            #expect(try await server.integer(cappedRows, in: database) == 5, "the rows over the cap are deleted")

            _ = try await mailbox.append([MailboxConformance.entry("old"), MailboxConformance.entry("older")], to: "aging")
            clock.advance(by: 61)
            _ = try await mailbox.append([MailboxConformance.entry("new")], to: "aging")
            let aging = try await mailbox.read("aging", after: 0, limit: 100)
            #expect(MailboxConformance.texts(aging) == ["new"] && aging.lost == 2)
            let agingRows = "SELECT count(*) FROM ferry_mailbox_messages WHERE user_id = 'aging'"
            #expect(try await server.integer(agingRows, in: database) == 1, "the append deleted its stream's expired rows")

            _ = try await mailbox.append(["1", "2", "3"].map { MailboxConformance.entry($0) }, to: "idle")
            #expect(try await mailbox.removeExpired() == 5, "the capped stream's messages, stored 61 s ago, expired")
            clock.advance(by: 61)
            let expired = try await mailbox.read("idle", after: 0, limit: 10)
            #expect(expired.messages.isEmpty && expired.lost == 3 && expired.lastOffset == 3, "reads skip expired rows still stored")
            #expect(try await mailbox.removeExpired() == 3 + 1, "the idle stream's messages and the aging stream's last")
            #expect(try await mailbox.removeExpired() == 0, "nothing is left to delete")
            #expect(try await server.integer("SELECT count(*) FROM ferry_mailbox_messages", in: database) == 0)
            let next = try await mailbox.append([MailboxConformance.entry("4")], to: "idle")
            #expect(next.offsets == 4...4, "offsets go on after everything expired")
        }
    }

    @Test("a database that goes away gives a clear error within the timeout, not a hang")
    func databaseGoesAway() async throws {
        let server = try await PostgresServer.start()
        var stopped = false
        defer { if !stopped { server.stop() } }
        let database = try await server.makeDatabase()
        let timeout = Duration.seconds(2)
        let configuration = FerryPostgresMailbox.Configuration(
            postgres: server.clientConfiguration(database: database), timeout: timeout)
        try await FerryPostgresMailbox.withMailbox(configuration: configuration, logger: quietLogger()) { mailbox in
            // The first calls connect and create the tables, which may take longer than 2 s on
            // a busy machine: retry until one is through.
            let reached = await eventually(timeout: .seconds(120)) {
                (try? await mailbox.append([MailboxConformance.entry("before")], to: "ann")) != nil
            }
            try #require(reached, "the mailbox reaches the database while it runs")
            try await onOwnThread { server.stop() }
            stopped = true
            for _ in 0..<2 {
                let started = ContinuousClock.now
                let error = await #expect(throws: FerryPostgresMailboxError.self) {
                    _ = try await mailbox.append([MailboxConformance.entry("after")], to: "ann")
                }
                let elapsed = ContinuousClock.now - started
                #expect(error?.code == .unavailable || error?.code == .timedOut, "\(String(describing: error))")
                #expect(elapsed < timeout * 10, "the append failed after \(elapsed)")
                let text = error.map { "\($0)" } ?? ""
                #expect(text.contains("127.0.0.1:\(server.port)") && text.contains("ann"), "the error says what and where: \(text)")
            }
            let started = ContinuousClock.now
            await #expect(throws: FerryPostgresMailboxError.self) { _ = try await mailbox.read("ann", after: 0, limit: 10) }
            #expect(ContinuousClock.now - started < timeout * 10)
        }
    }

    @Test("hostile user names, routes and bodies round-trip as values, or are refused clearly")
    func hostileInput() async throws {
        try await withPostgresMailboxes { mailboxes in
            let mailbox = try await mailboxes.open()
            let injection = "'); DROP TABLE ferry_mailbox_messages; --"
            var random = SeededRandomNumberGenerator(seed: 7)
            let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789")
            // Random, so that PostgreSQL cannot compress it below the index's limit.
            let longest = String((0..<FerryPostgresMailbox.maximumUserNameLength).map { _ in letters.randomElement(using: &random)! })
            let users = [injection, "o'brien \"quoted\" \\ back", "ünïcødé 😀", "$1", longest]
            let body = ByteBuffer(bytes: [0, 39, 34, 92, 0, 0xFF, 0])
            for user in users {
                let entry = FerryMailboxEntry(route: "/it's/\"quoted\"/\\/\(injection)", codec: .protobuf, body: body)
                let appended = try await mailbox.append([entry, MailboxConformance.entry("second")], to: user)
                let page = try await mailbox.read(user, after: 0, limit: 10)
                #expect(page.epoch == appended.epoch && page.messages.map(\.offset) == [1, 2], "\(user.prefix(20))")
                #expect(page.messages.first?.entry == entry)
            }
            #expect(try await mailbox.position(of: injection).offset == 2)

            let refused: [(String, @Sendable () async throws -> Void)] = [
                ("a NUL in a user name", { _ = try await mailbox.append([MailboxConformance.entry("x")], to: "ann\0bob") }),
                ("a NUL in a user name, read", { _ = try await mailbox.read("ann\0", after: 0, limit: 1) }),
                ("a NUL in a user name, position", { _ = try await mailbox.position(of: "\0") }),
                ("a NUL in a route", { _ = try await mailbox.append([MailboxConformance.entry("x", route: "/a\0b")], to: "ann") }),
                ("a user name one byte too long", { _ = try await mailbox.append([MailboxConformance.entry("x")], to: longest + "x") }),
                ("a very long user name", { _ = try await mailbox.position(of: String(repeating: "ü", count: 100_000)) }),
            ]
            for (what, call) in refused {
                let error = await #expect(throws: FerryPostgresMailboxError.self, "\(what)") { try await call() }
                #expect(error?.code == .invalidInput, "\(what): \(String(describing: error))")
                #expect((error.map { "\($0)".count } ?? 0) < 400, "\(what): the message stays short")
            }
            #expect(try await mailbox.position(of: "ann").offset == 0, "a refused append stored nothing")
            for user in users {
                #expect(try await mailbox.read(user, after: 0, limit: 10).messages.count == 2, "the tables are intact")
            }
        }
    }

    @Test("a database with mailbox tables of a newer schema version is refused")
    func newerSchemaRefused() async throws {
        try await withPostgresMailboxes { mailboxes in
            let database = try await mailboxes.server.makeDatabase()
            try await mailboxes.server.execute("CREATE TABLE ferry_mailbox_schema (version INTEGER NOT NULL)", in: database)
            try await mailboxes.server.execute("INSERT INTO ferry_mailbox_schema VALUES (99)", in: database)
            let mailbox = try await mailboxes.open(database: database)
            let error = await #expect(throws: FerryPostgresMailboxError.self) { _ = try await mailbox.position(of: "ann") }
            #expect(error?.code == .incompatibleSchema, "\(String(describing: error))")
            #expect(error.map { "\($0)".contains("99") } == true)
        }
    }

    @Test("close lets the calls in progress finish, and later calls are refused")
    func closeDrainsCalls() async throws {
        try await withPostgresMailboxes { mailboxes in
            let database = try await mailboxes.server.makeDatabase()
            let mailbox = try await mailboxes.open(database: database)
            _ = try await mailbox.position(of: "ann")
            let appended = try await withThrowingTaskGroup(of: UInt64?.self) { group in
                for index in 0..<40 {
                    group.addTask {
                        do {
                            return try await mailbox.append([MailboxConformance.entry("m\(index)")], to: "ann").offsets.lowerBound
                        } catch let error as FerryPostgresMailboxError where error.code == .closed {
                            return nil
                        }
                    }
                }
                await mailbox.close()
                return try await group.reduce(into: [UInt64]()) { if let offset = $1 { $0.append(offset) } }
            }
            let late = await #expect(throws: FerryPostgresMailboxError.self) {
                _ = try await mailbox.append([MailboxConformance.entry("late")], to: "ann")
            }
            #expect(late?.code == .closed)
            let reopened = try await mailboxes.open(database: database)
            let page = try await reopened.read("ann", after: 0, limit: 100)
            #expect(page.messages.map(\.offset) == appended.sorted(), "every append that returned is stored, no other")
        }
    }

    @Test("in a service group, graceful shutdown lets the mailbox finish and stop")
    func serviceGroupShutdown() async throws {
        let server = try PostgresServer.current()
        let database = try await server.makeDatabase()
        let mailbox = FerryPostgresMailbox(
            configuration: .init(postgres: server.clientConfiguration(database: database), timeout: .seconds(60)), logger: quietLogger())
        let group = ServiceGroup(services: [mailbox], logger: quietLogger())
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            let appended = try await mailbox.append([MailboxConformance.entry("x")], to: "ann")
            #expect(appended.offsets == 1...1)
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        let error = await #expect(throws: FerryPostgresMailboxError.self) { _ = try await mailbox.position(of: "ann") }
        #expect(error?.code == .closed)
    }
}

/// PostgreSQL mailboxes on the shared test server, each running until ``closeAll()``.
final class PostgresMailboxes: Sendable {
    let server: PostgresServer
    private let opened = Mutex<[(mailbox: FerryPostgresMailbox, running: Task<Void, any Error>)]>([])

    init(server: PostgresServer) { self.server = server }

    /// A running mailbox on `database`, or on a new empty database.
    func open(
        database: String? = nil, limits: FerryMailboxLimits = FerryMailboxLimits(),
        now: @escaping @Sendable () -> Date = Date.init, timeout: Duration = .seconds(60)
    ) async throws -> FerryPostgresMailbox {
        let name: String
        if let database { name = database } else { name = try await server.makeDatabase() }
        let configuration = FerryPostgresMailbox.Configuration(
            postgres: server.clientConfiguration(database: name), limits: limits, timeout: timeout, removeExpiredInterval: nil)
        let mailbox = FerryPostgresMailbox(configuration: configuration, now: now, logger: quietLogger())
        let running = Task { try await mailbox.run() }
        opened.withLock { $0.append((mailbox, running)) }
        return mailbox
    }

    func closeAll() async throws {
        for (mailbox, running) in opened.withLock({ $0 }) {
            await mailbox.close()
            try await running.value
        }
    }
}

func withPostgresMailboxes(_ body: (PostgresMailboxes) async throws -> Void) async throws {
    let mailboxes = PostgresMailboxes(server: try PostgresServer.current())
    do {
        try await body(mailboxes)
    } catch {
        try? await mailboxes.closeAll()
        throw error
    }
    try await mailboxes.closeAll()
}
