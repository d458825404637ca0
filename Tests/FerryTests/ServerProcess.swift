import Ferry
import FerryTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A `ferry serve` process started by a test.
struct ServerProcess {
    let process: Process
    let port: Int
    let directory: TemporaryDirectory

    /// What the server processes (old and new) logged.
    var log: String { (try? String(contentsOfFile: directory.path("serve.log"), encoding: .utf8)) ?? "" }

    /// The `ferry` executable built beside the test bundle.
    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ferry")
    }

    static func start(port: Int? = nil, drainTimeout: String = "5s") throws -> ServerProcess {
        let port = try port ?? freePort()
        let process = Process()
        process.executableURL = executable
        process.arguments = ["serve", "--listen", "127.0.0.1:\(port)", "--drain-timeout", drainTimeout, "--log-level", "info"]
        let directory = try TemporaryDirectory()
        _ = FileManager.default.createFile(atPath: directory.path("serve.log"), contents: nil)
        let log = try #require(FileHandle(forWritingAtPath: directory.path("serve.log")))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        return ServerProcess(process: process, port: port, directory: directory)
    }

    /// A port nobody listens on right now.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw POSIXError(.EADDRINUSE) }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}


/// Dials `address` until a server process there accepts (at most 10 s).
func dialWhenReady(_ peer: FerryPeer, _ address: FerryAddress) async throws -> FerrySession {
    let deadline = ContinuousClock.now + .seconds(10)
    while true {
        do {
            return try await peer.dial(address)
        } catch where ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
