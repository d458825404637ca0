import NIOSSL
import Synchronization

/// How a client's pools dial nodes: through its peer, over TLS when the client's configuration
/// asks for it, with one TLS context for every dial, as child tasks of the client's
/// ``FerryClient/run()``.
struct NodeDialler: Sendable {
    let peer: FerryPeer
    /// The dials waiting for, or running in, the client's `run()`.
    let tasks = ChildTaskQueue()
    /// The context made from ``FerryClient/Configuration/tls``, or why it could not be made;
    /// nil dials without TLS.
    private let tls: Result<NIOSSLContext, FerryStatus>?
    private let serverHostname: String?

    init(peer: FerryPeer, tls: TLSConfiguration? = nil, serverHostname: String? = nil) {
        self.peer = peer
        self.serverHostname = serverHostname
        self.tls = tls.map { configuration in
            Result {
                try NIOSSLContext(configuration: configuration)
            }.mapError { FerryStatus(.dialFailed, "Dial Failed", cause: "TLS configuration: \($0)") }
        }
    }

    func dial(_ address: FerryAddress) async throws -> FerrySession {
        switch tls {
        case nil:
            try await peer.dial(address)
        case .success(let context):
            try await peer.dial(address, sslContext: context, serverHostname: serverHostname)
        case .failure(let status):
            throw status
        }
    }

    /// Dials `address` in a child task of the client's `run()` and hands the outcome to
    /// `completion` there. Returns false, and runs nothing, once the client has stopped.
    func startDial(_ address: FerryAddress, then completion: @escaping @Sendable (Result<FerrySession, FerryStatus>) async -> Void) -> Bool {
        tasks.submit { [self] in
            let result: Result<FerrySession, FerryStatus>
            do {
                result = .success(try await dial(address))
            } catch {
                result = .failure((error as? FerryStatus) ?? FerryStatus(.dialFailed, "Dial Failed", cause: "\(address): \(error)"))
            }
            await completion(result)
        }
    }
}

/// Jobs handed to an owner's `run()`, which takes each as a child task of its own. A client's
/// dials go through one: a dial outlives the call that started it (a caller that stops waiting
/// leaves the dial to fill the slot for the next call), so the call's task cannot own it.
///
/// One consumer (the owner's `run()`) takes jobs with ``next()``, which suspends on a
/// continuation until a job comes or the queue closes. Jobs queued before `run()` starts wait
/// for it. Once closed, the queue refuses new jobs and hands out those still queued, then nil,
/// so no accepted job is dropped.
final class ChildTaskQueue: Sendable {
    typealias Job = @Sendable () async -> Void

    private enum State {
        case open(queued: [Job], consumer: CheckedContinuation<Job?, Never>?)
        case closed(queued: [Job])
    }

    private let state = Mutex(State.open(queued: [], consumer: nil))

    /// Queues `job`, or hands it to the waiting consumer; false once the queue is closed.
    func submit(_ job: @escaping Job) -> Bool {
        enum Step {
            case refused
            case queued
            case handOver(CheckedContinuation<Job?, Never>)
        }
        let step: Step = state.withLock { state in
            switch state {
            case .closed:
                return .refused
            case .open(var queued, let consumer):
                if let consumer {
                    state = .open(queued: queued, consumer: nil)
                    return .handOver(consumer)
                }
                queued.append(job)
                state = .open(queued: queued, consumer: nil)
                return .queued
            }
        }
        switch step {
        case .refused: return false
        case .queued: return true
        case .handOver(let consumer):
            consumer.resume(returning: job)
            return true
        }
    }

    /// The next job, waiting for one while the queue is open; nil once it is closed and empty.
    func next() async -> Job? {
        await withCheckedContinuation { (continuation: CheckedContinuation<Job?, Never>) in
            let ready: Job?? = state.withLock { state in
                switch state {
                case .open(var queued, let consumer):
                    precondition(consumer == nil, "one consumer at a time")
                    if queued.isEmpty {
                        state = .open(queued: [], consumer: continuation)
                        return nil
                    }
                    let job = queued.removeFirst()
                    state = .open(queued: queued, consumer: nil)
                    return .some(job)
                case .closed(var queued):
                    if queued.isEmpty { return .some(nil) }
                    let job = queued.removeFirst()
                    state = .closed(queued: queued)
                    return .some(job)
                }
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    /// Refuses new jobs from now on; the consumer still gets those queued, then nil.
    func close() {
        let consumer: CheckedContinuation<Job?, Never>? = state.withLock { state in
            guard case .open(let queued, let consumer) = state else { return nil }
            state = .closed(queued: queued)
            return consumer
        }
        consumer?.resume(returning: nil)
    }
}
