import Foundation
import NIOSSL

/// A throw-away PKI made with the `openssl` command line: a CA, a server certificate for
/// 127.0.0.1 and localhost, a client certificate signed by the CA, and a client certificate
/// signed by an unrelated CA.
public struct TestCertificates: Sendable {
    /// Where the PEM files are.
    public let directory: TemporaryDirectory

    /// Generates the certificates into a new temporary directory.
    public init() throws {
        directory = try TemporaryDirectory()
        do {
            try generate()
        } catch {
            directory.remove()
            throw error
        }
    }

    /// Generates the certificates on a thread of their own (openssl runs for a while).
    public static func generate() async throws -> TestCertificates {
        try await onOwnThread { try TestCertificates() }
    }

    /// Deletes the files.
    public func remove() { directory.remove() }

    /// A server configuration with the server certificate; optionally requiring a client
    /// certificate signed by the CA.
    public func serverConfiguration(requireClientCertificate: Bool) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(directory.path("server.pem")).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: directory.path("server.key"), format: .pem)))
        if requireClientCertificate {
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(directory.path("ca.pem")))
        }
        return configuration
    }

    /// A client configuration trusting the CA; optionally with the client certificate, or
    /// (`rogue`) one signed by the unrelated CA.
    public func clientConfiguration(withCertificate: Bool, rogue: Bool = false) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(directory.path("ca.pem")))
        if withCertificate {
            let name = rogue ? "rogue-client" : "client"
            configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(directory.path("\(name).pem")).map { .certificate($0) }
            configuration.privateKey = .privateKey(try NIOSSLPrivateKey(file: directory.path("\(name).key"), format: .pem))
        }
        return configuration
    }

    private func generate() throws {
        try write("ca.cnf", Self.config(commonName: "Ferry Test CA", section: "v3_ca", extensions: """
            basicConstraints = critical, CA:TRUE
            keyUsage = critical, keyCertSign, cRLSign
            subjectKeyIdentifier = hash
            """))
        try write("rogue-ca.cnf", Self.config(commonName: "Ferry Rogue CA", section: "v3_ca", extensions: """
            basicConstraints = critical, CA:TRUE
            keyUsage = critical, keyCertSign, cRLSign
            subjectKeyIdentifier = hash
            """))
        try write("server.cnf", Self.config(commonName: "localhost", section: "v3_leaf", extensions: """
            basicConstraints = CA:FALSE
            keyUsage = critical, digitalSignature
            extendedKeyUsage = serverAuth
            subjectAltName = IP:127.0.0.1, DNS:localhost
            """))
        try write("client.cnf", Self.config(commonName: "ferry-client", section: "v3_leaf", extensions: """
            basicConstraints = CA:FALSE
            keyUsage = critical, digitalSignature
            extendedKeyUsage = clientAuth
            """))

        for ca in ["ca", "rogue-ca"] {
            try openssl([
                "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "\(ca).key", "-out", "\(ca).pem", "-days", "2", "-config", "\(ca).cnf", "-extensions", "v3_ca",
            ])
        }
        let leaves = [("server", "server.cnf", "ca", "2"), ("client", "client.cnf", "ca", "3"), ("rogue-client", "client.cnf", "rogue-ca", "4")]
        for (name, config, ca, serial) in leaves {
            try openssl([
                "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", "\(name).key", "-out", "\(name).csr", "-config", config,
            ])
            try openssl([
                "x509", "-req", "-in", "\(name).csr", "-CA", "\(ca).pem", "-CAkey", "\(ca).key", "-set_serial", serial,
                "-out", "\(name).pem", "-days", "2", "-extfile", config, "-extensions", "v3_leaf",
            ])
        }
    }

    private static func config(commonName: String, section: String, extensions: String) -> String {
        """
        [req]
        distinguished_name = dn
        prompt = no
        [dn]
        CN = \(commonName)
        [\(section)]
        \(extensions)

        """
    }

    private func write(_ name: String, _ text: String) throws {
        try text.write(toFile: directory.path(name), atomically: true, encoding: .utf8)
    }

    private func openssl(_ arguments: [String]) throws {
        let (status, output) = try runToEnd(["/usr/bin/env", "openssl"] + arguments, in: directory.url)
        guard status == 0 else {
            throw CertificateError(command: "openssl " + arguments.joined(separator: " "), output: output)
        }
    }

    /// `openssl` failed.
    public struct CertificateError: Error, CustomStringConvertible {
        var command: String
        var output: String
        public var description: String { "\(command) failed: \(output)" }
    }
}
