import Ferry
import FerryTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Listening on a Unix socket path, and listen errors")
struct UnixSocketListenTests {
    @Test("a second peer cannot take the path a live listener holds, and the first keeps serving")
    func liveListenerKeepsItsPath() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let address = FerryAddress.unix(path: directory.path("ferry.sock"))
        let (first, _) = try await makeServer(address: address)
        // No routes: had it taken the path over, the call below would get 404.
        let second = FerryPeer(logger: quietLogger())
        let error = await #expect(throws: FerryLifecycleError.self) { try await second.listen(address) }
        if let error {
            guard case .listenFailed(let reason) = error else {
                Issue.record("expected listenFailed, got \(error)")
                return
            }
            #expect(reason.contains("in use"), "\(error)")
        }
        try await expectServerStillServes(address)
        await second.close()
        await first.close()
    }

    @Test("a stale socket file (its listener gone without removing it) is replaced")
    func staleSocketReplaced() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("ferry.sock")
        try Self.leaveStaleSocket(at: path)
        let (server, _) = try await makeServer(address: .unix(path: path))
        try await expectServerStillServes(.unix(path: path))
        await server.close()
    }

    @Test("a file that is not a socket is refused and left as it was")
    func regularFileKept() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let path = directory.path("notes.txt")
        try "keep me".write(toFile: path, atomically: false, encoding: .utf8)
        let peer = FerryPeer(logger: quietLogger())
        let error = await #expect(throws: FerryLifecycleError.self) { try await peer.listen(.unix(path: path)) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("not a socket"), "\(String(describing: error))")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "keep me")
        await peer.close()
    }

    enum BadAddress: CaseIterable, CustomTestStringConvertible {
        case tcpPortInUse, unixDirectoryMissing, unixPathTooLong
        var testDescription: String { "\(self)" }
    }

    @Test("listen throws a FerryLifecycleError that says why", arguments: BadAddress.allCases)
    func listenErrors(_ bad: BadAddress) async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let (holder, holding) = try await makeServer()
        let address: FerryAddress
        switch bad {
        case .tcpPortInUse: address = holding.address
        case .unixDirectoryMissing: address = .unix(path: directory.path("missing/ferry.sock"))
        case .unixPathTooLong: address = .unix(path: directory.path(String(repeating: "s", count: 120)))
        }
        let peer = FerryPeer(logger: quietLogger())
        let error = await #expect(throws: FerryLifecycleError.self) { try await peer.listen(address) }
        if let error {
            guard case .listenFailed(let reason) = error else {
                Issue.record("expected listenFailed, got \(error)")
                return
            }
            #expect(reason.contains("\(address)"), "the reason names the address: \(reason)")
        }
        await peer.close()
        await holder.close()
    }

    /// Binds a Unix socket at `path` and closes it without removing the file, as a process that
    /// died would.
    private static func leaveStaleSocket(at path: String) throws {
        let fd = socket(AF_UNIX, CInt(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { bytes in
            for (index, byte) in path.utf8.enumerated() { bytes[index] = byte }
        }
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0)
        try #require(listen(fd, 1) == 0)
        var info = stat()
        try #require(lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFSOCK)
    }
}
