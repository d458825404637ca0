import Ferry
import FerryTestSupport
import Foundation
import NIOCore
import NIOSSL
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

@Suite("Transports")
struct TransportTests {
    @Test("call and push work in both directions over TCP IPv4")
    func tcpIPv4() async throws {
        try await exerciseBothDirections(listenOn: .tcp(host: "127.0.0.1", port: 0))
    }

    @Test(
        "call and push work in both directions over TCP IPv6 (::1)",
        .enabled(if: canBindIPv6Loopback(), "skipped: this machine cannot bind the IPv6 loopback address ::1")
    )
    func tcpIPv6() async throws {
        let remoteID = try await exerciseBothDirections(listenOn: .tcp(host: "::1", port: 0))
        #expect(remoteID.hasPrefix("[::1]:"), "accepted IPv6 sessions are named [::1]:port, got \(remoteID)")
    }

    @Test("call and push work in both directions over a Unix domain socket")
    func unixDomainSocket() async throws {
        let directory = try TemporaryDirectory()
        defer { directory.remove() }
        let remoteID = try await exerciseBothDirections(listenOn: .unix(path: directory.path("ferry.sock")))
        #expect(remoteID.hasPrefix("unix:"))
    }

    @Test("call and push work in both directions over TLS")
    func tls() async throws {
        let certificates = try await TestCertificates.generate()
        defer { certificates.remove() }
        try await exerciseBothDirections(
            listenOn: .tcp(host: "127.0.0.1", port: 0),
            serverTLS: try certificates.serverConfiguration(requireClientCertificate: false),
            clientTLS: try certificates.clientConfiguration(withCertificate: false))
    }

    @Test("TLS with required client certificates: a CA-signed client certificate is accepted")
    func mutualTLSAccepted() async throws {
        let certificates = try await TestCertificates.generate()
        defer { certificates.remove() }
        try await exerciseBothDirections(
            listenOn: .tcp(host: "127.0.0.1", port: 0),
            serverTLS: try certificates.serverConfiguration(requireClientCertificate: true),
            clientTLS: try certificates.clientConfiguration(withCertificate: true))
    }

    @Test("TLS with required client certificates: clients without one, or with one from another CA, cannot call")
    func mutualTLSRefused() async throws {
        let certificates = try await TestCertificates.generate()
        defer { certificates.remove() }
        let server = FerryPeer()
        addStandardRoutes(server.router)
        let handled = Recorder<Int>()
        server.router.call("/count") { (_: Void, _: FerryContext) in handled.append(1) }
        let listener = try await server.listen(
            .tcp(host: "127.0.0.1", port: 0), tls: try certificates.serverConfiguration(requireClientCertificate: true))

        let refusedConfigurations = [
            ("no client certificate", try certificates.clientConfiguration(withCertificate: false)),
            ("a certificate from another CA", try certificates.clientConfiguration(withCertificate: true, rogue: true)),
        ]
        for (name, configuration) in refusedConfigurations {
            let client = FerryPeer()
            let status = await statusThrown {
                let session = try await client.dial(listener.address, tls: configuration)
                try await session.call("/count", (), as: Void.self, options: .timeout(.seconds(5)))
            }
            #expect(status?.isConnectionError == true, "a client with \(name) must not get through; got \(String(describing: status))")
            await client.close()
        }
        #expect(handled.count == 0, "no handler may run for a client the server refused")

        // The server keeps serving properly authenticated clients.
        let client = FerryPeer()
        let session = try await client.dial(listener.address, tls: try certificates.clientConfiguration(withCertificate: true))
        #expect(try await session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) == 3)
        await client.close()
        await server.close()
    }

    // MARK: Helpers

    /// Runs a server on `address` and a client, and checks call and push from the client to the
    /// server and from the server back to the client on the accepted session. Returns the ID
    /// the server gave the accepted session.
    @discardableResult
    private func exerciseBothDirections(
        listenOn address: FerryAddress, serverTLS: TLSConfiguration? = nil, clientTLS: TLSConfiguration? = nil,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> String {
        let server = FerryPeer()
        addStandardRoutes(server.router)
        let serverGotPush = Signal<String>()
        server.router.push("/server/note") { (text: String, _: FerryContext) in serverGotPush.fulfil(text) }

        let client = FerryPeer()
        let clientGotPush = Signal<String>()
        client.router.call("/client/greet") { (name: String, _: FerryContext) in "hello \(name)" }
        client.router.push("/client/note") { (text: String, _: FerryContext) in clientGotPush.fulfil(text) }

        let listener = try await server.listen(address, tls: serverTLS)
        do {
            let session = try await client.dial(listener.address, tls: clientTLS)

            // Client to server.
            let sum = try await session.call("/math/add", AddArgs(a: 2, b: 3), as: Int.self, options: .timeout(.seconds(5)))
            #expect(sum == 5, sourceLocation: sourceLocation)
            try await session.push("/server/note", "from the client")
            #expect(await serverGotPush.wait(timeout: .seconds(5)) == "from the client", sourceLocation: sourceLocation)

            // Server to client, on the accepted session.
            #expect(await eventually { server.hub.count == 1 }, sourceLocation: sourceLocation)
            let accepted = try #require(server.hub.all.first, sourceLocation: sourceLocation)
            let greeting = try await accepted.call("/client/greet", "server", as: String.self, options: .timeout(.seconds(5)))
            #expect(greeting == "hello server", sourceLocation: sourceLocation)
            try await accepted.push("/client/note", "from the server")
            #expect(await clientGotPush.wait(timeout: .seconds(5)) == "from the server", sourceLocation: sourceLocation)

            let acceptedID = accepted.id
            await client.close()
            await server.close()
            return acceptedID
        } catch {
            await client.close()
            await server.close()
            throw error
        }
    }
}

/// Whether a TCP socket can be bound to `::1` on this machine.
func canBindIPv6Loopback() -> Bool {
    #if os(Linux)
    let fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
    #else
    let fd = socket(AF_INET6, SOCK_STREAM, 0)
    #endif
    guard fd >= 0 else { return false }
    defer { _ = close(fd) }
    var address = sockaddr_in6()
    address.sin6_family = sa_family_t(AF_INET6)
    address.sin6_addr = in6addr_loopback
    address.sin6_port = 0
    return withUnsafePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) == 0
        }
    }
}
