import ArgumentParser
import Ferry
import FerryEtcd
import Logging
import NIOCore

struct CallCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "call",
        abstract: "Call a route on any Ferry or erpc server and print the reply.",
        discussion: """
            Example: ferry call 127.0.0.1:9090 /math/add '{"a":1,"b":2}' --meta k=v --timeout 2s
            The body is sent as given, with the chosen codec id. Exits 1 when the reply status is \
            not OK.
            """
    )

    @Argument(help: "The server (HOST:PORT, [IPv6]:PORT or unix:PATH), or a service name with --etcd.")
    var address: String

    @Argument(help: "The route, e.g. /math/add.")
    var route: String

    @Argument(help: "The body, sent as is.")
    var body: String = ""

    @Option(help: "Meta pair KEY=VALUE; repeat for more.")
    var meta: [String] = []

    @Option(help: "How long to wait for the reply, e.g. 2s, 500ms, 1m.")
    var timeout: String = "5s"

    @Option(help: "Body codec: json, plain, protobuf, form, or a single character id.")
    var codec: String = "json"

    @Option(help: "Transfer filter id to apply (g = gzip, m = md5); repeat for more.")
    var filter: [String] = []

    @Flag(help: "Send a PUSH instead of a CALL.")
    var push = false

    @OptionGroup var etcd: EtcdOptions

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        logging.bootstrap()
        let target = FerryAddress(address)
        if target == nil && etcd.endpoints.isEmpty {
            throw ValidationError("address must be HOST:PORT or unix:PATH (or a service name with --etcd), got \(address)")
        }
        guard let timeout = parseDuration(timeout) else {
            throw ValidationError("--timeout must look like 2s, 500ms or 1m, got \(self.timeout)")
        }
        let codecID = try resolveCodec(codec)
        var options = FerryCallOptions(timeout: timeout, codec: codecID)
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

        let logger = Logger(label: "ferry.call")
        let peer = FerryPeer(configuration: .init(dialTimeout: timeout), logger: logger)
        try await closing(peer.close) {
            if let target {
                let session: FerrySession
                do {
                    session = try await peer.dial(target)
                } catch {
                    print("dial failed: \(error)")
                    throw ExitCode(2)
                }
                try await closing(session.close) { try await send(through: session, codec: codecID, options: options) }
            } else {
                let registry = etcd.registry(logger: logger)!
                try await withFerryClient(service: address, registry: registry, peer: peer) { client in
                    try await send(through: client, codec: codecID, options: options)
                }
            }
        }
    }

    /// Sends the body and prints the reply; exits 1 when it is not OK.
    private func send(through caller: some RawCaller, codec codecID: FerryCodecID, options: FerryCallOptions) async throws {
        let body = ByteBuffer(string: self.body)
        do {
            if push {
                try await caller.rawPush(route, body: body, codec: codecID, options: options)
                print("pushed \(route)")
                return
            }
            let reply = try await caller.rawCall(route, body: body, codec: codecID, options: options)
            print(render(reply))
            if !reply.status.isOK { throw ExitCode(1) }
        } catch let status as FerryStatus {
            print("status: \(status)")
            throw ExitCode(1)
        }
    }

    private func resolveCodec(_ text: String) throws -> FerryCodecID {
        if let codec = FerryCodecRegistry.standard.codec(named: text) { return codec.id }
        if text.unicodeScalars.count == 1, let scalar = text.unicodeScalars.first, scalar.isASCII {
            return FerryCodecID(scalar)
        }
        throw ValidationError("unknown codec \(text)")
    }

    private func render(_ reply: FerryReply) -> String {
        var lines = ["status: \(reply.status.isOK ? "OK" : reply.status.description)"]
        lines.append("meta: \(reply.meta.isEmpty ? "(none)" : reply.meta.map { "\($0.key)=\($0.value)" }.joined(separator: "&"))")
        lines.append("codec: \(reply.bodyCodec)")
        let bytes = reply.body.readableBytesView
        if let text = String(validating: bytes, as: UTF8.self) {
            lines.append("body: \(text)")
        } else {
            lines.append("body (hex): \(bytes.map { String($0, radix: 16).leftPadded(to: 2) }.joined(separator: " "))")
        }
        lines.append("cost: \(millisecondsText(reply.cost))")
        return lines.joined(separator: "\n")
    }
}

/// Something `ferry call` can send a raw body through: a session or a service client.
protocol RawCaller: Sendable {
    func rawCall(_ route: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws -> FerryReply
    func rawPush(_ route: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws
}

extension FerrySession: RawCaller {
    func rawCall(_ route: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws -> FerryReply {
        try await call(route, body: body, codec: codec, options: options)
    }
    func rawPush(_ route: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws {
        try await push(route, body: body, codec: codec, options: options)
    }
}

/// Runs `body`, then awaits `close` whether `body` returned or threw.
func closing<Result>(_ close: () async -> Void, _ body: () async throws -> Result) async throws -> Result {
    let outcome: Swift.Result<Result, any Error>
    do {
        outcome = .success(try await body())
    } catch {
        outcome = .failure(error)
    }
    await close()
    return try outcome.get()
}

extension FerryClient: RawCaller {
    func rawCall(_ route: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws -> FerryReply {
        var options = options
        options.codec = codec
        return try await callForReply(route, body, options: options)
    }
    func rawPush(_ route: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws {
        var options = options
        options.codec = codec
        try await push(route, body, options: options)
    }
}

/// Parses `2s`, `500ms`, `1.5s`, `1m`, `100us`.
func parseDuration(_ text: String) -> Duration? {
    let units: [(String, Double)] = [("ms", 1e-3), ("us", 1e-6), ("s", 1), ("m", 60)]
    for (suffix, scale) in units where text.hasSuffix(suffix) {
        guard let value = Double(text.dropLast(suffix.count)), value >= 0 else { return nil }
        return .nanoseconds(Int64(value * scale * 1e9))
    }
    return nil
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
