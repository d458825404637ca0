import ArgumentParser
import Ferry
import FerryPrometheus
import Foundation
import Logging
import Prometheus
import ServiceLifecycle

/// The `--metrics HOST:PORT` option of `serve` and `gateway`: the peers record their metrics
/// into a registry of their own (the process's global `MetricsSystem` is left alone), served in
/// Prometheus's text format at `http://HOST:PORT/metrics`.
struct MetricsOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics (port 0 picks a free one).", valueName: "host:port"))
    var metrics: String?

    func validate() throws {
        _ = try hostAndPort()
    }

    private func hostAndPort() throws -> (host: String, port: Int)? {
        guard let metrics else { return nil }
        guard case .tcp(let host, let port) = FerryAddress(metrics) else {
            throw ValidationError("--metrics must be HOST:PORT, got \(metrics)")
        }
        return (host, port)
    }

    /// The peers' observability and the endpoint to run beside them, or nil without `--metrics`.
    /// The endpoint prints `metrics at http://HOST:PORT/metrics` once it listens. With
    /// `patience`, a failure to listen is retried for that long: the successor of a graceful
    /// restart waits so for its predecessor, which holds the port until it has drained.
    func endpoint(logger: Logger, patience: Duration? = nil) throws -> MetricsEndpoint? {
        guard let (host, port) = try hostAndPort() else { return nil }
        let registry = PrometheusCollectorRegistry()
        let urlHost = host.contains(":") ? "[\(host)]" : host
        let service = FerryPrometheusEndpoint(host: host, port: port, registry: registry, logger: logger) { bound in
            print("metrics at http://\(urlHost):\(bound)/metrics")
            fflush(nil)
        }
        return MetricsEndpoint(
            observability: FerryObservability(metrics: FerryPrometheusEndpoint.metricsFactory(registry: registry), servesStats: true),
            service: PatientEndpoint(endpoint: service, patience: patience ?? .zero, logger: logger))
    }
}

/// What `--metrics` asks for: the peers' metrics backend and the endpoint that serves it.
struct MetricsEndpoint: Sendable {
    /// Put into each peer's configuration.
    var observability: FerryObservability
    /// Run in the service group of the server, so that it stops with it.
    var service: PatientEndpoint

    /// The endpoint as a member of a service group; it stops when the group does, and a failure
    /// (its port taken) stops the group.
    var serviceConfiguration: ServiceGroupConfiguration.ServiceConfiguration {
        .init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)
    }
}

/// The endpoint, started again while it fails within `patience` of its first start (every
/// quarter second), unless the group shuts down meanwhile.
struct PatientEndpoint: Service {
    var endpoint: FerryPrometheusEndpoint
    var patience: Duration
    var logger: Logger

    func run() async throws {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: patience)
        var told = false
        while true {
            do {
                try await endpoint.run()
                return
            } catch {
                guard clock.now < deadline, !Task.isCancelled, !Task.isShuttingDownGracefully else {
                    throw MetricsFailure(
                        "--metrics \(endpoint.host):\(endpoint.port): cannot serve: \(String(describing: error).balancingErrnoBrackets)")
                }
                if !told {
                    logger.notice(
                        "metrics endpoint cannot listen yet; retrying while the process being replaced drains",
                        metadata: ["address": "\(endpoint.host):\(endpoint.port)", "error": "\(error)"])
                    told = true
                }
            }
            // A graceful shutdown during the wait ends it, and the endpoint with it.
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(250)) }
            } catch {
                return
            }
            if Task.isShuttingDownGracefully { return }
        }
    }
}

/// The metrics endpoint could not listen; the server stops.
struct MetricsFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}
