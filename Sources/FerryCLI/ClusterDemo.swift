import FerryMicro
import Logging
import Synchronization

/// `ferry demo --cluster`: three nodes of one service behind a `FerryClient`; one starts
/// failing, its circuit breaker opens and traffic moves to the others; it recovers and gets
/// traffic again.
final class ClusterDemo: Sendable {
    private let failures = Mutex(0)

    func run() async throws -> Bool {
        print("Ferry cluster demo: three nodes of service \"who\" behind one FerryClient, on loopback.\n")
        var peers: [FerryPeer] = []
        var nodes: [FerryNode] = []
        let failing = FailureSwitch()
        for name in ["alpha", "beta", "gamma"] {
            let peer = FerryPeer(logger: Logger(label: "cluster.\(name)"))
            peer.router.call("/who") { (_: Void, _: FerryContext) -> String in
                if name == "gamma", failing.isOn {
                    throw FerryStatus(.unavailable, "Overloaded", cause: "gamma is failing on purpose")
                }
                return name
            }
            let listener = try await peer.listen(.tcp(host: "127.0.0.1", port: 0))
            peers.append(peer)
            nodes.append(FerryNode(service: "who", address: listener.address, router: peer.router, metadata: ["name": name]))
            print("node      \(name) listening on \(listener.address)")
        }
        let names = Dictionary(uniqueKeysWithValues: nodes.map { ($0.address, $0.metadata["name"] ?? "?") })
        let clientPeer = FerryPeer(logger: Logger(label: "cluster.client"))
        try await withFerryClient(
            service: "who",
            registry: FerryStaticRegistry(nodes: nodes),
            peer: clientPeer,
            configuration: .init(
                balancer: .roundRobin,
                breaker: .init(failureRatio: 0.5, minimumCalls: 4, windowSize: 10, openDuration: .milliseconds(800)))
        ) { client in
            print("client    round robin over 3 nodes; breaker opens at 50% failures of the last 10 calls (at least 4)\n")

            let first = try await spread(client, calls: 60)
            report(first.count == 3 && first.values.allSatisfy { $0 == 20 }, "healthy   60 calls: \(describe(first))")

            failing.turn(on: true)
            let second = try await spread(client, calls: 60)
            let gamma = client.endpoints.first { names[$0.node.address] == "gamma" }
            report(gamma?.circuit == .open, "failing   gamma answers 503 \"Overloaded\"; its breaker is \(gamma?.circuit.rawValue ?? "?")")
            report(second["gamma"] == nil && second.values.reduce(0, +) == 60,
                   "moved     60 calls, none failed (503s were sent again to another node): \(describe(second))")

            failing.turn(on: false)
            try await Task.sleep(for: .milliseconds(900))
            let third = try await spread(client, calls: 60)
            let recovered = client.endpoints.first { names[$0.node.address] == "gamma" }
            report((third["gamma"] ?? 0) > 0 && recovered?.circuit == .closed,
                   "recovered after the open period a probe succeeded; breaker \(recovered?.circuit.rawValue ?? "?"); 60 calls: \(describe(third))")
        }

        await clientPeer.close()
        for peer in peers { await peer.close() }
        let failed = failures.withLock { $0 }
        print(failed == 0 ? "\nAll steps behaved as expected." : "\n\(failed) step(s) did not behave as expected.")
        return failed == 0
    }

    /// Makes `calls` calls and counts which node answered.
    private func spread(_ client: FerryClient, calls: Int) async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for _ in 0..<calls {
            counts[try await client.call("/who", (), as: String.self, options: .timeout(.seconds(2))), default: 0] += 1
        }
        return counts
    }

    private func describe(_ counts: [String: Int]) -> String {
        counts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }

    private func report(_ ok: Bool, _ line: String) {
        print((ok ? "  ok   " : "  FAIL ") + line)
        if !ok { failures.withLock { $0 += 1 } }
    }
}

/// Whether the demo's failing node fails right now.
private final class FailureSwitch: Sendable {
    private let state = Mutex(false)
    var isOn: Bool { state.withLock { $0 } }
    func turn(on: Bool) { state.withLock { $0 = on } }
}
