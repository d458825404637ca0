import Foundation
import Testing

@testable import Ferry

#if canImport(Glibc)
import Glibc
#endif

extension MachineLoadTests {
    @Suite("Chaos with real processes")
    struct ChaosTests {
        @Test("a server killed with SIGKILL under load: pending calls fail within their deadline, clients redial when it is back, and nothing leaks")
        func killedServer() async throws {
            try #require(FileManager.default.isExecutableFile(atPath: ServerProcess.executable.path), "build the ferry executable first (swift build)")
            let first = try ServerProcess.start()
            defer { first.directory.remove() }
            let client = FerryPeer(
                configuration: .init(
                    defaultCallTimeout: .seconds(2),
                    redial: .init(maximumAttempts: 100, baseDelay: .milliseconds(20), maximumDelay: .milliseconds(200))),
                logger: quietLogger())
            let address = FerryAddress.tcp(host: "127.0.0.1", port: first.port)
            let session = try await dialWhenReady(client, address)

            let deadline = Duration.seconds(2)
            let outcomes = Recorder<(start: ContinuousClock.Instant, took: Duration, status: FerryStatus?)>()
            let stop = LoadCounter()
            var second: ServerProcess?
            try await withThrowingTaskGroup(of: Void.self) { group in
                for caller in 0..<8 {
                    group.addTask {
                        while stop.value == 0 {
                            let start = ContinuousClock.now
                            var status: FerryStatus?
                            do {
                                // Some calls sit in the handler when the kill lands.
                                if caller % 2 == 0 {
                                    _ = try await session.call("/slow", 100, as: String.self, options: .timeout(deadline))
                                } else {
                                    _ = try await session.call("/echo", "x", as: String.self, options: FerryCallOptions(timeout: deadline, codec: .plain))
                                }
                            } catch let failure as FerryStatus {
                                status = failure
                            }
                            outcomes.append((start, start.duration(to: .now), status))
                            if status != nil { try? await Task.sleep(for: .milliseconds(10)) }
                        }
                    }
                }
                // Kill only once the load runs (with calls sitting in /slow on the server).
                let loaded = await eventually(timeout: .seconds(10)) { outcomes.count > 40 }
                #expect(loaded, "the load reached the server")
                kill(first.process.processIdentifier, SIGKILL)
                let killedAt = ContinuousClock.now
                try await Task.sleep(for: .milliseconds(400))
                second = try ServerProcess.start(port: first.port)
                // Give the clients time to redial and run calls on the new server.
                let recovered = await eventually(timeout: .seconds(10)) {
                    outcomes.all.contains { $0.start > killedAt + .milliseconds(400) && $0.status == nil }
                }
                #expect(recovered, "calls succeed again once the server is back")
                // Every client is back: the latest calls all succeed (a busy machine may take a while).
                let settled = await eventually(timeout: .seconds(20)) {
                    outcomes.all.sorted { $0.start < $1.start }.suffix(20).allSatisfy { $0.status == nil }
                }
                #expect(settled, "the latest calls all succeed")
                stop.increment()
                try await group.waitForAll()
            }
            defer {
                if let second {
                    kill(second.process.processIdentifier, SIGKILL)
                    second.directory.remove()
                }
            }

            let all = outcomes.all
            let failed = all.filter { $0.status != nil }
            #expect(!failed.isEmpty, "the kill should have failed some calls")
            // Every call ended within its deadline (plus scheduling slack): none hung.
            let slowest = all.map(\.took).max() ?? .zero
            #expect(slowest < deadline + .milliseconds(500), "slowest call took \(slowest)")
            // Failures are connection errors or deadlines, never anything unexpected.
            let codes = Set(failed.compactMap { $0.status?.code })
            #expect(codes.isSubset(of: [.connectionClosed, .timedOut]), "failure codes: \(codes)")
            // The last calls all succeeded.
            let lastTwenty = all.sorted { $0.start < $1.start }.suffix(20)
            #expect(lastTwenty.allSatisfy { $0.status == nil })
            // Nothing leaks: no pending calls or suspended senders, one connection.
            let outstanding = session.outstanding
            #expect(outstanding.pendingCalls == 0 && outstanding.reconnectWaiters == 0 && outstanding.writabilityWaiters == 0)
            #expect(client.connectionCount == 1 && client.hub.count == 1 && session.isActive, "connections \(client.connectionCount), hub \(client.hub.count), active \(session.isActive)")
            await client.close()
            #expect(client.connectionCount == 0 && client.hub.count == 0)
        }
    }
}
