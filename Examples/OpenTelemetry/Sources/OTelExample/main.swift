import Ferry
import Logging
import OTel
import ServiceLifecycle

/// A Ferry service whose metrics and traces go to an OpenTelemetry collector over OTLP/HTTP
/// (`http://localhost:4318` unless `OTEL_EXPORTER_OTLP_ENDPOINT` says otherwise). Spans cross
/// processes in the calls' meta as W3C `traceparent` and `tracestate`.
///
///     swift run OTelExample            # serves /math/add on 127.0.0.1:9090
///     ferry call 127.0.0.1:9090 /math/add '{"a":1,"b":2}'

struct Add: Codable, Sendable {
    var a: Int
    var b: Int
}

var configuration = OTel.Configuration.default
configuration.serviceName = "ferry-example"
configuration.propagators = [.traceContext]
// Bootstraps swift-metrics, swift-distributed-tracing and swift-log with OTLP exporters.
let observability = try OTel.bootstrap(configuration: configuration)

let logger = Logger(label: "ferry-example")
// The peer records into the backends bootstrapped above.
let peer = FerryPeer(configuration: FerryPeer.Configuration(observability: .bootstrapped()), logger: logger)
peer.router.call("/math/add") { (args: Add, _: FerryContext) in args.a + args.b }
let listener = try await peer.listen(.tcp(host: "127.0.0.1", port: 9090))
logger.info("listening", metadata: ["address": "\(listener.address)"])

// The exporters and the peer stop together on SIGTERM or SIGINT; the peer drains first.
let group = ServiceGroup(services: [peer, observability], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
try await group.run()
