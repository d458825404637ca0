import Hummingbird
import Logging

import Prometheus
import ServiceLifecycle

/// Serves a Prometheus registry as text at `GET /metrics`, for Prometheus to scrape.
///
/// ```swift
/// let registry = PrometheusCollectorRegistry()
/// let factory = FerryPrometheusEndpoint.metricsFactory(registry: registry)
/// let peer = FerryPeer(configuration: .init(observability: FerryObservability(metrics: factory)))
/// let endpoint = FerryPrometheusEndpoint(host: "127.0.0.1", port: 9464, registry: registry)
/// try await endpoint.run()   // or hand it to a ServiceGroup
/// ```
public struct FerryPrometheusEndpoint: Service {
    /// The registry whose metrics the endpoint shows.
    public let registry: PrometheusCollectorRegistry
    /// The address it listens on.
    public let host: String
    /// The port it listens on; 0 picks a free one, reported to `onListening`.
    public let port: Int
    private let logger: Logger
    private let onListening: @Sendable (Int) async -> Void

    /// Creates an endpoint for `registry` on `host:port`; `onListening` gets the bound port.
    public init(
        host: String, port: Int, registry: PrometheusCollectorRegistry,
        logger: Logger = Logger(label: "ferry.prometheus"),
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.host = host
        self.port = port
        self.registry = registry
        self.logger = logger
        self.onListening = onListening
    }

    /// Histogram buckets for call durations, from 100 µs to 10 s: RPCs on a local network take
    /// well under the 5 ms at which Prometheus's default buckets start.
    public static let durationBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    /// A swift-metrics factory that records into `registry`, with ``durationBuckets`` for timers.
    public static func metricsFactory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = durationBuckets
        return factory
    }

    /// The content type of Prometheus's text exposition format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Serves until cancelled (or until a graceful shutdown of its service group).
    public func run() async throws {
        let router = Router()
        let registry = self.registry
        router.get("/metrics") { _, _ -> Response in
            let text = registry.emitToBuffer()
            return Response(
                status: .ok, headers: [.contentType: Self.contentType],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
        }
        let onListening = self.onListening
        let port = self.port
        let application = Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(host, port: port)),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? port) },
            logger: logger)
        try await application.run()
    }
}
