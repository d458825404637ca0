@testable import FerryMicro
import FerryTestSupport
import NIOCore
import Synchronization
import Testing

/// One retry decision: a status, and whether the route is idempotent.
struct RetryCase: Sendable, CustomTestStringConvertible {
    var status: FerryStatus
    var idempotent: Bool
    var retried: Bool

    var testDescription: String {
        "\(status)\(idempotent ? ", idempotent" : "") → \(retried ? "retried" : "not retried")"
    }
}

@Suite("Retries by where the failure came from")
struct RetryDecisionTests {
    static let cases: [RetryCase] = [
        // Never sent: safe to send again.
        RetryCase(status: .dialFailed("refused"), idempotent: false, retried: true),
        RetryCase(status: .connectionClosed("refused before writing"), idempotent: false, retried: true),
        // Refused unhandled by the remote: safe too.
        RetryCase(status: .shuttingDown(origin: .remote), idempotent: false, retried: true),
        RetryCase(status: .overloaded(origin: .remote), idempotent: false, retried: true),
        RetryCase(status: .dialFailed("upstream", origin: .remote), idempotent: false, retried: true),
        // May have run: only an idempotent route.
        RetryCase(status: .connectionClosed("dropped", origin: .localAfterSending), idempotent: false, retried: false),
        RetryCase(status: .connectionClosed("dropped", origin: .localAfterSending), idempotent: true, retried: true),
        RetryCase(status: .connectionClosed("upstream dropped", origin: .remote), idempotent: false, retried: false),
        RetryCase(status: .connectionClosed("upstream dropped", origin: .remote), idempotent: true, retried: true),
        // Codes that are not retryable stay so, idempotent or not.
        RetryCase(status: .timedOut("no reply", origin: .localAfterSending), idempotent: true, retried: false),
        RetryCase(status: .internalServerError(origin: .remote), idempotent: true, retried: false),
        RetryCase(status: .writeFailed(), idempotent: true, retried: false),
    ]

    @Test("a status is sent again when it never left or was refused unhandled; one that may have run only for an idempotent route", arguments: cases)
    func decision(_ retryCase: RetryCase) {
        var retry = FerryClient.Configuration.Retry()
        if retryCase.idempotent { retry.idempotentRoutes = ["/work"] }
        #expect(retry.allowsRetry(after: retryCase.status, route: "/work") == retryCase.retried)
    }

    @Test("a code added to the retryable ones follows the same rule: a timeout while awaiting the reply needs an idempotent route")
    func addedCode() {
        var retry = FerryClient.Configuration.Retry()
        retry.retryableCodes.insert(.timedOut)
        #expect(retry.allowsRetry(after: .timedOut("dialling took too long"), route: "/work"))
        #expect(!retry.allowsRetry(after: .timedOut("no reply", origin: .localAfterSending), route: "/work"))
        retry.idempotentRoutes = ["/work"]
        #expect(retry.allowsRetry(after: .timedOut("no reply", origin: .localAfterSending), route: "/work"))
    }
}

@Suite("FerryClient retries by origin, over real sockets", .timeLimit(.minutes(1)), .runsFerryClients)
struct RetryOriginTests {
    static func client(_ nodes: [TestNode], _ configure: (inout FerryClient.Configuration) -> Void = { _ in }) -> FerryClient {
        var configuration = FerryClient.Configuration(balancer: .roundRobin, breaker: nil)
        configure(&configuration)
        return runningClient(registry: FerryStaticRegistry(nodes: nodes.map(\.node)), configuration: configuration)
    }

    /// Runs one call of `/work` through the client's attempts; the first attempt fails with
    /// `firstFailure` (as the session reports it), later ones call the node for real.
    /// Returns the outcome and how many attempts ran.
    static func call(_ client: FerryClient, firstFailure: FerryStatus) async -> (Result<String, FerryStatus>, attempts: Int) {
        let attempts = Atomic<Int>(0)
        let result: Result<String, FerryStatus>
        do {
            let reply = try await client.perform(route: "/work", hashKey: nil, timeout: .seconds(5), backupDelay: nil) { session in
                if attempts.add(1, ordering: .relaxed).newValue == 1 { throw firstFailure }
                return try await session.callForReply("/work", "hi", options: .timeout(.seconds(5)))
            }
            result = .success(try #require(reply).decode(String.self))
        } catch let status as FerryStatus {
            result = .failure(status)
        } catch {
            Issue.record("expected a FerryStatus, got \(error)")
            result = .failure(.unknown("\(error)"))
        }
        return (result, attempts.load(ordering: .relaxed))
    }

    @Test("a call whose connection dropped after it was written is not retried by default, and is when its route is idempotent")
    func droppedAfterWriting() async throws {
        let nodes = try await startNodes(2)
        let dropped = FerryStatus.connectionClosed("connection lost", origin: .localAfterSending)

        let strict = Self.client(nodes)
        let (refused, attempts) = await Self.call(strict, firstFailure: dropped)
        #expect(attempts == 1)
        guard case .failure(let status) = refused else {
            Issue.record("the call must fail with its 102, got \(refused)")
            return
        }
        #expect(status.code == .connectionClosed && status.origin == .localAfterSending)
        #expect(nodes.map(\.hits) == [0, 0])

        let idempotent = Self.client(nodes) { $0.retry.idempotentRoutes = ["/work"] }
        let (answered, retried) = await Self.call(idempotent, firstFailure: dropped)
        #expect(retried == 2)
        #expect(try answered.get() == "n1")  // round robin: the retry goes to the other node

        await strict.close()
        await idempotent.close()
        await stopAll(nodes)
    }

    @Test("a call refused before it was written is retried whatever its route")
    func refusedBeforeWriting() async throws {
        let nodes = try await startNodes(2)
        let client = Self.client(nodes)
        let (answered, attempts) = await Self.call(client, firstFailure: .connectionClosed("connection lost"))
        #expect(attempts == 2)
        #expect(try answered.get() == "n1")
        await client.close()
        await stopAll(nodes)
    }

    @Test("a node that cannot be dialled fails with a local 105, and the call is retried on another node")
    func dialFailureRetried() async throws {
        let nodes = try await startNodes(2)
        await nodes[0].peer.close()

        let single = Self.client([nodes[0]])
        let status = await statusThrown { try await single.call("/work", "hi", as: String.self, options: .timeout(.seconds(5))) }
        #expect(status?.code == .dialFailed && status?.origin == .local, "\(String(describing: status))")

        let client = Self.client(nodes)
        for _ in 0..<4 {
            #expect(try await client.call("/work", "hi", as: String.self, options: .timeout(.seconds(5))) == "n1")
        }
        #expect(try #require(client.status(of: nodes[0])).failures >= 1)
        await single.close()
        await client.close()
        await stopAll(nodes)
    }

    @Test("a 102 in a reply (a proxy lost its upstream) is the remote's and may have run; a 106 in a reply was not handled")
    func remoteStatuses() async throws {
        let nodes = try await startNodes(2)
        nodes[0].set(.fail(.connectionClosed("upstream lost")))
        let strict = Self.client(nodes)
        let reply = try await strict.callForReply("/work", "hi", options: .timeout(.seconds(5)))
        #expect(reply.status.code == .connectionClosed && reply.status.origin == .remote)
        #expect(nodes.map(\.hits) == [1, 0])
        let thrown = await statusThrown { try reply.decode(String.self) }
        #expect(thrown?.origin == .remote)

        let idempotent = Self.client(nodes) { $0.retry.idempotentRoutes = ["/work"] }
        #expect(try await idempotent.call("/work", "hi", as: String.self, options: .timeout(.seconds(5))) == "n1")

        nodes[0].set(.fail(.shuttingDown("draining")))
        let again = Self.client(nodes)
        #expect(try await again.call("/work", "hi", as: String.self, options: .timeout(.seconds(5))) == "n1")
        #expect(nodes.map(\.hits) == [3, 2])

        await strict.close()
        await idempotent.close()
        await again.close()
        await stopAll(nodes)
    }

    // Needs the session to mark a pending call's 102 as sent (`.localAfterSending`) when its
    // connection drops.
    @Test("a real session that loses its connection with the call pending: not retried by default, retried when idempotent")
    func realConnectionDrop() async throws {
        let nodes = try await startNodes(2)
        nodes[0].set(.closeSession)
        let strict = Self.client(nodes)
        let status = await statusThrown { try await strict.call("/work", "hi", as: String.self, options: .timeout(.seconds(5))) }
        #expect(status?.code == .connectionClosed)
        #expect(status?.origin == .localAfterSending, "\(String(describing: status))")
        #expect(nodes.map(\.hits) == [1, 0], "the call reached the first node and was not sent again")

        let idempotent = Self.client(nodes) { $0.retry.idempotentRoutes = ["/work"] }
        #expect(try await idempotent.call("/work", "hi", as: String.self, options: .timeout(.seconds(5))) == "n1")
        #expect(nodes.map(\.hits) == [2, 1])

        await strict.close()
        await idempotent.close()
        await stopAll(nodes)
    }
}
