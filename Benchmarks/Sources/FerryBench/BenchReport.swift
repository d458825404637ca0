import Foundation

/// One client run's result, printed as a table or as JSON. The Go net/rpc baseline prints the
/// same JSON shape.
struct BenchReport: Codable, Sendable {
    struct Latency: Codable, Sendable {
        var mean: Double
        var p50: Double
        var p99: Double
        var p999: Double
        var max: Double
    }

    var system: String
    var codec: String
    var concurrency: Int
    var connections: Int
    var oneConnectionPerCaller: Bool
    var threads: Int
    /// Where the callers ran.
    var callers: CallerPlacement
    var payloadBytes: Int
    var calls: Int
    var errors: Int
    var firstError: String?
    var seconds: Double
    var qps: Double
    /// Microseconds.
    var latencyMicroseconds: Latency
    /// ferry-client only, warm-up included: calls the callers made, attempts the client sent
    /// (backup requests and retries included) and attempts cancelled (backup races lost).
    var clientCalls: Int?
    var clientAttempts: Int?
    var clientCancelled: Int?

    enum CodingKeys: String, CodingKey {
        case system, codec, concurrency, connections, threads, callers, calls, errors, seconds, qps
        case oneConnectionPerCaller = "one_connection_per_caller"
        case payloadBytes = "payload_bytes"
        case firstError = "first_error"
        case latencyMicroseconds = "latency_us"
        case clientCalls = "client_calls"
        case clientAttempts = "client_attempts"
        case clientCancelled = "client_cancelled"
    }

    init(
        system: String, codec: String, concurrency: Int, connections: Int, oneConnectionPerCaller: Bool,
        threads: Int, payloadBytes: Int, measurement: LoadMeasurement
    ) {
        self.system = system
        self.codec = codec
        self.concurrency = concurrency
        self.connections = connections
        self.oneConnectionPerCaller = oneConnectionPerCaller
        self.threads = threads
        self.callers = measurement.callers
        self.payloadBytes = payloadBytes
        self.calls = measurement.succeeded
        self.errors = measurement.errors
        self.firstError = measurement.firstError
        let elapsed = measurement.elapsed.components
        self.seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        self.qps = measurement.queriesPerSecond
        let histogram = measurement.latency
        func micros(_ nanoseconds: UInt64) -> Double { Double(nanoseconds) / 1000 }
        self.latencyMicroseconds = Latency(
            mean: histogram.totalCount == 0 ? 0 : histogram.mean / 1000,
            p50: micros(histogram.valueAtPercentile(50)),
            p99: micros(histogram.valueAtPercentile(99)),
            p999: micros(histogram.valueAtPercentile(99.9)),
            max: micros(histogram.max)
        )
    }

    func jsonString() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    func table() -> String {
        func pad(_ text: String, _ width: Int) -> String {
            text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
        }
        func number(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }
        let columns = ["system", "codec", "conc", "conns", "calls", "errors", "QPS", "mean µs", "p50 µs", "p99 µs", "p999 µs", "max µs"]
        let widths = [8, 10, 6, 16, 10, 8, 10, 10, 10, 10, 10, 10]
        let l = latencyMicroseconds
        let values = [
            system, codec, "\(concurrency)", oneConnectionPerCaller ? "\(connections) (1/caller)" : "\(connections)",
            "\(calls)", "\(errors)", number(qps, 0), number(l.mean), number(l.p50), number(l.p99), number(l.p999), number(l.max),
        ]
        var lines = [
            zip(columns, widths).map { pad($0, $1) }.joined(),
            zip(values, widths).map { pad($0, $1) }.joined(),
        ]
        if let clientCalls, let clientAttempts, clientCalls > 0 {
            let extra = Double(clientAttempts - clientCalls) / Double(clientCalls) * 100
            lines.append("client: \(clientCalls) calls, \(clientAttempts) attempts (\(number(extra, 2)) % extra), \(clientCancelled ?? 0) cancelled (warm-up included)")
        }
        lines.append("callers: \(callers == .loop ? "on their connections' event loops" : "on the global concurrent executor")")
        if let firstError { lines.append("first error: \(firstError)") }
        return lines.joined(separator: "\n")
    }
}
