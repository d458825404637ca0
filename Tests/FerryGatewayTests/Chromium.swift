import Ferry
import FerryGateway
import FerryPush
import FerryTestSupport
import Foundation
import NIOCore
import Synchronization
import Testing

/// Runs `body` with a headless Chromium started for it, then closes the browser (killing it if
/// it does not stop) and removes its profile. Fails when `chromium` is not on `PATH`.
func withChromium<Result: Sendable>(_ body: (Chromium) async throws -> Result) async throws -> Result {
    let browser = try await Chromium.launch()
    do {
        let result = try await body(browser)
        await browser.close()
        return result
    } catch {
        await browser.close()
        throw error
    }
}

/// A page open in ``Chromium``, reached through its DevTools session.
struct BrowserPage: Sendable {
    let browser: Chromium
    let targetID: String
    let sessionID: String

    /// Reloads the page (its `localStorage` stays).
    func reload() async throws {
        _ = try await browser.command("Page.reload", [:], session: sessionID)
    }

    /// Closes the page.
    func close() async throws {
        _ = try await browser.command("Target.closeTarget", ["targetId": targetID])
    }

    /// Evaluates `expression`, which must yield a string (or, with `awaitPromise`, a promise of
    /// one), in the page and returns it.
    func evaluate(_ expression: String, awaitPromise: Bool = false) async throws -> String {
        let reply = try await browser.command(
            "Runtime.evaluate", ["expression": expression, "returnByValue": true, "awaitPromise": awaitPromise], session: sessionID)
        let outcome = try JSONDecoder().decode(EvaluateReply.self, from: reply)
        if let exception = outcome.exceptionDetails {
            throw BrowserFailure("the page threw: \(exception.exception?.description ?? exception.text)")
        }
        guard let value = outcome.result.value else { throw BrowserFailure("`\(expression)` did not yield a string") }
        return value
    }

    private struct EvaluateReply: Decodable {
        var result: Value
        var exceptionDetails: Exception?

        struct Value: Decodable {
            var value: String?
        }

        struct Exception: Decodable {
            var text: String
            var exception: Description?
        }

        struct Description: Decodable {
            var description: String?
        }
    }
}

/// A failure of the browser or of the DevTools protocol.
struct BrowserFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}

/// Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`):
/// commands go to the browser's file descriptor 3 and answers come from its descriptor 4, each a
/// JSON object ended by a NUL byte. No port is opened, and the browser runs as root (no
/// sandbox) with a profile of its own in a temporary folder. Every command has a deadline.
final class Chromium: Sendable {
    /// How long one DevTools command may take.
    static let commandTimeout: TimeInterval = 30

    private let process: Process
    private let commands: FileHandle
    private let folder: URL
    private let state = Mutex(PipeState())

    private struct PipeState {
        var received = Data()
        var waiting: [Int: CheckedContinuation<Data, any Error>] = [:]
        var nextID = 1
        var ended = false
    }

    private init(process: Process, commands: FileHandle, folder: URL) {
        self.process = process
        self.commands = commands
        self.folder = folder
    }

    /// The first of `chromium`, `chromium-browser` or `google-chrome` found on `PATH`.
    static func executablePath() -> String? {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            for directory in directories where FileManager.default.isExecutableFile(atPath: "\(directory)/\(name)") {
                return "\(directory)/\(name)"
            }
        }
        return nil
    }

    /// Starts the browser with no page open.
    static func launch() async throws -> Chromium {
        let executable = try #require(
            executablePath(), "chromium is not on PATH: these tests drive a real headless Chromium (Debian: apt-get install chromium)")
        // A write to a browser that has died must fail, not kill the test process.
        signal(SIGPIPE, SIG_IGN)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-chromium-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let log = folder.appendingPathComponent("chromium.log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let toBrowser = Pipe()
        let fromBrowser = Pipe()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        // The shell hands the pipes to the browser as descriptors 3 and 4, which is where
        // --remote-debugging-pipe looks for them.
        process.arguments = [
            "-c", #"exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null"#, executable,
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--remote-debugging-pipe",
            "--user-data-dir=\(folder.appendingPathComponent("profile").path)", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking", "--disable-component-update", "--mute-audio", "about:blank",
        ]
        process.standardInput = toBrowser
        process.standardOutput = fromBrowser
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        let browser = Chromium(process: process, commands: toBrowser.fileHandleForWriting, folder: folder)
        let answers = fromBrowser.fileHandleForReading
        Thread.detachNewThread {
            while true {
                let data = answers.availableData
                if data.isEmpty { break }
                browser.received(data)
            }
            browser.pipeEnded()
        }
        return browser
    }

    /// Opens `url` in a new page and attaches to it.
    func open(_ url: String) async throws -> BrowserPage {
        let target = try JSONDecoder().decode(Target.self, from: try await command("Target.createTarget", ["url": url]))
        let attached = try JSONDecoder().decode(
            Attached.self, from: try await command("Target.attachToTarget", ["targetId": target.targetId, "flatten": true]))
        return BrowserPage(browser: self, targetID: target.targetId, sessionID: attached.sessionId)
    }

    private struct Target: Decodable {
        var targetId: String
    }

    private struct Attached: Decodable {
        var sessionId: String
    }

    /// Sends one DevTools command (to a page's session, or to the browser) and returns its
    /// `result` object as JSON.
    func command(_ method: String, _ parameters: [String: any Sendable] = [:], session: String? = nil) async throws -> Data {
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        var message: [String: Any] = ["id": id, "method": method, "params": parameters]
        if let session { message["sessionId"] = session }
        var bytes = try JSONSerialization.data(withJSONObject: message)
        bytes.append(0)
        let answer = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Data, any Error>) in
            let ended = state.withLock { state in
                if !state.ended { state.waiting[id] = continuation }
                return state.ended
            }
            if ended {
                continuation.resume(throwing: BrowserFailure("the browser has exited: \(logTail())"))
                return
            }
            do {
                try commands.write(contentsOf: bytes)
            } catch {
                fail(id, BrowserFailure("\(method) could not be sent: \(error)"))
                return
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + Self.commandTimeout) { [self] in
                fail(id, BrowserFailure("no answer to \(method) within \(Self.commandTimeout) s"))
            }
        }
        guard let object = try JSONSerialization.jsonObject(with: answer) as? [String: Any] else {
            throw BrowserFailure("\(method): an answer that is not an object")
        }
        if let error = object["error"] { throw BrowserFailure("\(method) failed: \(error)") }
        return try JSONSerialization.data(withJSONObject: object["result"] ?? [String: Any]())
    }

    private func fail(_ id: Int, _ failure: BrowserFailure) {
        state.withLock { $0.waiting.removeValue(forKey: id) }?.resume(throwing: failure)
    }

    /// Bytes from the browser: answers complete their commands; events are not used.
    private func received(_ data: Data) {
        let answers: [(CheckedContinuation<Data, any Error>, Data)] = state.withLock { state in
            state.received.append(data)
            var answers: [(CheckedContinuation<Data, any Error>, Data)] = []
            while let end = state.received.firstIndex(of: 0) {
                let message = Data(state.received[state.received.startIndex..<end])
                state.received = Data(state.received[(end + 1)...])
                guard let object = try? JSONSerialization.jsonObject(with: message) as? [String: Any], let id = object["id"] as? Int,
                    let waiter = state.waiting.removeValue(forKey: id)
                else { continue }
                answers.append((waiter, message))
            }
            return answers
        }
        for (waiter, message) in answers { waiter.resume(returning: message) }
    }

    private func pipeEnded() {
        let waiting = state.withLock { state in
            state.ended = true
            defer { state.waiting = [:] }
            return Array(state.waiting.values)
        }
        for waiter in waiting { waiter.resume(throwing: BrowserFailure("the browser has exited: \(logTail())")) }
    }

    /// The end of the browser's log, for failure messages.
    private func logTail() -> String {
        let log = (try? String(contentsOf: folder.appendingPathComponent("chromium.log"), encoding: .utf8)) ?? ""
        return String(log.suffix(2000))
    }

    /// Asks the browser to close, kills it if it has not exited within ten seconds, waits for
    /// it and removes its profile.
    func close() async {
        _ = try? await command("Browser.close")
        let exited = await eventually(timeout: .seconds(10)) { !self.process.isRunning }
        if !exited { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try? commands.close()
        try? FileManager.default.removeItem(at: folder)
    }
}
