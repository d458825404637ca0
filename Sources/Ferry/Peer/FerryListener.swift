import NIOCore

/// A listening socket of a peer. Accepted connections become sessions in the peer's hub.
public final class FerryListener: Sendable {
    /// The bound address (with the real port when listening on port 0).
    public let address: FerryAddress
    let channel: any Channel

    init(address: FerryAddress, channel: any Channel) {
        self.address = address
        self.channel = channel
    }

    /// Stops accepting connections. Sessions already accepted stay open.
    public func close() async {
        try? await channel.close()
    }
}
