@testable import FerryMicro
import FerryTestSupport
import NIOSSL
import Synchronization
import Testing

@Suite("FerryClient over real sockets", .timeLimit(.minutes(1)), .runsFerryClients)
struct ClientTests {
    static func client(
        _ nodes: [TestNode], service: String = testService, peer: FerryPeer = makeClientPeer(),
        _ configure: (inout FerryClient.Configuration) -> Void = { _ in }
    ) -> (FerryClient, FerryStaticRegistry) {
        var configuration = FerryClient.Configuration()
        configure(&configuration)
        let registry = FerryStaticRegistry(nodes: nodes.map(\.node))
        return (runningClient(service: service, registry: registry, peer: peer, configuration: configuration), registry)
    }

    static func work(_ client: FerryClient, id: Int? = nil, hashKey: String? = nil) async throws -> String {
        var options = FerryCallOptions(timeout: .seconds(5))
        if let id { options.meta.add("call", String(id)) }
        return try await client.call("/work", "hi", as: String.self, options: options, hashKey: hashKey)
    }

    @Test("round robin spreads calls evenly over the nodes, weighted round robin by weight")
    func spreads() async throws {
        let nodes = try await startNodes(3)
        let (client, _) = Self.client(nodes) { $0.balancer = .roundRobin }
        var answers: [String] = []
        for _ in 0..<30 { answers.append(try await Self.work(client)) }
        #expect(nodes.map(\.hits) == [10, 10, 10])
        #expect(Set(answers) == ["n0", "n1", "n2"])
        await client.close()

        let registry = FerryStaticRegistry(nodes: [nodes[0].node(weight: 2), nodes[1].node(weight: 1)])
        let weighted = runningClient(registry: registry, configuration: .init(balancer: .weightedRoundRobin))
        for _ in 0..<30 { _ = try await Self.work(weighted) }
        #expect(nodes.map(\.hits) == [30, 20, 10])
        await weighted.close()
        await stopAll(nodes)
    }

    @Test("consistent hash sends every call with one key to one node")
    func sticky() async throws {
        let nodes = try await startNodes(3)
        let (client, _) = Self.client(nodes) { $0.balancer = .consistentHash() }
        for user in 0..<5 {
            var answers = Set<String>()
            for _ in 0..<5 { answers.insert(try await Self.work(client, hashKey: "user-\(user)")) }
            #expect(answers.count == 1)
        }
        #expect(nodes.map(\.hits).reduce(0, +) == 25)
        await client.close()
        await stopAll(nodes)
    }

    @Test("the pool dials at most its size of sessions per node, lazily")
    func poolSize() async throws {
        let nodes = try await startNodes(2)
        let (client, _) = Self.client(nodes) {
            $0.balancer = .roundRobin
            $0.poolSize = 3
        }
        #expect(nodes.map { $0.peer.hub.count } == [0, 0])
        try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<60 { group.addTask { try await Self.work(client) } }
            for try await _ in group {}
        }
        #expect(nodes.map { $0.peer.hub.count } == [3, 3])
        #expect(client.endpoints.map(\.sessions) == [3, 3])

        let (single, _) = Self.client(nodes)
        try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<20 { group.addTask { try await Self.work(single) } }
            for try await _ in group {}
        }
        #expect(single.endpoints.map(\.sessions).reduce(0, +) <= 2)
        #expect(nodes.map { $0.peer.hub.count }.reduce(0, +) <= 8)

        await client.close()
        await single.close()
        #expect(await eventually { nodes.allSatisfy { $0.peer.hub.count == 0 } })
        await stopAll(nodes)
    }

    @Test("the caller's options reach the node unchanged: meta arrives, the timeout applies")
    func optionsPassThrough() async throws {
        let node = try await TestNode.start("n0", behaviour: .block)
        let (client, _) = Self.client([node])
        let echoed = try await client.call("/meta", "x", as: String.self, options: FerryCallOptions(meta: ["k": "v"]))
        #expect(echoed == "v")
        // The node never answers /work; two seconds are enough for the call to reach it first.
        let status = await statusThrown { try await client.call("/work", "x", as: String.self, options: .timeout(.seconds(2))) }
        #expect(status?.code == .timedOut)
        #expect(await eventually { node.hits == 1 })  // written before it timed out
        #expect(node.hits == 1)  // a timeout is not retried
        await client.close()
        await node.stop()
    }

    @Test("waiting for a dial ends at the call's deadline or on cancellation; the dial still fills the slot")
    func slowDial() async throws {
        let node = try await TestNode.start("n0")
        let gate = Gate()
        let peer = makeClientPeer(FerryPeer.Configuration(hooks: .init(onDial: { _ in await gate.wait() })))
        let (client, _) = Self.client([node], peer: peer)
        let status = await statusThrown { try await client.call("/work", "x", as: String.self, options: .timeout(.milliseconds(100))) }
        #expect(status?.code == .timedOut)
        // The dial outlives the call; on a loaded machine it may reach the hook only after 100 ms.
        #expect(await eventually { gate.arrivals == 1 })

        let cancelled = Task { try await client.call("/work", "x", as: String.self, options: .timeout(.seconds(30))) }
        #expect(await eventually { client.endpoints.first?.inFlight == 1 })
        cancelled.cancel()
        let cancelledStatus = await statusThrown { try await cancelled.value }
        #expect(cancelledStatus?.code == .cancelled)
        #expect(gate.arrivals == 1)  // both waited for the one dial

        gate.open()
        #expect(await eventually { node.peer.hub.count == 1 })
        #expect(try await Self.work(client) == "n0")
        #expect(node.peer.hub.count == 1 && gate.arrivals == 1)
        await client.close()
        await node.stop()
    }

    @Test("nodes that require mutual TLS are called over TLS; clients without TLS or with a foreign certificate are refused")
    func tls() async throws {
        let certificates = try await TestCertificates.generate()
        defer { certificates.remove() }
        let serverTLS = try certificates.serverConfiguration(requireClientCertificate: true)
        let nodes = [try await TestNode.start("n0", tls: serverTLS), try await TestNode.start("n1", tls: serverTLS)]
        let clientTLS = try certificates.clientConfiguration(withCertificate: true)
        let (client, _) = Self.client(nodes) { configuration in
            configuration.balancer = .roundRobin
            configuration.poolSize = 2
            configuration.tls = clientTLS
        }
        var answers: [String] = []
        for _ in 0..<8 { answers.append(try await Self.work(client)) }
        #expect(answers.sorted() == ["n0", "n0", "n0", "n0", "n1", "n1", "n1", "n1"])
        await client.close()

        let refused: [(String, TLSConfiguration?)] = [
            ("no TLS", nil),
            ("no client certificate", try certificates.clientConfiguration(withCertificate: false)),
            ("a certificate from another CA", try certificates.clientConfiguration(withCertificate: true, rogue: true)),
        ]
        for (what, tls) in refused {
            let (other, _) = Self.client(nodes) { $0.tls = tls }
            let status = await statusThrown { try await Self.work(other) }
            #expect(status != nil, "a client with \(what) must not get a reply")
            await other.close()
        }
        #expect(nodes.map(\.hits) == [4, 4], "only the TLS client's calls reached the nodes")
        await stopAll(nodes)
    }

    @Test("an invalid TLS configuration fails calls with 105 and says why")
    func invalidTLS() async throws {
        let node = try await TestNode.start("n0")
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .file("/nonexistent/ca.pem")
        let (client, _) = Self.client([node]) { $0.tls = tls }
        let status = await statusThrown { try await Self.work(client) }
        #expect(status?.code == .dialFailed)
        #expect(status?.cause.contains("TLS configuration") == true, "cause: \(status?.cause ?? "")")
        await client.close()
        await node.stop()
    }

    @Test("with no node for the service or the route, calls fail with 105 No Endpoint")
    func noEndpoint() async throws {
        let empty = runningClient(service: "nobody", registry: FerryStaticRegistry())
        let status = await statusThrown { try await empty.call("/work", "x", as: String.self) }
        #expect(status?.code == .dialFailed)
        #expect(status?.message == "No Endpoint")

        let node = try await TestNode.start("n0")
        let (client, _) = Self.client([node])
        let unrouted = await statusThrown { try await client.call("/elsewhere", "x", as: String.self) }
        #expect(unrouted?.code == .dialFailed && unrouted?.message == "No Endpoint")
        #expect(try await Self.work(client) == "n0")

        await client.close()
        let closed = await statusThrown { try await Self.work(client) }
        #expect(closed?.code == .invalidOperation && closed?.message == "Client Closed")
        #expect(await eventually { node.peer.hub.count == 0 })
        await empty.close()
        await node.stop()
    }

    @Test("a client of every service finds the node that lists the route")
    func byRoute() async throws {
        let work = try await TestNode.start("worker", routes: ["/work"])
        let meta = try await TestNode.start("meta", routes: ["/meta"])
        let registry = FerryStaticRegistry(nodes: [work.node(weight: 1, service: "a"), meta.node(weight: 1, service: "b")])
        let client = runningClient(service: nil, registry: registry)
        #expect(try await Self.work(client) == "worker")
        #expect(try await client.call("/meta", "x", as: String.self, options: FerryCallOptions(meta: ["k": "b"])) == "b")
        let status = await statusThrown { try await client.call("/note", "x", as: String.self) }
        #expect(status?.message == "No Endpoint")
        #expect(client.service == nil)
        await client.close()
        await work.stop()
        await meta.stop()
    }

    @Test("pushes go to one node each")
    func pushes() async throws {
        let nodes = try await startNodes(2)
        let (client, _) = Self.client(nodes) { $0.balancer = .roundRobin }
        for _ in 0..<10 { try await client.push("/note", "x") }
        #expect(await eventually { nodes.map(\.pushes) == [5, 5] })
        await client.close()
        await stopAll(nodes)
    }

    @Test("a failing node trips its breaker and traffic moves to the others; all open fails fast with 503")
    func breakerTrips() async throws {
        let nodes = try await startNodes(3)
        nodes[2].set(.closeSession)
        let (client, _) = Self.client(nodes) {
            $0.balancer = .roundRobin
            $0.retry = .disabled
            $0.breaker = .init(failureRatio: 0.5, minimumCalls: 3, windowSize: 5, openDuration: .seconds(60))
        }
        var failures = 0
        var lastTwenty: [String] = []
        for index in 0..<40 {
            do {
                let answer = try await Self.work(client)
                if index >= 20 { lastTwenty.append(answer) }
            } catch let status as FerryStatus {
                #expect(status.code == .connectionClosed)
                failures += 1
            }
        }
        #expect(failures == 3)
        #expect(nodes[2].hits == 3)
        #expect(client.status(of: nodes[2])?.circuit == .open)
        #expect(client.status(of: nodes[2])?.failures == 3)
        #expect(lastTwenty.count == 20 && !lastTwenty.contains("n2"))
        #expect(nodes[0].hits + nodes[1].hits == 37)

        // One node, failing: once its breaker opens, calls fail fast without reaching it.
        let lone = try await TestNode.start("lone", behaviour: .closeSession)
        let (single, _) = Self.client([lone]) {
            $0.retry = .disabled
            $0.breaker = .init(failureRatio: 0.5, minimumCalls: 2, windowSize: 2, openDuration: .seconds(60))
        }
        for _ in 0..<2 { _ = await statusThrown { try await Self.work(single) } }
        let status = await statusThrown { try await Self.work(single) }
        #expect(status?.code == .unavailable && status?.message == "Circuit Open")
        #expect(lone.hits == 2)

        await client.close()
        await single.close()
        await lone.stop()
        await stopAll(nodes)
    }

    @Test("after the open period one probe goes through: failure reopens, recovery closes the breaker")
    func halfOpenProbe() async throws {
        let nodes = try await startNodes(2)
        nodes[0].set(.fail(FerryStatus(.unavailable, "Overloaded")))
        let (client, _) = Self.client(nodes) {
            $0.balancer = .roundRobin
            $0.retry = .disabled
            $0.breaker = .init(failureRatio: 0.5, minimumCalls: 2, windowSize: 2, openDuration: .milliseconds(300))
        }
        // Trip it.
        #expect(await eventually {
            _ = try? await Self.work(client)
            return client.status(of: nodes[0])?.circuit == .open
        })
        let tripped = nodes[0].hits
        #expect(tripped == 2)

        // Still failing: the probe (exactly one call) opens it again.
        #expect(await eventually {
            _ = try? await Self.work(client)
            return nodes[0].hits > tripped
        })
        #expect(nodes[0].hits == tripped + 1)
        #expect(client.status(of: nodes[0])?.circuit == .open)

        // Recovered: the next probe succeeds, the breaker closes and the node takes calls again.
        nodes[0].set(.answer)
        #expect(await eventually {
            _ = try? await Self.work(client)
            return client.status(of: nodes[0])?.circuit == .closed
        })
        let before = nodes[0].hits
        for _ in 0..<10 { _ = try await Self.work(client) }
        #expect(nodes[0].hits == before + 5)
        await client.close()
        await stopAll(nodes)
    }

    @Test("a call of an idempotent route that loses its connection is retried on another node, never the same one")
    func retriesElsewhere() async throws {
        let nodes = try await startNodes(2)
        nodes[0].set(.closeSession)
        let (client, _) = Self.client(nodes) {
            $0.balancer = .random
            $0.breaker = nil
            $0.retry.minimumRetriesPerSecond = 100  // about half the calls need a retry here
            // The node drops the connection after the call arrived: the call may have run, so
            // only an idempotent route is sent again.
            $0.retry.idempotentRoutes = ["/work"]
        }
        for id in 0..<30 { _ = try await Self.work(client, id: id) }
        let failed = nodes[0].seen
        #expect(failed.count >= 3)
        #expect(Set(failed).count == failed.count)  // no call reached the failing node twice
        #expect(nodes[1].seen == (0..<30).map(String.init))  // each call answered once, in order
        #expect(client.status(of: nodes[0])?.failures == failed.count)
        await client.close()
        await stopAll(nodes)
    }

    @Test("a node that is down (dial fails) is skipped by retries")
    func dialFailureRetried() async throws {
        let nodes = try await startNodes(3)
        let (client, _) = Self.client(nodes) { $0.balancer = .roundRobin }
        await nodes[2].peer.close()
        for _ in 0..<20 { _ = try await Self.work(client) }
        #expect(nodes[0].hits + nodes[1].hits == 20)
        let down = try #require(client.status(of: nodes[2]))
        #expect(down.failures >= 1)
        #expect(down.sessions == 0)
        await client.close()
        await stopAll(nodes)
    }

    @Test("retries never exceed the budget, counted at the nodes")
    func retryBudget() async throws {
        let nodes = try await startNodes(3)
        for node in nodes { node.set(.fail(FerryStatus(.unavailable, "Overloaded"))) }
        let (client, _) = Self.client(nodes) {
            $0.breaker = nil
            $0.retry = .init(maximumAttempts: 3, budgetRatio: 0.2, minimumRetriesPerSecond: 0)
        }
        for _ in 0..<50 {
            let reply = try await client.callForReply("/work", "x")
            #expect(reply.status.code == .unavailable)
        }
        let total = nodes.map(\.hits).reduce(0, +)
        #expect(total <= 60)  // 50 calls + 20 %
        #expect(total >= 58)  // and the budget was used
        await client.close()
        await stopAll(nodes)
    }

    @Test("a backup request after the delay wins over a stalled node, whose attempt is cancelled")
    func backupRequest() async throws {
        let slow = try await TestNode.start("slow", behaviour: .block)
        let fast = try await TestNode.start("fast")
        // The backup delay runs on a clock the test moves: the first attempt reaches the slow
        // node first, however long that takes, and the backup goes out only when the test says.
        let clock = TestClock()
        let (client, _) = Self.client([slow, fast]) {
            $0.balancer = .roundRobin  // the first call goes to the first node: the slow one
            $0.backupDelay = .milliseconds(500)
            $0.clock = clock
        }
        let call = Task { try await Self.work(client) }
        #expect(await eventually { slow.hits == 1 && clock.sleeperCount == 1 }, "the first attempt waits on the slow node")
        clock.advance(by: .milliseconds(499))
        #expect(clock.sleeperCount == 1 && fast.hits == 0, "no backup before the delay")
        clock.advance(by: .milliseconds(1))
        let answer = try await call.value
        #expect(answer == "fast")
        #expect(slow.hits == 1 && fast.hits == 1)
        #expect(slow.blockedCount == 1 && slow.finished == 0)  // the slow node never answered
        let loser = try #require(client.status(of: slow))
        #expect(loser.cancelled == 1 && loser.inFlight == 0)
        #expect(loser.failures == 0)  // a cancelled attempt does not count against the node
        #expect(client.status(of: fast)?.calls == 1)

        // Without a backup delay, the same call waits for the slow node.
        let (patient, _) = Self.client([slow, fast]) { $0.balancer = .roundRobin }
        let status = await statusThrown {
            try await patient.call("/work", "x", as: String.self, options: .timeout(.milliseconds(200)))
        }
        #expect(status?.code == .timedOut)
        await patient.close()
        slow.release()
        await client.close()
        await slow.stop()
        await fast.stop()
    }

    @Test("deregistering a node stops its traffic without failing calls, including one in flight")
    func deregistration() async throws {
        let nodes = try await startNodes(3)
        nodes[2].set(.block)
        let (client, registry) = Self.client(nodes) { $0.balancer = .roundRobin }
        #expect(try await Self.work(client) == "n0")
        #expect(try await Self.work(client) == "n1")
        let stuck = Task { try await Self.work(client) }  // n2, blocked
        #expect(await eventually { nodes[2].blockedCount == 1 })

        try await registry.deregister(nodes[2].node)
        #expect(await eventually { client.endpoints.count == 2 })
        for _ in 0..<20 { _ = try await Self.work(client) }
        #expect(nodes[2].hits == 1)
        // The session to the deregistered node stays until its last call is answered.
        #expect(nodes[2].peer.hub.count == 1)
        nodes[2].release()
        #expect(try await stuck.value == "n2")
        #expect(await eventually(timeout: .seconds(30)) { nodes[2].peer.hub.count == 0 })

        // Registering it again brings it back.
        nodes[2].set(.answer)
        try await registry.register(nodes[2].node)
        #expect(await eventually { client.endpoints.count == 3 })
        for _ in 0..<6 { _ = try await Self.work(client) }
        #expect(nodes[2].hits == 3)
        await client.close()
        await stopAll(nodes)
    }
}
