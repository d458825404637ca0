import Ferry
import FerryTestSupport
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The tests that load the machine: real `ferry serve` processes under load, and floods of real
/// sockets. They run one at a time, as each needs the machine's cores, and in parallel with every
/// other test.
@Suite("Tests that load the machine", .serialized)
struct MachineLoadTests {}

/// A `ferry serve` process started by a test.
struct ServerProcess {
    let process: Process
    let port: Int
    let directory: TemporaryDirectory
    /// What the server processes (old and new) write, as it comes.
    let output: ProcessOutput

    /// What the server processes (old and new) logged.
    var log: String { output.text }

    /// The `ferry` executable built beside the test bundle.
    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ferry")
    }

    /// Starts `ferry serve` on `port` (a free one by default), with `environment` added to this
    /// process's environment.
    static func start(port: Int? = nil, drainTimeout: String = "5s", environment: [String: String] = [:]) throws -> ServerProcess {
        let port = try port ?? freePort()
        let process = Process()
        process.executableURL = executable
        process.arguments = ["serve", "--listen", "127.0.0.1:\(port)", "--drain-timeout", drainTimeout, "--log-level", "info"]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let directory = try TemporaryDirectory()
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        return ServerProcess(process: process, port: port, directory: directory, output: ProcessOutput(reading: pipe.fileHandleForReading))
    }

    /// A port nobody listens on right now.
    static func freePort() throws -> Int { try freeLoopbackPort() }
}

/// Everything written to a pipe, read on a thread of its own until every writer has closed it.
final class ProcessOutput: Sendable {
    private struct State {
        var text = ""
        var ended = false
        var waiters: [(needle: String, continuation: CheckedContinuation<String?, Never>)] = []
    }
    private let state = Mutex(State())

    init(reading handle: FileHandle) {
        Thread.detachNewThread { [self] in
            while true {
                let data = handle.availableData
                if data.isEmpty { break }
                received(String(decoding: data, as: UTF8.self))
            }
            ended()
        }
    }

    /// What was read so far.
    var text: String { state.withLock { $0.text } }

    /// The first complete line containing `needle`, once it has been written; nil if the pipe
    /// ends without one.
    func line(containing needle: String) async -> String? {
        await withCheckedContinuation { continuation in
            let answer: String?? = state.withLock { state in
                if let line = Self.firstLine(in: state.text, containing: needle) { return .some(line) }
                if state.ended { return .some(nil) }
                state.waiters.append((needle, continuation))
                return .none
            }
            if let answer { continuation.resume(returning: answer) }
        }
    }

    private func received(_ chunk: String) {
        let answered: [(CheckedContinuation<String?, Never>, String)] = state.withLock { state in
            state.text += chunk
            var answered: [(CheckedContinuation<String?, Never>, String)] = []
            state.waiters.removeAll { waiter in
                guard let line = Self.firstLine(in: state.text, containing: waiter.needle) else { return false }
                answered.append((waiter.continuation, line))
                return true
            }
            return answered
        }
        for (continuation, line) in answered { continuation.resume(returning: line) }
    }

    private func ended() {
        let waiting = state.withLock { state in
            state.ended = true
            defer { state.waiters = [] }
            return state.waiters.map(\.continuation)
        }
        for continuation in waiting { continuation.resume(returning: nil) }
    }

    private static func firstLine(in text: String, containing needle: String) -> String? {
        text.split(separator: "\n", omittingEmptySubsequences: true).dropLast(text.hasSuffix("\n") ? 0 : 1)
            .first { $0.contains(needle) }.map(String.init)
    }
}

/// The state letter of process `pid` (`R`, `S`, `Z` for a zombie, …), or nil when no such
/// process exists.
func processState(_ pid: pid_t) -> Character? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let end = stat.lastIndex(of: ")")
    else { return nil }
    return stat[stat.index(after: end)...].first { $0 != " " }
}

/// Dials `address` until a server process there accepts (at most 10 s).
func dialWhenReady(_ peer: FerryPeer, _ address: FerryAddress) async throws -> FerrySession {
    let deadline = ContinuousClock.now + .seconds(10)
    while true {
        do {
            return try await peer.dial(address)
        } catch where ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
