import Foundation
import Testing

@testable import Ferry

#if canImport(Glibc)
import Glibc
#endif

@Suite("Accept errors")
struct AcceptBackoffTests {
    /// CPU seconds (user + system) a process has used so far.
    private func cpuSeconds(of pid: pid_t) -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state is field 3; utime and stime are fields 14 and 15.
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    private func rawConnect(port: Int) -> CInt? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        if connected { return fd }
        close(fd)
        return nil
    }

    @Test("a server out of file descriptors backs off instead of spinning, and serves again once they are freed",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit"), "needs prlimit (util-linux)"))
    func outOfDescriptors() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: ServerProcess.executable.path), "build the ferry executable first (swift build)")
        let port = try ServerProcess.freePort()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/prlimit")
        process.arguments = ["--nofile=48:48", ServerProcess.executable.path, "serve", "--listen", "127.0.0.1:\(port)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        let client = FerryPeer(configuration: .init(dialTimeout: .seconds(2)), logger: quietLogger())
        let address = FerryAddress.tcp(host: "127.0.0.1", port: port)
        var ready = false
        for _ in 0..<100 where !ready {
            if let session = try? await client.dial(address) {
                ready = (try? await session.call("/echo", "x", as: String.self, options: FerryCallOptions(codec: .plain))) == "x"
                await session.close()
            } else {
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        try #require(ready, "the server came up")

        // More connections than the server has descriptors: accepting fails with EMFILE.
        var flood: [CInt] = []
        defer { for fd in flood { close(fd) } }
        for _ in 0..<120 { if let fd = rawConnect(port: port) { flood.append(fd) } }
        try await Task.sleep(for: .milliseconds(500))
        let before = try #require(cpuSeconds(of: process.processIdentifier))
        try await Task.sleep(for: .seconds(2))
        let after = try #require(cpuSeconds(of: process.processIdentifier))
        // A busy accept loop would burn most of a core for the whole two seconds.
        #expect(after - before < 0.5, "the server used \(after - before) s of CPU in 2 s while out of descriptors")

        for fd in flood { close(fd) }
        flood = []
        var served = false
        let deadline = ContinuousClock.now + .seconds(10)
        while !served && ContinuousClock.now < deadline {
            if let session = try? await client.dial(address) {
                served = (try? await session.call("/echo", "back", as: String.self, options: FerryCallOptions(timeout: .seconds(2), codec: .plain))) == "back"
                await session.close()
            }
            if !served { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(served, "the server accepts and serves again once descriptors are free")
        await client.close()
    }
}
