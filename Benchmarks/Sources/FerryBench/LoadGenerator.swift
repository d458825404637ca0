import Histogram
import NIOCore
import Synchronization

/// One connection (or client) that callers share: `call` makes one request and waits for the
/// reply, encoding and decoding as the system does.
protocol CallTarget: Sendable {
    func call() async throws
    /// The executor of the event loop this target's connection runs on, where its callers run
    /// with `--callers loop`; nil when the system has no single loop per connection.
    var eventLoopExecutor: (any TaskExecutor)? { get }
}

extension CallTarget {
    var eventLoopExecutor: (any TaskExecutor)? { nil }
}

/// A task executor that runs jobs on one event loop: where the raw NIO systems' callers run
/// with `--callers loop`. Ferry's callers use `FerrySession.taskExecutor`, which does the same;
/// the ceiling keeps its own, so that it runs no code of Ferry's.
final class EventLoopExecutor: TaskExecutor {
    let eventLoop: any EventLoop

    init(_ eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// How long and how hard to load.
struct LoadPlan: Sendable {
    /// Concurrent callers.
    var concurrency: Int
    /// Total measured calls; nil when measuring for ``duration``.
    var calls: Int?
    /// Measured time; nil when measuring a number of ``calls``.
    var duration: Duration?
    /// Load before measuring.
    var warmup: Duration
    /// Where the callers run.
    var callers: CallerPlacement = .loop
}

/// What one run measured.
struct LoadMeasurement: Sendable {
    /// Latency in nanoseconds of every measured call that succeeded.
    var latency: Histogram<UInt64>
    /// Calls that failed during the measured phase.
    var errors: Int
    /// The first failure's text, if any.
    var firstError: String?
    /// From the end of the warm-up to the last measured call's reply.
    var elapsed: Duration
    /// Where the callers ran: on their connections' event loops only when the plan asked for it
    /// and every target has one.
    var callers: CallerPlacement

    var succeeded: Int { Int(latency.totalCount) }
    var queriesPerSecond: Double {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return seconds > 0 ? Double(succeeded) / seconds : 0
    }
}

/// Runs ``LoadPlan/concurrency`` callers, caller `i` on `targets[i % targets.count]`, each
/// calling in a loop: the warm-up first, then the measured calls, timed one by one.
enum LoadGenerator {
    static let highestTrackableLatency: UInt64 = 120_000_000_000  // 120 s in ns

    static func run(_ plan: LoadPlan, targets: [any CallTarget]) async -> LoadMeasurement {
        precondition(!targets.isEmpty)
        let clock = ContinuousClock()
        let measureStart = clock.now.advanced(by: plan.warmup)
        let measureEnd = plan.duration.map { measureStart.advanced(by: $0) }
        let remaining = CallBudget(plan.calls ?? 0)
        let callersOnLoops = plan.callers == .loop && targets.allSatisfy { $0.eventLoopExecutor != nil }

        struct CallerResult: Sendable {
            var latency: LatencyRecorder
            var errors: Int
            var firstError: String?
            var finished: ContinuousClock.Instant
        }

        let results = await withTaskGroup(of: CallerResult.self, returning: [CallerResult].self) { group in
            for index in 0..<plan.concurrency {
                let target = targets[index % targets.count]
                group.addTask(executorPreference: callersOnLoops ? target.eventLoopExecutor : nil) {
                    var latency = LatencyRecorder()
                    var errors = 0
                    var firstError: String?
                    while clock.now < measureStart {
                        do { try await target.call() } catch {
                            // Failures while warming up are not counted, but a dead server
                            // must not make the caller spin.
                            firstError = firstError ?? "warm-up: \(error)"
                            try? await Task.sleep(for: .milliseconds(10))
                        }
                    }
                    while true {
                        if let measureEnd {
                            if clock.now >= measureEnd { break }
                        } else if !remaining.take() {
                            break
                        }
                        let start = clock.now
                        do {
                            try await target.call()
                            let elapsed = start.duration(to: clock.now)
                            let nanoseconds = elapsed.components.seconds * 1_000_000_000
                                + elapsed.components.attoseconds / 1_000_000_000
                            latency.record(UInt64(max(1, min(nanoseconds, Int64(highestTrackableLatency)))))
                        } catch {
                            errors += 1
                            if firstError == nil || firstError!.hasPrefix("warm-up") { firstError = "\(error)" }
                            if errors > 1000 { break }
                        }
                    }
                    return CallerResult(latency: latency, errors: errors, firstError: firstError, finished: clock.now)
                }
            }
            var all: [CallerResult] = []
            all.reserveCapacity(plan.concurrency)
            for await result in group { all.append(result) }
            return all
        }

        var latency = Histogram<UInt64>(highestTrackableValue: highestTrackableLatency, numberOfSignificantValueDigits: .three)
        var errors = 0
        var firstError: String?
        var lastFinish = measureStart
        for result in results {
            result.latency.add(to: &latency)
            errors += result.errors
            if firstError == nil { firstError = result.firstError }
            if result.finished > lastFinish { lastFinish = result.finished }
        }
        return LoadMeasurement(
            latency: latency, errors: errors, firstError: firstError, elapsed: measureStart.duration(to: lastFinish),
            callers: callersOnLoops ? .loop : .pool)
    }
}

/// One caller's latencies in nanoseconds. They are kept in the order they come and go into a
/// histogram a few thousand at a time: a histogram of this range and precision is over 200 KB,
/// and recording into a thousand callers' histograms, one sample each, missed the caches on
/// every call.
struct LatencyRecorder: Sendable {
    private static let batch = 4096
    private var histogram: Histogram<UInt64>?
    private var samples: [UInt64] = []

    mutating func record(_ nanoseconds: UInt64) {
        samples.append(nanoseconds)
        if samples.count == Self.batch { flush() }
    }

    /// Adds every sample to `total`.
    func add(to total: inout Histogram<UInt64>) {
        if let histogram { total.add(histogram) }
        for sample in samples { _ = total.record(sample) }
    }

    private mutating func flush() {
        if histogram == nil {
            histogram = Histogram(highestTrackableValue: LoadGenerator.highestTrackableLatency, numberOfSignificantValueDigits: .three)
        }
        for sample in samples { _ = histogram!.record(sample) }
        samples.removeAll(keepingCapacity: true)
    }
}

/// The measured calls left to make, shared by the callers.
final class CallBudget: Sendable {
    private let remaining: Atomic<Int>

    init(_ calls: Int) { remaining = Atomic(calls) }

    /// Claims one call; false when none is left.
    func take() -> Bool {
        remaining.wrappingSubtract(1, ordering: .relaxed).newValue >= 0
    }
}
