import Foundation
import Logging
import Testing

@testable import Ferry

#if canImport(Glibc)
import Glibc
#endif

/// Starting a successor that runs a shell script instead of this program: the script is the
/// successor, and fd 3 is its readiness pipe (no listeners are handed over).
@Suite("Starting a successor process")
struct RestartHandoffTests {
    @Test("a successor that exits before it is ready fails the start at once, names its exit status, and is reaped")
    func successorExitsEarly() async throws {
        let spawned = Signal<pid_t>()
        let started = ContinuousClock.now
        let error = await #expect(throws: FerryLifecycleError.self) {
            try await ListenerHandoff.startSuccessor(
                listeners: [], readyTimeout: .seconds(30), logger: Self.logger(reporting: spawned), command: Self.shell("exit 3"))
        }
        #expect(started.duration(to: .now) < .seconds(10))
        #expect("\(error.map { "\($0)" } ?? "")".contains("exited with status 3"), "\(String(describing: error))")
        let pid = try #require(spawned.current)
        #expect(processState(pid) == nil, "reaped, not a zombie")
    }

    @Test("a successor that closes its readiness pipe without being ready is stopped and reaped at once")
    func successorClosesPipe() async throws {
        let spawned = Signal<pid_t>()
        let started = ContinuousClock.now
        let error = await #expect(throws: FerryLifecycleError.self) {
            try await ListenerHandoff.startSuccessor(
                listeners: [], readyTimeout: .seconds(30), logger: Self.logger(reporting: spawned),
                command: Self.shell("exec 3>&-; exec sleep 60"))
        }
        #expect(started.duration(to: .now) < .seconds(10))
        #expect("\(error.map { "\($0)" } ?? "")".contains("closed its readiness pipe without being ready"), "\(String(describing: error))")
        let pid = try #require(spawned.current)
        #expect(processState(pid) == nil, "stopped and reaped")
    }

    @Test("a successor that is not ready in time is stopped and reaped")
    func successorTooSlow() async throws {
        let spawned = Signal<pid_t>()
        let error = await #expect(throws: FerryLifecycleError.self) {
            try await ListenerHandoff.startSuccessor(
                listeners: [], readyTimeout: .milliseconds(300), logger: Self.logger(reporting: spawned),
                command: Self.shell("exec sleep 60"))
        }
        #expect("\(error.map { "\($0)" } ?? "")".contains("not ready within"), "\(String(describing: error))")
        let pid = try #require(spawned.current)
        #expect(processState(pid) == nil, "stopped and reaped")
    }

    @Test("a successor that becomes ready lives on")
    func successorReady() async throws {
        let spawned = Signal<pid_t>()
        try await ListenerHandoff.startSuccessor(
            listeners: [], readyTimeout: .seconds(30), logger: Self.logger(reporting: spawned),
            command: Self.shell("printf x >&3; exec sleep 60"))
        let pid = try #require(spawned.current)
        defer {
            kill(pid, SIGKILL)
            var status: CInt = 0
            _ = waitpid(pid, &status, 0)
        }
        let state = processState(pid)
        #expect(state != nil && state != "Z", "still running (state \(state.map(String.init) ?? "gone"))")
    }

    @Test("cancelling the start stops waiting, and stops the successor")
    func cancelled() async throws {
        let spawned = Signal<pid_t>()
        let logger = Self.logger(reporting: spawned)
        let start = Task {
            try await ListenerHandoff.startSuccessor(
                listeners: [], readyTimeout: .seconds(30), logger: logger, command: Self.shell("exec sleep 60"))
        }
        let pid = try #require(await spawned.wait(timeout: .seconds(10)))
        let cancelledAt = ContinuousClock.now
        start.cancel()
        await #expect(throws: CancellationError.self) { try await start.value }
        #expect(cancelledAt.duration(to: .now) < .seconds(10))
        #expect(processState(pid) == nil, "stopped and reaped")
    }

    /// `/bin/sh -c script` as the successor's command.
    private static func shell(_ script: String) -> ListenerHandoff.SuccessorCommand {
        ListenerHandoff.SuccessorCommand(executable: "/bin/sh", arguments: ["sh", "-c", script])
    }

    /// A logger that reports the process id of the successor once it is started.
    private static func logger(reporting spawned: Signal<pid_t>) -> Logger {
        Logger(label: "ferry.test.handoff") { _ in SpawnReporter(spawned: spawned) }
    }
}

/// Fulfils `spawned` with the `pid` of the "started a successor process" line.
private struct SpawnReporter: LogHandler {
    let spawned: Signal<pid_t>
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        guard event.message.description == "started a successor process",
            let pid = event.metadata?["pid"].flatMap({ pid_t("\($0)") })
        else { return }
        spawned.fulfil(pid)
    }
}
