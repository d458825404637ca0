import ArgumentParser
import NIOSSL

/// The TLS options of `call` (dialling) and `serve` (listening).
struct TLSOptions: ParsableArguments {
    @Flag(help: "Use TLS. Any other --tls-… option or --server-name implies it.")
    var tls = false

    @Option(help: ArgumentHelp(
        "PEM file of the certificate authority to trust instead of the system's. With serve: clients must present a certificate it signed.",
        valueName: "file"))
    var tlsCa: String?

    @Option(help: ArgumentHelp("PEM certificate chain of this side: the server's (serve), or the client's for mutual TLS (call).", valueName: "file"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("PEM private key of --tls-cert.", valueName: "file"))
    var tlsKey: String?

    @Option(help: "The name the server's certificate must carry (call only); by default the host of the address, or its IP address.")
    var serverName: String?

    /// Whether TLS is on.
    var isEnabled: Bool { tls || tlsCa != nil || tlsCert != nil || tlsKey != nil || serverName != nil }

    func validate() throws {
        if (tlsCert == nil) != (tlsKey == nil) {
            throw ValidationError("--tls-cert and --tls-key go together")
        }
    }

    /// The configuration to dial with, or nil without TLS. `required` turns TLS on without any
    /// option (a `wss://` address), trusting the system's authorities unless `--tls-ca` says.
    func clientConfiguration(required: Bool = false) throws -> TLSConfiguration? {
        guard isEnabled || required else { return nil }
        var configuration = TLSConfiguration.makeClientConfiguration()
        if let tlsCa {
            configuration.trustRoots = .certificates(try certificates(tlsCa, option: "--tls-ca"))
        }
        if let tlsCert, let tlsKey {
            configuration.certificateChain = try certificates(tlsCert, option: "--tls-cert").map { .certificate($0) }
            configuration.privateKey = .privateKey(try privateKey(tlsKey))
        }
        return configuration
    }

    /// The configuration to listen with, or nil without TLS. With `--tls-ca`, clients must
    /// present a certificate that authority signed (mutual TLS).
    func serverConfiguration() throws -> TLSConfiguration? {
        guard isEnabled else { return nil }
        if serverName != nil {
            throw ValidationError("--server-name names the server to expect when calling; serve does not use it")
        }
        guard let tlsCert, let tlsKey else {
            throw ValidationError("serving with TLS needs --tls-cert and --tls-key")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try certificates(tlsCert, option: "--tls-cert").map { .certificate($0) },
            privateKey: .privateKey(try privateKey(tlsKey)))
        if let tlsCa {
            configuration.trustRoots = .certificates(try certificates(tlsCa, option: "--tls-ca"))
            configuration.certificateVerification = .noHostnameVerification
        }
        return configuration
    }

    private func certificates(_ path: String, option: String) throws -> [NIOSSLCertificate] {
        let loaded: [NIOSSLCertificate]
        do {
            loaded = try NIOSSLCertificate.fromPEMFile(path)
        } catch {
            throw ValidationError("\(option): cannot read PEM certificates from \(path): \(error)")
        }
        guard !loaded.isEmpty else { throw ValidationError("\(option): no PEM certificate in \(path)") }
        return loaded
    }

    private func privateKey(_ path: String) throws -> NIOSSLPrivateKey {
        do {
            return try NIOSSLPrivateKey(file: path, format: .pem)
        } catch {
            throw ValidationError("--tls-key: cannot read a PEM private key from \(path): \(error)")
        }
    }
}
