@testable import FerryMicro
import FerryTestSupport
import NIOSSL
import Synchronization
import Testing

/// A peer for clients, with a quiet logger.
func makeClientPeer(_ configuration: FerryPeer.Configuration = FerryPeer.Configuration()) -> FerryPeer {
    FerryPeer(configuration: configuration, logger: quietLogger())
}

/// The service name the test nodes register under.
let testService = "svc"

/// A server node for the client tests: one peer listening on 127.0.0.1 (port 0) serving
/// `/work` (answers its own name), `/meta` (answers the value of meta key `k`) and PUSH
/// `/note`. It counts what reaches it and behaves as told.
final class TestNode: Sendable {
    /// How `/work` answers.
    enum Behaviour: Sendable {
        /// With the node's name.
        case answer
        /// By closing the session, so the caller sees 102.
        case closeSession
        /// With this status.
        case fail(FerryStatus)
        /// Not until ``release()``.
        case block
    }

    /// What the node counts and how it behaves, shared with its route closures.
    final class Counters: Sendable {
        struct State {
            var hits = 0
            /// The `call` meta of every `/work` call that reached the node.
            var seen: [String] = []
            var finished = 0
            var pushes = 0
            var behaviour = Behaviour.answer
            var blocked: [CheckedContinuation<Void, Never>] = []
            var released = false
        }
        let state: Mutex<State>

        init(behaviour: Behaviour) {
            state = Mutex(State(behaviour: behaviour))
        }

        func work(name: String, context: FerryContext) async throws -> String {
            let behaviour = state.withLock { state in
                state.hits += 1
                if let id = context.meta["call"] { state.seen.append(id) }
                return state.behaviour
            }
            defer { state.withLock { $0.finished += 1 } }
            switch behaviour {
            case .answer:
                return name
            case .closeSession:
                await context.session.close()
                return name
            case .fail(let status):
                throw status
            case .block:
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let wait = state.withLock { state in
                        if state.released { return false }
                        state.blocked.append(continuation)
                        return true
                    }
                    if !wait { continuation.resume() }
                }
                return name
            }
        }
    }

    let name: String
    let peer: FerryPeer
    let listener: FerryListener
    let routes: [String]
    let counters: Counters

    private init(name: String, peer: FerryPeer, listener: FerryListener, routes: [String], counters: Counters) {
        self.name = name
        self.peer = peer
        self.listener = listener
        self.routes = routes
        self.counters = counters
    }

    /// Starts a node named `name` whose registry entry lists `routes` (by default the ones it
    /// serves), with extra router set-up.
    static func start(
        _ name: String, behaviour: Behaviour = .answer, routes: [String]? = nil,
        configuration: FerryPeer.Configuration = FerryPeer.Configuration(),
        tls: TLSConfiguration? = nil,
        configure: (FerryRouter) -> Void = { _ in }
    ) async throws -> TestNode {
        let peer = FerryPeer(configuration: configuration, logger: quietLogger())
        let counters = Counters(behaviour: behaviour)
        configure(peer.router)
        peer.router.call("/work") { (_: String, context: FerryContext) async throws -> String in
            try await counters.work(name: name, context: context)
        }
        peer.router.call("/meta") { (_: String, context: FerryContext) -> String in
            context.meta["k"] ?? ""
        }
        peer.router.push("/note") { (_: String, _: FerryContext) in
            counters.state.withLock { $0.pushes += 1 }
        }
        let listener = try await peer.listen(.tcp(host: "127.0.0.1", port: 0), tls: tls)
        return TestNode(name: name, peer: peer, listener: listener, routes: routes ?? ["/work", "/meta", "/note"], counters: counters)
    }

    /// The registry entry of this node.
    var node: FerryNode { node(weight: FerryNode.defaultWeight) }

    /// The registry entry of this node with `weight` under `service`.
    func node(weight: Int, service: String = testService) -> FerryNode {
        FerryNode(service: service, address: listener.address, routes: routes, weight: weight, version: "1.0.0", metadata: ["name": name])
    }

    /// Calls of `/work` that reached the node.
    var hits: Int { counters.state.withLock { $0.hits } }
    /// The `call` meta of the `/work` calls that reached the node.
    var seen: [String] { counters.state.withLock { $0.seen } }
    /// Calls of `/work` the node finished handling.
    var finished: Int { counters.state.withLock { $0.finished } }
    /// Pushes of `/note` that reached the node.
    var pushes: Int { counters.state.withLock { $0.pushes } }
    /// Calls of `/work` waiting for ``release()``.
    var blockedCount: Int { counters.state.withLock { $0.blocked.count } }

    /// Changes how `/work` answers from now on.
    func set(_ behaviour: Behaviour) {
        counters.state.withLock { $0.behaviour = behaviour }
    }

    /// Lets every blocked call (and later ones) answer.
    func release() {
        let waiting = counters.state.withLock { state in
            state.released = true
            defer { state.blocked = [] }
            return state.blocked
        }
        for waiter in waiting { waiter.resume() }
    }

    /// Releases blocked calls and closes the peer.
    func stop() async {
        release()
        await peer.close()
    }
}

/// Starts `count` nodes named `n0`, `n1`, ….
func startNodes(_ count: Int, configure: (FerryRouter) -> Void = { _ in }) async throws -> [TestNode] {
    var nodes: [TestNode] = []
    for index in 0..<count {
        nodes.append(try await TestNode.start("n\(index)", configure: configure))
    }
    return nodes
}

/// Stops every node.
func stopAll(_ nodes: [TestNode]) async {
    for node in nodes { await node.stop() }
}

extension FerryClient {
    /// The status of the endpoint at `address`, if the client has one.
    func status(of node: TestNode) -> EndpointStatus? {
        endpoints.first { $0.node.address == node.listener.address }
    }
}

/// Suspends callers of ``wait()`` until ``open()``.
final class Gate: Sendable {
    private let state = Mutex<(open: Bool, waiters: [CheckedContinuation<Void, Never>], arrivals: Int)>((false, [], 0))

    init() {}

    /// How many callers reached the gate.
    var arrivals: Int { state.withLock { $0.arrivals } }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let pass = state.withLock { state in
                state.arrivals += 1
                if state.open { return true }
                state.waiters.append(continuation)
                return false
            }
            if pass { continuation.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// Runs the clients a test makes with ``runningClient(service:registry:peer:configuration:)``:
/// each test case gets a task group of its own, whose child tasks run the clients' `run()`, and
/// which stops (closes) them and waits for their `run()` to return when the test case ends.
/// For suites whose tests make several clients, where a ``withFerryClient(service:registry:peer:configuration:isolation:_:)``
/// scope per client would bury the test in closures.
struct RunsFerryClients: SuiteTrait, TestTrait, TestScoping {
    var isRecursive: Bool { true }

    func scopeProvider(for test: Test, testCase: Test.Case?) -> RunsFerryClients? {
        testCase == nil ? nil : self
    }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        let runner = ClientRunner()
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { await runner.runClients() }
            let outcome: Result<Void, any Error>
            do {
                try await ClientRunner.$current.withValue(runner) { try await function() }
                outcome = .success(())
            } catch {
                outcome = .failure(error)
            }
            await runner.stopAll()
            try outcome.get()
        }
    }
}

extension Trait where Self == RunsFerryClients {
    /// Each test case runs the clients it makes with ``runningClient(service:registry:peer:configuration:)``.
    static var runsFerryClients: RunsFerryClients { RunsFerryClients() }
}

/// The clients of one test case, and the queue through which their `run()` reaches the test
/// case's task group.
final class ClientRunner: Sendable {
    @TaskLocal static var current: ClientRunner?

    private let jobs = ChildTaskQueue()
    private let clients = Mutex<[FerryClient]>([])

    /// Queues `client`'s `run()`.
    func start(_ client: FerryClient) {
        clients.withLock { $0.append(client) }
        let queued = jobs.submit {
            do {
                try await client.run()
            } catch let error as FerryRunError where error.code == .stopped {
                // Closed before it ran.
            } catch {
                Issue.record("run() of a test client failed: \(error)")
            }
        }
        if !queued { Issue.record("a client was made after its test case ended") }
    }

    /// Runs every queued client in a child task until ``stopAll()``.
    func runClients() async {
        await withDiscardingTaskGroup { group in
            while let job = await jobs.next() {
                group.addTask(operation: job)
            }
        }
    }

    /// Closes every client; ``runClients()`` returns once their `run()` returned.
    func stopAll() async {
        jobs.close()
        for client in clients.withLock({ $0 }) { await client.close() }
    }
}

/// A client whose `run()` runs in the current test case's scope (the test or its suite has the
/// ``RunsFerryClients`` trait), until the client is closed or the test case ends.
func runningClient(
    service: String? = testService, registry: any FerryRegistry, peer: FerryPeer = makeClientPeer(),
    configuration: FerryClient.Configuration = FerryClient.Configuration()
) -> FerryClient {
    let client = FerryClient(service: service, registry: registry, peer: peer, configuration: configuration)
    if let runner = ClientRunner.current {
        runner.start(client)
    } else {
        Issue.record("runningClient needs the .runsFerryClients trait on the test or its suite")
    }
    return client
}
