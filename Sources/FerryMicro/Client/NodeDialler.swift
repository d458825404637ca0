import NIOSSL

/// How a client's pools dial nodes: through its peer, over TLS when the client's configuration
/// asks for it, with one TLS context for every dial.
struct NodeDialler: Sendable {
    let peer: FerryPeer
    /// The context made from ``FerryClient/Configuration/tls``, or why it could not be made;
    /// nil dials without TLS.
    private let tls: Result<NIOSSLContext, FerryStatus>?
    private let serverHostname: String?

    init(peer: FerryPeer, tls: TLSConfiguration? = nil, serverHostname: String? = nil) {
        self.peer = peer
        self.serverHostname = serverHostname
        self.tls = tls.map { configuration in
            Result {
                try NIOSSLContext(configuration: configuration)
            }.mapError { FerryStatus(.dialFailed, "Dial Failed", cause: "TLS configuration: \($0)") }
        }
    }

    func dial(_ address: FerryAddress) async throws -> FerrySession {
        switch tls {
        case nil:
            try await peer.dial(address)
        case .success(let context):
            try await peer.dial(address, sslContext: context, serverHostname: serverHostname)
        case .failure(let status):
            throw status
        }
    }
}
