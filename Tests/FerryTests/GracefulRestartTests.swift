import Ferry
import FerryTestSupport
import Foundation
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A counter shared by concurrent callers.
final class LoadCounter: Sendable {
    private let count = Atomic<Int>(0)
    func increment() { count.wrappingAdd(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

extension MachineLoadTests {
    @Suite("Graceful restart with real processes")
    struct GracefulRestartTests {
        @Test("SIGUSR2 hands the listening socket to a new process under steady load, and no call fails")
        func restartUnderLoad() async throws {
            try #require(FileManager.default.isExecutableFile(atPath: ServerProcess.executable.path), "build the ferry executable first (swift build)")
            let server = try ServerProcess.start()
            let client = FerryPeer(
                configuration: .init(
                    defaultCallTimeout: .seconds(5),
                    redial: .init(maximumAttempts: 50, baseDelay: .milliseconds(20), maximumDelay: .milliseconds(200))),
                logger: quietLogger())
            let address = FerryAddress.tcp(host: "127.0.0.1", port: server.port)
            let session = try await dialWhenReady(client, address)
            let parentPID = try await session.call("/process", (), as: Int.self)
            #expect(parentPID == Int(server.process.processIdentifier))

            let calls = LoadCounter()
            let failures = Recorder<String>()
            let servingPIDs = Recorder<Int>()
            let stop = LoadCounter()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for caller in 0..<8 {
                    group.addTask {
                        var sequence = 0
                        while stop.value == 0 {
                            sequence += 1
                            do {
                                if caller == 0 || sequence % 20 == 0 {
                                    servingPIDs.append(try await session.call("/process", (), as: Int.self))
                                } else {
                                    let text = "caller \(caller) call \(sequence)"
                                    let echoed: String = try await session.call("/echo", text, options: FerryCallOptions(codec: .plain))
                                    if echoed != text { failures.append("wrong echo: \(echoed)") }
                                }
                                calls.increment()
                            } catch {
                                failures.append("\(error)")
                            }
                        }
                    }
                }
                // Restart only once the old process is demonstrably serving the load.
                let loaded = await eventually(timeout: .seconds(10)) { servingPIDs.all.contains(parentPID) && calls.value > 100 }
                #expect(loaded, "the load reached the old process")
                kill(server.process.processIdentifier, SIGUSR2)
                // The old process drains and exits; keep the load on until then and a while after.
                let exited = await eventuallyTrue(within: .seconds(15)) { !server.process.isRunning }
                #expect(exited, "the old process should exit after draining; log:\n\(server.log)")
                try await Task.sleep(for: .milliseconds(700))
                stop.increment()
                try await group.waitForAll()
            }

            let childPID = try await session.call("/process", (), as: Int.self)
            defer {
                kill(pid_t(childPID), SIGTERM)
                server.directory.remove()
            }
            #expect(childPID != parentPID)
            #expect(failures.all.isEmpty, "failed calls: \(failures.all.prefix(5)); log:\n\(server.log)")
            #expect(calls.value > 200)
            #expect(Set(servingPIDs.all) == [parentPID, childPID], "calls were served by both processes")
            await client.close()
        }

        @Test("a successor that dies before it listens fails the restart at once; the old process keeps serving and leaves no zombie")
        func successorDiesBeforeListening() async throws {
            try #require(FileManager.default.isExecutableFile(atPath: ServerProcess.executable.path), "build the ferry executable first (swift build)")
            let files = try TemporaryDirectory()
            defer { files.remove() }
            let failStart = files.path("fail-start")
            let server = try ServerProcess.start(environment: ["FERRY_SERVE_FAIL_START_IF_EXISTS": failStart])
            defer {
                kill(server.process.processIdentifier, SIGKILL)
                server.process.waitUntilExit()
                server.directory.remove()
            }
            let client = FerryPeer(configuration: .init(defaultCallTimeout: .seconds(5)), logger: quietLogger())
            let session = try await dialWhenReady(client, .tcp(host: "127.0.0.1", port: server.port))
            let serverPID = Int(server.process.processIdentifier)
            #expect(try await session.call("/process", (), as: Int.self) == serverPID)

            // From now on a starting `ferry serve` exits with status 3 before it listens.
            #expect(FileManager.default.createFile(atPath: failStart, contents: nil))
            let signalled = ContinuousClock.now
            // The server restarts with `restart()`'s default ready timeout of 30 s.
            kill(server.process.processIdentifier, SIGUSR2)
            let failure = await server.output.line(containing: "restart failed")
            let took = signalled.duration(to: .now)
            let failureLine = try #require(failure, "log:\n\(server.log)")
            #expect(took < .seconds(10), "the failure was noticed after \(took)")
            #expect(failureLine.contains("exited with status 3"), "\(failureLine)")

            let startLine = try #require(await server.output.line(containing: "started a successor process"))
            let successor = try #require(startLine.firstMatch(of: /pid=(\d+)/).flatMap { pid_t($0.1) }, "\(startLine)")
            #expect(processState(successor) == nil, "the dead successor is reaped, not left a zombie (state \(processState(successor).map(String.init) ?? "-"))")
            #expect(try await session.call("/process", (), as: Int.self) == serverPID, "the old process still serves")
            await client.close()
        }

        private func eventuallyTrue(within limit: Duration, _ condition: () -> Bool) async -> Bool {
            let deadline = ContinuousClock.now + limit
            while ContinuousClock.now < deadline {
                if condition() { return true }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return condition()
        }
    }
}
