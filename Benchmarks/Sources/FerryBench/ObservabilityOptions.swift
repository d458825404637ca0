import ArgumentParser
import Ferry
import FerryPrometheus
import Foundation
import Prometheus

/// `--observe` and `--no-stats`: what the Ferry system's peer reports (`--system ferry` only).
struct ObservabilityOptions: ParsableArguments {
    @Flag(name: .long, help: "Ferry only: metrics into a Prometheus registry and every call traced by a recording tracer (W3C propagation, the last 100,000 finished spans kept).")
    var observe = false

    @Option(name: .long, help: "Ferry only: as --observe with one backend only, metrics or tracing (to tell their costs apart).")
    var observeOnly: ObservedPart?

    @Flag(name: .long, help: "Ferry only: no per-route statistics (servesStats off); with neither flag the peer keeps them, as by default.")
    var noStats = false

    /// One backend of `--observe`.
    enum ObservedPart: String, ExpressibleByArgument, CaseIterable, Sendable {
        case metrics, tracing
    }

    /// Whether any of the flags was given.
    var isSet: Bool { observe || observeOnly != nil || noStats }

    /// Rejects the flags for systems other than `ferry`.
    func validate(for system: BenchSystem) throws {
        if isSet && system != .ferry {
            throw ValidationError("--observe, --observe-only and --no-stats apply to --system ferry only")
        }
        if observe && observeOnly != nil { throw ValidationError("--observe and --observe-only exclude each other") }
    }

    /// The peer's observability and, with `--observe`, the backends it records into (kept for the
    /// whole run).
    func make() -> (FerryObservability, BenchObservers?) {
        guard observe || observeOnly != nil else { return (FerryObservability(servesStats: !noStats), nil) }
        let observers = BenchObservers()
        let observability = FerryObservability(
            metrics: observeOnly == .tracing ? nil : FerryPrometheusEndpoint.metricsFactory(registry: observers.registry),
            tracer: observeOnly == .metrics ? nil : observers.tracer, servesStats: !noStats)
        return (observability, observers)
    }
}

/// The backends behind `--observe`: a Prometheus registry and a ``RecordingTracer``.
struct BenchObservers: Sendable {
    let registry = PrometheusCollectorRegistry()
    let tracer = RecordingTracer(capacity: 100_000)

    /// One line on what was recorded: spans finished and kept, the newest span, and the size of
    /// the registry's exposition text (rendering it is what a scrape costs).
    func summary() -> String {
        let (finished, kept, newest) = tracer.summary
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        let series = buffer.split(separator: UInt8(ascii: "\n")).filter { $0.first != UInt8(ascii: "#") }.count
        var line = "observed: \(finished) spans finished, \(kept) kept; metrics: \(series) samples, \(buffer.count) bytes"
        if let newest {
            let micros = Double(newest.endNanoseconds &- newest.startNanoseconds) / 1000
            line += "; newest span \(newest.operationName) (\(newest.kind)) trace \(newest.context.traceIDHex)"
            line += " parent \(newest.context.parentSpanID.map { String($0, radix: 16) } ?? "none")"
            line += " \(String(format: "%.1f", micros)) µs, \(newest.attributes.count) attributes"
        }
        return line
    }

    /// Writes ``summary()`` to standard error.
    func report() {
        FileHandle.standardError.write(Data((summary() + "\n").utf8))
    }
}
