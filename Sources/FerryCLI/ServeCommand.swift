import ArgumentParser
import Dispatch
import Ferry
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the demo server peer until interrupted.",
        discussion: """
            Routes: CALL /echo (same body, codec and meta back), CALL /math/add ({"a":1,"b":2}), \
            CALL /fail (status 1234), CALL /slow (milliseconds to sleep), PUSH /chat/say (logged).
            """
    )

    @Option(help: "TCP address to listen on, HOST:PORT.")
    var listen: String = "127.0.0.1:9090"

    @Option(help: "Listen on this Unix domain socket path instead of TCP.")
    var unix: String?

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        logging.bootstrap()
        let address: FerryAddress
        if let unix {
            address = .unix(path: unix)
        } else {
            guard let parsed = FerryAddress(listen) else {
                throw ValidationError("--listen must be HOST:PORT, got \(listen)")
            }
            address = parsed
        }
        let peer = FerryPeer(logger: Logger(label: "ferry.serve"))
        DemoRoutes.install(on: peer.router)
        let listener = try await peer.listen(address)
        print("ferry serve: listening on \(listener.address); routes: \(peer.router.routes.map(\.description).joined(separator: ", "))")
        print("press Ctrl-C to stop")
        let signal = await waitForTerminationSignal()
        print("ferry serve: \(signal), stopping")
        await peer.close()
    }
}

/// Waits for SIGINT or SIGTERM and returns its name.
func waitForTerminationSignal() async -> String {
    await withCheckedContinuation { (continuation: CheckedContinuation<String, Never>) in
        let queue = DispatchQueue(label: "ferry.signals")
        let fired = SignalLatch(continuation)
        for (number, name) in [(SIGINT, "interrupted"), (SIGTERM, "terminated")] {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { fired.fire(name) }
            source.resume()
            fired.retain(source)
        }
    }
}

/// Resumes a continuation once, from whichever signal arrives first; keeps the sources alive.
private final class SignalLatch: @unchecked Sendable {
    // Only touched on the serial signal queue (and once during set-up before any signal fires).
    private var continuation: CheckedContinuation<String, Never>?
    private var sources: [any DispatchSourceSignal] = []

    init(_ continuation: CheckedContinuation<String, Never>) { self.continuation = continuation }

    func retain(_ source: any DispatchSourceSignal) { sources.append(source) }

    func fire(_ name: String) {
        continuation?.resume(returning: name)
        continuation = nil
    }
}
