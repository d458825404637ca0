import FerryTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The tests that run a real etcd. Each starts its own etcd, whose timing (elections, lease
/// expiry) needs the machine's cores, so they run one at a time, in parallel with every other test.
@Suite("A real etcd", .serialized, .enabled(if: EtcdProcess.isInstalled, "etcd is not installed (apt-get install etcd-server)"))
struct RealEtcdTests {}

/// A real etcd server on free loopback ports with a temporary data directory.
final class EtcdProcess: @unchecked Sendable {
    // Mutated only by start/stop, which tests call sequentially.
    private var process: Process?
    private(set) var clientPort: Int
    private(set) var peerPort: Int
    /// Whether etcd has answered on these ports once (a restart must keep them).
    private var hasAnswered = false
    let directory: URL

    /// Where etcd is installed, if it is: the first `etcd` on the `PATH`, else the places
    /// packages install it.
    static let executable: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let onPath = path.split(separator: ":").map { "\($0)/etcd" }
        return (onPath + ["/usr/bin/etcd", "/usr/local/bin/etcd"]).first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    /// Whether the etcd tests can run here.
    static var isInstalled: Bool { executable != nil }

    var endpoint: String { "http://127.0.0.1:\(clientPort)" }

    init() throws {
        clientPort = try Self.freePort()
        peerPort = try Self.freePort()
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ferry-etcd-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// Starts etcd (again, on the same ports and data) and waits until it answers. A first start
    /// whose etcd exits at once (another test took one of its ports between their choice and
    /// etcd's bind) tries again on fresh ports.
    func start() async throws {
        for _ in 0..<5 {
            switch try await launch() {
            case .answering:
                hasAnswered = true
                return
            case .exited where !hasAnswered:
                // Nothing was stored yet; a data directory made for the old ports would refuse the new ones.
                try? FileManager.default.removeItem(at: directory.appendingPathComponent("data"))
                clientPort = try Self.freePort()
                peerPort = try Self.freePort()
            case .exited, .silent:
                throw EtcdStartFailure()
            }
        }
        throw EtcdStartFailure()
    }

    private enum Launch { case answering, exited, silent }

    private func launch() async throws -> Launch {
        let executable = try #require(Self.executable)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        let peer = "http://127.0.0.1:\(peerPort)"
        process.arguments = [
            "--name", "ferry-test", "--data-dir", directory.appendingPathComponent("data").path,
            "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "ferry-test=\(peer)", "--log-level", "error",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if Self.answers(port: clientPort) { return .answering }
            if !process.isRunning {
                self.process = nil
                return .exited
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        return .silent
    }

    /// Stops etcd (SIGKILL when `abruptly`), keeping its data for a restart.
    func stop(abruptly: Bool = false) {
        guard let process else { return }
        kill(process.processIdentifier, abruptly ? SIGKILL : SIGTERM)
        process.waitUntilExit()
        self.process = nil
    }

    /// Stops etcd and removes its data.
    func remove() {
        stop(abruptly: true)
        try? FileManager.default.removeItem(at: directory)
    }

    struct EtcdStartFailure: Error {}

    private static func answers(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        guard connected else { return false }
        // Connected is not ready: ask for the health endpoint, and read the whole answer (the
        // server closes an HTTP/1.0 connection after it; headers and body may come apart).
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = "GET /health HTTP/1.0\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var response: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 512)
        while response.count < 8192 {
            let count = recv(fd, &buffer, buffer.count, 0)
            if count <= 0 { break }
            response += buffer.prefix(count)
        }
        return String(decoding: response, as: UTF8.self).contains("\"health\":\"true\"")
    }

    static func freePort() throws -> Int { try freeLoopbackPort() }
}
