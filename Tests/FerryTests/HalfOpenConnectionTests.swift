import Foundation
import Testing

@testable import Ferry

#if canImport(Glibc)
import Glibc
#endif

extension MachineLoadTests {
    @Suite("Half-open connections")
    struct HalfOpenConnectionTests {
        /// Opens a plain TCP connection to 127.0.0.1:`port`; returns the descriptor.
        private func rawConnect(port: Int) throws -> CInt {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw POSIXError(.EMFILE) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            let connected = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            guard connected else {
                close(fd)
                throw POSIXError(.ECONNREFUSED)
            }
            return fd
        }

        @Test("thousands of half-open connections are closed by the read and idle timeouts while a real session keeps working")
        func thousandsOfHalfOpenConnections() async throws {
            let (server, listener) = try await makeServer(.init(idleTimeout: .seconds(4), readTimeout: .milliseconds(300)))
            guard case .tcp(_, let port) = listener.address else { Issue.record("expected a TCP listener"); return }
            // The real client pings, so the idle timeout never takes its session. A ping that cannot
            // be written within its interval closes the session, so the interval leaves room for a
            // machine busy with the flood.
            let client = FerryPeer(configuration: .init(heartbeat: .init(pingInterval: .seconds(1))), logger: quietLogger())
            let session = try await client.dial(listener.address)

            // Half send the start of a frame header and stall; half send nothing at all.
            var descriptors: [CInt] = []
            defer { for fd in descriptors { close(fd) } }
            for index in 0..<2000 {
                let fd = try rawConnect(port: port)
                descriptors.append(fd)
                if index % 2 == 0 {
                    let partial: [UInt8] = [0, 0, 1]
                    _ = partial.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
                }
                if index % 250 == 0 {
                    // The real session is served in the middle of the flood.
                    let sum: Int = try await session.call("/math/add", AddArgs(a: index, b: 1), options: .timeout(.seconds(5)))
                    #expect(sum == index + 1)
                }
            }
            #expect(await eventually(timeout: .seconds(5)) { server.connectionCount > 1000 }, "the server accepted the flood")

            // The stalled frames go after the read timeout, the silent ones after the idle timeout;
            // the real session, which keeps calling, stays.
            let cleared = await eventually(timeout: .seconds(20)) {
                _ = try? await session.call("/echo", "ping", as: String.self)
                return server.connectionCount == 1
            }
            #expect(cleared, "half-open connections left: \(server.connectionCount - 1)")
            let echoed: String = try await session.call("/echo", "still here")
            #expect(echoed == "still here")
            await client.close()
            await server.close()
        }
    }
}
