import Ferry
// The helpers shared with the other test targets (eventually, statusThrown, quietLogger,
// TestClock, …), visible to every file of this target.
@_exported import FerryTestSupport
import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import Testing

// MARK: Shared types

/// Arguments of the `/math/add` test route.
struct AddArgs: Codable, Sendable, Equatable {
    var a: Int
    var b: Int
}

/// A client and a server peer connected by one session, plus the listener.
struct PeerPair: Sendable {
    let server: FerryPeer
    let client: FerryPeer
    let listener: FerryListener
    let session: FerrySession

    /// Closes both peers.
    func close() async {
        await client.close()
        await server.close()
    }
}

/// Registers the routes most tests use on `router`: `/math/add` and `/echo` (String).
func addStandardRoutes(_ router: FerryRouter) {
    router.call("/math/add") { (args: AddArgs, _: FerryContext) in args.a + args.b }
    router.call("/echo") { (text: String, _: FerryContext) in text }
}

/// A server peer listening on 127.0.0.1 (port 0) with the standard routes.
func makeServer(
    _ configuration: FerryPeer.Configuration = FerryPeer.Configuration(),
    logger: Logger = quietLogger(),
    address: FerryAddress = .tcp(host: "127.0.0.1", port: 0),
    configure: (FerryRouter) -> Void = { _ in }
) async throws -> (FerryPeer, FerryListener) {
    let server = FerryPeer(configuration: configuration, logger: logger)
    addStandardRoutes(server.router)
    configure(server.router)
    let listener = try await server.listen(address)
    return (server, listener)
}

/// A server with the standard routes and a client dialled to it.
func makePair(
    server serverConfiguration: FerryPeer.Configuration = FerryPeer.Configuration(),
    client clientConfiguration: FerryPeer.Configuration = FerryPeer.Configuration(),
    serverLogger: Logger = quietLogger(),
    clientLogger: Logger = quietLogger(),
    configure: (FerryRouter) -> Void = { _ in },
    clientRoutes: (FerryRouter) -> Void = { _ in }
) async throws -> PeerPair {
    let (server, listener) = try await makeServer(serverConfiguration, logger: serverLogger, configure: configure)
    let client = FerryPeer(configuration: clientConfiguration, logger: clientLogger)
    clientRoutes(client.router)
    do {
        let session = try await client.dial(listener.address)
        return PeerPair(server: server, client: client, listener: listener, session: session)
    } catch {
        await client.close()
        await server.close()
        throw error
    }
}

/// Dials `server` with a fresh default client and checks that `/math/add` works; closes the client.
func expectServerStillServes(_ address: FerryAddress, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let client = FerryPeer()
    defer { Task { await client.close() } }
    let session = try await client.dial(address)
    let sum = try await session.call("/math/add", AddArgs(a: 20, b: 22), as: Int.self, options: .timeout(.seconds(5)))
    #expect(sum == 42, sourceLocation: sourceLocation)
    await client.close()
}

/// Makes `calls` `/math/add` calls in a row from each of `callers` tasks started together on
/// `session` (preferring `executor`, if given), and returns how many calls failed or got a reply
/// other than their own.
func wrongReplies(on session: FerrySession, callers: Int, calls: Int, executor: (any TaskExecutor)? = nil) async -> Int {
    await withTaskGroup(of: Int.self, returning: Int.self) { group in
        for caller in 0..<callers {
            group.addTask(executorPreference: executor) {
                var wrong = 0
                for call in 0..<calls {
                    let sum = try? await session.call("/math/add", AddArgs(a: caller, b: call * 1000), as: Int.self)
                    if sum != caller + call * 1000 { wrong += 1 }
                }
                return wrong
            }
        }
        return await group.reduce(0, +)
    }
}

/// Runs `operation` with a deadline; throws `TimeoutError` when it takes longer.
struct TimeoutError: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out: \(what)" }
}

func withDeadline<T: Sendable>(
    _ timeout: Duration, _ what: String, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    // Unstructured on purpose: an operation that ignores cancellation must not hold up the
    // deadline.
    let outcome = Signal<Result<T, any Error>>()
    let work = Task {
        do { outcome.fulfil(.success(try await operation())) } catch { outcome.fulfil(.failure(error)) }
    }
    let timer = Task {
        try? await Task.sleep(for: timeout)
        outcome.fulfil(.failure(TimeoutError(what: what)))
    }
    let result = await outcome.wait()
    timer.cancel()
    work.cancel()
    return try result.get()
}

/// A one-shot, awaitable value set from any thread.
final class Signal<Value: Sendable>: Sendable {
    private struct State {
        var value: Value?
        var waiters: [CheckedContinuation<Value, Never>] = []
    }
    private let state = Mutex(State())

    init() {}

    /// Sets the value (the first one wins) and wakes every waiter.
    func fulfil(_ value: Value) {
        let waiters: [CheckedContinuation<Value, Never>] = state.withLock { state in
            guard state.value == nil else { return [] }
            state.value = value
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(returning: value) }
    }

    /// The value, if set.
    var current: Value? { state.withLock { $0.value } }

    /// Waits for the value.
    func wait() async -> Value {
        await withCheckedContinuation { continuation in
            let value: Value? = state.withLock { state in
                if let value = state.value { return value }
                state.waiters.append(continuation)
                return nil
            }
            if let value { continuation.resume(returning: value) }
        }
    }

    /// Waits for the value at most `timeout`; nil when it did not come.
    func wait(timeout: Duration) async -> Value? {
        try? await withDeadline(timeout, "signal") { await self.wait() }
    }
}

/// A thread-safe list of values.
final class Recorder<Value: Sendable>: Sendable {
    private let values = Mutex<[Value]>([])
    init() {}
    func append(_ value: Value) { values.withLock { $0.append(value) } }
    var all: [Value] { values.withLock { $0 } }
    var count: Int { values.withLock { $0.count } }
}

/// A settable reference for values created after the closures that read them.
final class Box<Value: Sendable>: Sendable {
    private let storage = Mutex<Value?>(nil)
    init() {}
    var value: Value? {
        get { storage.withLock { $0 } }
        set { storage.withLock { $0 = newValue } }
    }
}

// MARK: Log capture

/// One captured log line.
struct LogEntry: Sendable, CustomStringConvertible {
    var label: String
    var level: Logger.Level
    var message: String
    var metadata: [String: String]

    var description: String { "[\(level)] \(label): \(message) \(metadata)" }
}

/// The lines logged through every ``CapturingLogHandler`` made with it.
final class LogStore: Sendable {
    private let entries = Mutex<[LogEntry]>([])

    init() {}

    func append(_ entry: LogEntry) { entries.withLock { $0.append(entry) } }

    var all: [LogEntry] { entries.withLock { $0 } }

    /// The first line matching `predicate`, if any.
    func first(where predicate: (LogEntry) -> Bool) -> LogEntry? {
        entries.withLock { $0.first(where: predicate) }
    }

    /// Waits (polling) until a line matches `predicate`; returns it, or nil after `timeout`.
    func waitFor(timeout: Duration = .seconds(5), _ predicate: @escaping @Sendable (LogEntry) -> Bool) async -> LogEntry? {
        _ = await eventually(timeout: timeout) { self.first(where: predicate) != nil }
        return first(where: predicate)
    }

    /// A logger at `level` whose lines land in this store. With `stall`, the thread that logs
    /// that message is held up for that long after logging it: a test widens a moment in which
    /// other threads must act.
    func logger(label: String, level: Logger.Level = .debug, stall: (message: String, duration: Duration)? = nil) -> Logger {
        var logger = Logger(label: label) { label in CapturingLogHandler(label: label, store: self, stall: stall) }
        logger.logLevel = level
        return logger
    }
}

/// A log handler that keeps every line in a ``LogStore``.
struct CapturingLogHandler: LogHandler {
    let label: String
    let store: LogStore
    var stall: (message: String, duration: Duration)?
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        store.append(
            LogEntry(
                label: label, level: event.level, message: event.message.description,
                metadata: merged.mapValues { "\($0)" }))
        if let stall, event.message.description == stall.message {
            let (seconds, attoseconds) = stall.duration.components
            usleep(UInt32(seconds * 1_000_000 + attoseconds / 1_000_000_000_000))
        }
    }
}

/// Whether the server logged the close of a session with a reason containing `text`.
func closeReasonLogged(_ store: LogStore, containing text: String, timeout: Duration = .seconds(5)) async -> LogEntry? {
    await store.waitFor(timeout: timeout) { entry in
        entry.message == "session closed" && (entry.metadata["reason"] ?? "").contains(text)
    }
}
