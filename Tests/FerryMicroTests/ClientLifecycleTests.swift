@testable import FerryMicro
import FerryTestSupport
import ServiceLifecycle
import Synchronization
import Testing

/// `FerryClient.run()` owns the client's background work: the registry watch and the pools'
/// dials are its child tasks, so nothing of a client outlives its `run()`.
@Suite("FerryClient lifecycle", .timeLimit(.minutes(1)))
struct ClientLifecycleTests {
    @Test("a client used only inside withFerryClient leaves no task behind: its watch and its dials have ended when the scope returns")
    func scopeLeavesNothing() async throws {
        let node = try await TestNode.start("n0")
        let registry = RecordingRegistry(nodes: [node.node])
        let gate = DialGate()
        // The first dial hangs in the dial hook until it is cancelled.
        let peer = makeClientPeer(FerryPeer.Configuration(hooks: .init(onDial: { _ in try await gate.pass() })))
        try await withFerryClient(service: testService, registry: registry, peer: peer) { client in
            let status = await statusThrown { try await client.call("/work", "x", as: String.self, options: .timeout(.milliseconds(100))) }
            #expect(status?.code == .timedOut)
            // The caller gave up; the dial goes on, owned by run(), not by the call (on a loaded
            // machine it may reach the hook only after the call's 100 ms).
            #expect(await eventually { gate.entered == 1 })
            #expect(gate.left == 0)
            #expect(registry.watchesStarted == 1 && registry.watchesEnded == 0)
        }
        // Structured: run() returned before the scope did, so its children have ended.
        #expect(gate.left == gate.entered)
        #expect(registry.watchesStarted == 1 && registry.watchesEnded == 1)
        await peer.close()
        await node.stop()
    }

    @Test("a cancelled run() returns promptly and closes the client's sessions; later calls fail with Client Closed")
    func cancelledRun() async throws {
        let node = try await TestNode.start("n0")
        let client = FerryClient(service: testService, registry: FerryStaticRegistry(nodes: [node.node]), peer: makeClientPeer())
        var cancelled = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.run() }
            #expect(try await client.call("/work", "x", as: String.self) == "n0")
            #expect(client.endpoints.map(\.sessions) == [1])
            cancelled = .now
            group.cancelAll()
            try await group.waitForAll()
        }
        // Promptly: not after a timer (the peer's 10 s dial timeout, a 30 s call timeout), with
        // room for a loaded machine running the whole suite at once.
        #expect(cancelled.duration(to: .now) < .seconds(5), "run() took \(cancelled.duration(to: .now)) to return")
        #expect(client.endpoints.isEmpty)
        let status = await statusThrown { try await client.call("/work", "x", as: String.self) }
        #expect(status?.code == .invalidOperation && status?.message == "Client Closed")
        #expect(await eventually { node.peer.hub.count == 0 })
        await node.stop()
    }

    @Test("a graceful shutdown of its ServiceGroup ends run(), takes no new call, and lets the call in flight finish before its session closes")
    func gracefulShutdown() async throws {
        let node = try await TestNode.start("n0", behaviour: .block)
        let client = FerryClient(service: testService, registry: FerryStaticRegistry(nodes: [node.node]), peer: makeClientPeer())
        let services = ServiceGroup(configuration: .init(services: [client], logger: quietLogger()))
        try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask {
                try await services.run()
                return nil
            }
            group.addTask { try await client.call("/work", "x", as: String.self, options: .timeout(.seconds(30))) }
            #expect(await eventually { node.blockedCount == 1 })
            await services.triggerGracefulShutdown()
            let first = try await group.next()
            #expect(first == .some(nil), "run() returns while the call is in flight")
            let refused = await statusThrown { try await client.call("/meta", "x", as: String.self) }
            #expect(refused?.message == "Client Closed")
            #expect(node.peer.hub.count == 1)
            node.release()
            #expect(try await group.next() == "n0")
        }
        #expect(await eventually { node.peer.hub.count == 0 })
        await node.stop()
    }

    @Test("a call made before run() starts waits for it, then succeeds")
    func callBeforeRun() async throws {
        let node = try await TestNode.start("n0")
        let client = FerryClient(service: testService, registry: FerryStaticRegistry(nodes: [node.node]), peer: makeClientPeer())
        try await withThrowingTaskGroup(of: String?.self) { group in
            group.addTask { try await client.call("/work", "x", as: String.self, options: .timeout(.seconds(30))) }
            #expect(await eventually { client.waitingCallCount == 1 })
            group.addTask {
                try await client.run()
                return nil
            }
            #expect(try await group.next() == "n0")
            await client.close()
            while let other = try await group.next() { #expect(other == nil) }
        }
        await node.stop()
    }

    @Test("a call on a client whose run() never starts fails at its timeout with 408 naming run()")
    func neverRun() async throws {
        let client = FerryClient(service: testService, registry: FerryStaticRegistry(), peer: makeClientPeer())
        let status = await statusThrown { try await client.call("/work", "x", as: String.self, options: .timeout(.milliseconds(50))) }
        #expect(status?.code == .timedOut)
        #expect(status?.cause.contains("run()") == true, "cause: \(status?.cause ?? "")")
        await client.close()
    }

    @Test("run() runs once: a second run() while it runs, or a run() after it stopped, throws")
    func runsOnce() async throws {
        let client = FerryClient(service: testService, registry: FerryStaticRegistry(), peer: makeClientPeer())
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.run() }
            // Wait for the first run() to take the client, through a call it lets through.
            let status = await statusThrown { try await client.call("/work", "x", as: String.self) }
            #expect(status?.message == "No Endpoint")
            do {
                try await client.run()
                Issue.record("a second run() ran")
            } catch let error as FerryRunError {
                #expect(error.code == .alreadyRunning)
            }
            await client.close()
            try await group.waitForAll()
        }
        do {
            try await client.run()
            Issue.record("a stopped client ran again")
        } catch let error as FerryRunError {
            #expect(error.code == .stopped)
        }
    }

    @Test("the dial queue hands out queued jobs after it closes, then nil, and refuses new ones")
    func childTaskQueue() async {
        let queue = ChildTaskQueue()
        let ran = RanJobs()
        #expect(queue.submit { ran.record(1) })
        #expect(queue.submit { ran.record(2) })
        queue.close()
        #expect(!queue.submit { ran.record(3) })
        while let job = await queue.next() { await job() }
        #expect(ran.all == [1, 2])
        #expect(await queue.next() == nil)
    }
}

/// The jobs that ran, in order.
final class RanJobs: Sendable {
    private let jobs = Mutex<[Int]>([])
    func record(_ job: Int) { jobs.withLock { $0.append(job) } }
    var all: [Int] { jobs.withLock { $0 } }
}

/// A static registry whose watches count how many started and how many ended.
final class RecordingRegistry: FerryRegistry {
    /// How many watches started and ended.
    final class Counts: Sendable {
        let value = Mutex((started: 0, ended: 0))
    }

    private let registry: FerryStaticRegistry
    private let counts = Counts()

    init(nodes: [FerryNode]) {
        registry = FerryStaticRegistry(nodes: nodes)
    }

    var watchesStarted: Int { counts.value.withLock { $0.started } }
    var watchesEnded: Int { counts.value.withLock { $0.ended } }

    func register(_ node: FerryNode) async throws { try await registry.register(node) }
    func deregister(_ node: FerryNode) async throws { try await registry.deregister(node) }
    func nodes(service: String?) async throws -> [FerryNode] { try await registry.nodes(service: service) }

    func watch(service: String?) -> Watch {
        Watch(upstream: registry.watch(service: service), counts: counts)
    }

    /// The static registry's watch, counted: it ends when its iteration returns nil or throws.
    struct Watch: AsyncSequence {
        typealias Element = [FerryNode]
        typealias Failure = any Error
        let upstream: AsyncThrowingStream<[FerryNode], any Error>
        let counts: Counts

        func makeAsyncIterator() -> Iterator {
            counts.value.withLock { $0.started += 1 }
            return Iterator(upstream: upstream.makeAsyncIterator(), counts: counts)
        }

        struct Iterator: AsyncIteratorProtocol {
            typealias Failure = any Error
            var upstream: AsyncThrowingStream<[FerryNode], any Error>.AsyncIterator
            let counts: Counts
            private var ended = false

            init(upstream: AsyncThrowingStream<[FerryNode], any Error>.AsyncIterator, counts: Counts) {
                self.upstream = upstream
                self.counts = counts
            }

            mutating func next() async throws -> [FerryNode]? {
                do {
                    if let nodes = try await upstream.next() { return nodes }
                } catch {
                    end()
                    throw error
                }
                end()
                return nil
            }

            private mutating func end() {
                guard !ended else { return }
                ended = true
                counts.value.withLock { $0.ended += 1 }
            }
        }
    }
}

/// A dial hook that holds every dial until the dialling task is cancelled, counting the dials
/// that entered and left it.
final class DialGate: Sendable {
    private let state = Mutex<(entered: Int, left: Int, waiters: [UInt64: CheckedContinuation<Void, any Error>], nextID: UInt64)>((0, 0, [:], 0))

    var entered: Int { state.withLock { $0.entered } }
    var left: Int { state.withLock { $0.left } }

    /// Suspends until the calling task is cancelled, then throws `CancellationError`.
    func pass() async throws {
        let id = state.withLock { state in
            state.entered += 1
            state.nextID += 1
            return state.nextID
        }
        defer { state.withLock { $0.left += 1 } }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let wait: Bool = state.withLock { state in
                    if Task.isCancelled { return false }
                    state.waiters[id] = continuation
                    return true
                }
                if !wait { continuation.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: id) }?.resume(throwing: CancellationError())
        }
    }
}
