import Ferry
import FerryGateway
import FerryMicro
import FerryTestSupport
import Synchronization
import Testing

/// Arguments of the backend's `/math/add`.
struct Add: Codable, Sendable {
    var a: Int
    var b: Int
}

/// A service behind the gateway, on 127.0.0.1 (port 0):
/// - `/math/add` adds; `/math/pair` answers its arguments back;
/// - `/echo/meta` answers the call's meta as `[key: [values]]`;
/// - `/fail/status` throws the status whose code is its argument;
/// - `/slow/never` answers only when the service closes;
/// - `/slow/gate` answers `"opened"` once ``openGate()`` is called;
/// - PUSH `/chat/say` records the text and the meta it came with.
final class Backend: Sendable {
    let peer: FerryPeer
    let listener: FerryListener
    /// Pushes received: (text, meta).
    let pushes = Recorded<(String, FerryMeta)>()
    /// Holds `/slow/gate` calls until opened.
    private let gate = Gate()
    /// Holds `/slow/never` calls until the service closes.
    private let closing = Gate()
    /// How many calls of `/slow/gate` have arrived.
    let gateArrivals = Recorded<Int>()

    init() async throws {
        peer = FerryPeer(logger: quietLogger())
        peer.router.call("/math/add") { (args: Add, _: FerryContext) in args.a + args.b }
        peer.router.call("/math/pair") { (args: Add, _: FerryContext) in args }
        peer.router.call("/echo/meta") { (_: Void, context: FerryContext) -> [String: [String]] in
            var meta: [String: [String]] = [:]
            for (key, value) in context.meta { meta[key, default: []].append(value) }
            return meta
        }
        peer.router.call("/fail/status") { (code: Int32, _: FerryContext) -> Int in
            throw FerryStatus(code: code, message: "Told To Fail", cause: "code \(code)")
        }
        peer.router.call("/slow/never") { [closing] (_: Void, _: FerryContext) async -> Int in
            await closing.pass()
            return 0
        }
        let pushes = self.pushes
        peer.router.call("/slow/gate") { [gate, gateArrivals] (_: Void, _: FerryContext) async -> String in
            gateArrivals.append(1)
            await gate.pass()
            return "opened"
        }
        peer.router.push("/chat/say") { (text: String, context: FerryContext) in
            pushes.append((text, context.meta))
        }
        listener = try await peer.listen(.tcp(host: "127.0.0.1", port: 0))
    }

    /// A static registry with this service as the only node, serving every route (or the listed
    /// ones), under the service name `backend`.
    func registry(routes: [String] = []) -> FerryStaticRegistry {
        FerryStaticRegistry(nodes: [FerryNode(service: "backend", address: listener.address, routes: routes)])
    }

    /// Lets every call of `/slow/gate` answer, now and later.
    func openGate() {
        gate.open()
    }

    func close() async {
        openGate()
        closing.open()
        await peer.close()
    }
}

/// Runs a gateway in front of a fresh ``Backend`` for the duration of `body`, then cancels it
/// and waits for it to stop. With `routes`, the backend lists them and the gateway finds nodes
/// by route; without, it calls the service `backend`.
func withGateway<Result: Sendable>(
    _ configuration: FerryGateway.Configuration,
    verifier: any FerryTokenVerifier = FerryDevelopmentTokenVerifier(),
    routes: [String] = [],
    _ body: @Sendable (FerryGateway, FerryGateway.ListeningAddresses, Backend) async throws -> Result
) async throws -> Result {
    let backend = try await Backend()
    let gateway = FerryGateway(
        registry: backend.registry(routes: routes), service: routes.isEmpty ? "backend" : nil, verifier: verifier, configuration: configuration, logger: quietLogger())
    do {
        let result = try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await gateway.run() }
            defer { group.cancelAll() }
            let addresses = try await gateway.listeningAddresses()
            return try await body(gateway, addresses, backend)
        }
        await backend.close()
        return result
    } catch {
        await backend.close()
        throw error
    }
}

/// Every listener on 127.0.0.1 with a free port.
func allListeners(
    logins: FerryGateway.LoginPolicy = .single, authTimeout: Duration = .seconds(10), callTimeout: Duration = .seconds(10),
    http: FerryGateway.HTTP = FerryGateway.HTTP(port: 0)
) -> FerryGateway.Configuration {
    FerryGateway.Configuration(
        http: http,
        socket: .tcp(host: "127.0.0.1", port: 0),
        webSocket: .webSocket(host: "127.0.0.1", port: 0, path: "/ws"),
        inner: .tcp(host: "127.0.0.1", port: 0),
        authTimeout: authTimeout, logins: logins, callTimeout: callTimeout)
}

/// A peer for outside clients that authenticates with `token`.
func clientPeer(token: String) -> FerryPeer {
    var configuration = FerryPeer.Configuration()
    configuration.auth = FerryAuth(credential: { token })
    return FerryPeer(configuration: configuration, logger: quietLogger())
}

/// Values recorded by handlers, read by tests.
final class Recorded<Value: Sendable>: Sendable {
    private let values = Mutex<[Value]>([])

    func append(_ value: Value) {
        values.withLock { $0.append(value) }
    }

    var all: [Value] { values.withLock { $0 } }
}
