import ArgumentParser
import Ferry
import FerryEtcd
import Foundation
import Logging
import NIOCore

struct CallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "Call a route on any Ferry or erpc server and print the reply.",
        discussion: """
            Examples:
              ferry call 127.0.0.1:9090 /math/add '{"a":1,"b":2}' --meta k=v --timeout 2s
              ferry call 127.0.0.1:9090 /echo -d @body.json --output json
              echo '{"a":1,"b":2}' | ferry call 127.0.0.1:9090 /math/add -d @-
              ferry call math /math/add '{"a":1,"b":2}' --etcd http://127.0.0.1:2379
              ferry call 127.0.0.1:9090 /echo hi --tls-ca ca.pem --token SECRET
              ferry call ws://127.0.0.1:9091/ws /math/add '{"a":1,"b":2}' [--ws-proto pb]
              ferry call wss://example.com/ws /echo hi [--tls-ca ca.pem]
            The body is sent as given, with the chosen codec id. Exits 1 when the reply status is \
            not OK, 2 when no call could be made (dial failed, etcd unreachable, no node).
            """
    )

    @Argument(help: "The server (HOST:PORT, [IPv6]:PORT, unix:PATH, ws://HOST:PORT/PATH or wss://…), or a service name with --etcd.")
    var address: String

    @Argument(help: "The route, e.g. /math/add.")
    var route: String

    @Argument(help: "The body, sent as is (or give it with -d).")
    var body: String?

    @Option(
        name: [.customShort("d"), .customLong("data")],
        help: ArgumentHelp("The body: TEXT as is, @FILE from a file, @- from standard input.", valueName: "body"))
    var data: String?

    @Option(help: "Meta pair KEY=VALUE; repeat for more.")
    var meta: [String] = []

    // Unconditional, so that `--timeout -1s` reaches the check below instead of reading as a flag.
    @Option(parsing: .unconditional, help: "How long to wait for the reply (more than zero), e.g. 2s, 500ms, 1m.")
    var timeout: String = "5s"

    @Option(help: "Body codec: json, plain, protobuf, form, or a single character id.")
    var codec: String = "json"

    @Option(help: "Transfer filter id to apply (g = gzip, m = md5); repeat for more.")
    var filter: [String] = []

    @Option(help: "Output: text (readable lines) or json (one object, for scripts).")
    var output: OutputFormat = .text

    @Flag(help: "Send a PUSH instead of a CALL.")
    var push = false

    @Option(help: "WebSocket sub-protocol of a ws:// or wss:// server: json or pb (protobuf); it must match the server's.")
    var wsProto: WebSocketSubprotocolOption?

    @OptionGroup(title: "TLS") var tls: TLSOptions

    @OptionGroup var auth: AuthOptions

    @OptionGroup var etcd: EtcdOptions

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        if target == nil && etcd.urls.isEmpty {
            throw ValidationError(
                "address must be HOST:PORT, unix:PATH, ws://HOST:PORT/PATH or wss://HOST:PORT/PATH (or a service name with --etcd), got \(address)")
        }
        if wsProto != nil, let target, !target.isWebSocket {
            throw ValidationError("--ws-proto applies to ws:// and wss:// addresses, not to \(address)")
        }
        if body != nil && data != nil {
            throw ValidationError("give the body as an argument or with -d, not both")
        }
        if let path = data?.filePath, path != "-", !FileManager.default.isReadableFile(atPath: path) {
            throw ValidationError("-d @\(path): no readable file at \(path)")
        }
        _ = try callOptions()
        _ = try tls.clientConfiguration(required: target?.requiresTLS ?? false)
    }

    /// The server named by the address argument; nil for a service name.
    private var target: CallTarget? {
        CallTarget(address)
    }

    func run() async throws {
        logging.bootstrap()
        do {
            try await callAndReport()
        } catch let failure as CallFailure {
            FileHandle.standardError.write(Data("Error: \(failure)\n".utf8))
            throw ExitCode(2)
        }
    }

    private func callAndReport() async throws {
        let options = try callOptions()
        let body = try bodyBytes()
        let answering = AnsweringNode(route: route)
        let logger = Logger(label: "ferry.call")
        let peer = FerryPeer(
            configuration: .init(
                dialTimeout: options.timeout ?? .seconds(5), webSocket: .init(subprotocol: (wsProto ?? .json).subprotocol),
                auth: auth.dialling, hooks: .init(beforeWrite: answering.hook)),
            logger: logger)
        try await closing(peer.close) {
            if let target {
                let tlsConfiguration = try tls.clientConfiguration(required: target.requiresTLS)
                let node = CallReport.Node(address: target.address.displayed(tls: tlsConfiguration != nil))
                let session: FerrySession
                do {
                    session = try await peer.dial(target.address, tls: tlsConfiguration, serverHostname: tls.serverName)
                } catch let status as FerryStatus {
                    let report = CallReport(route: route, failure: status, node: node)
                    print(output == .json ? report.json : "dial failed: \(status.explained)")
                    throw ExitCode(2)
                }
                try await closing(session.close) {
                    try await send(body, through: session, options: options) { node }
                }
            } else {
                let registry = try await reachableRegistry(timeout: options.timeout ?? .seconds(5), logger: logger)
                let configuration = FerryClient.Configuration(tls: try tls.clientConfiguration(), tlsServerHostname: tls.serverName)
                try await withFerryClient(service: address, registry: registry, peer: peer, configuration: configuration) { client in
                    try await send(body, through: client, options: options) {
                        answering.current.map { .init(address: $0, service: address) }
                    }
                }
            }
        }
    }

    /// Sends the body, prints the outcome, and exits 1 when it is not OK. `node` tells which node
    /// answered, once it did.
    private func send(
        _ body: ByteBuffer, through caller: some RawCaller, options: FerryCallOptions, node: () -> CallReport.Node?
    ) async throws {
        let codec = options.codec ?? .json
        let report: CallReport
        do {
            if push {
                try await caller.rawPush(route, body: body, codec: codec, options: options)
                report = CallReport(route: route, pushedTo: node())
            } else {
                report = CallReport(route: route, reply: try await caller.rawCall(route, body: body, codec: codec, options: options), node: node())
            }
        } catch let status as FerryStatus {
            report = CallReport(route: route, failure: target?.isWebSocket == true ? status.explainedOverWebSocket : status, node: node())
        }
        print(output == .json ? report.json : report.text(showsNode: target == nil))
        if report.status.code != 0 { throw ExitCode(1) }
    }

    /// The etcd registry, after checking that etcd answers and knows a node of the service: a
    /// client would otherwise wait for a node list until the timeout and blame the timeout.
    private func reachableRegistry(timeout: Duration, logger: Logger) async throws -> FerryEtcdRegistry {
        let registry = etcd.registry(logger: logger, requestTimeout: timeout)!
        let place = "etcd at \(etcd.urls.joined(separator: ", "))"
        let nodes: [FerryNode]
        do {
            nodes = try await registry.nodes(service: address)
        } catch FerryEtcdError.unreachable(let failures) {
            throw CallFailure("\(place) is unreachable: \(failures.joined(separator: "; ").balancingErrnoBrackets)")
        } catch {
            throw CallFailure("\(place) could not list the nodes of \(address): \(String(describing: error).balancingErrnoBrackets)")
        }
        if nodes.isEmpty { throw CallFailure("no node of service \(address) is registered in \(place)") }
        return registry
    }

    /// The call options the flags ask for.
    private func callOptions() throws -> FerryCallOptions {
        var options = FerryCallOptions(timeout: try durationOption(timeout, named: "--timeout"), codec: try resolveCodec(codec))
        for pair in meta {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            options.meta.add(String(parts[0]), parts.count > 1 ? String(parts[1]) : "")
        }
        for id in filter {
            guard id.unicodeScalars.count == 1, let scalar = id.unicodeScalars.first, scalar.isASCII else {
                throw ValidationError("--filter takes a one-character id, got \(id)")
            }
            options.filters.append(FerryFilterID(scalar))
        }
        return options
    }

    /// The body: the argument, or what -d gives (text, a file's bytes, or standard input).
    private func bodyBytes() throws -> ByteBuffer {
        guard let data else { return ByteBuffer(string: body ?? "") }
        guard let path = data.filePath else { return ByteBuffer(string: data) }
        if path == "-" { return ByteBuffer(bytes: try FileHandle.standardInput.readToEnd() ?? Data()) }
        do {
            return ByteBuffer(bytes: try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw CallFailure("-d @\(path): cannot read \(path): \(error.localizedDescription)")
        }
    }

    private func resolveCodec(_ text: String) throws -> FerryCodecID {
        if let codec = FerryCodecRegistry.standard.codec(named: text) { return codec.id }
        if text.unicodeScalars.count == 1, let scalar = text.unicodeScalars.first, scalar.isASCII {
            return FerryCodecID(scalar)
        }
        throw ValidationError("unknown codec \(text)")
    }
}

/// A reason `ferry call` could not make the call at all; it exits 2.
struct CallFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}

extension String {
    /// The path of a curl-style `@path` body (`-` for standard input), nil for a literal body.
    fileprivate var filePath: String? {
        hasPrefix("@") ? String(dropFirst()) : nil
    }
}
