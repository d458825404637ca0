import NIOCore

/// A listening socket of a peer. Accepted connections become sessions in the peer's hub.
public final class FerryListener: Sendable {
    /// The bound address (with the real port when listening on port 0).
    public let address: FerryAddress
    /// The address as it was asked for: a successor process adopts the socket by this name.
    let requestedAddress: FerryAddress
    /// The listening socket, owned by `channel`; valid until the listener closes.
    let descriptor: CInt
    let channel: any Channel

    init(address: FerryAddress, requestedAddress: FerryAddress, descriptor: CInt, channel: any Channel) {
        self.address = address
        self.requestedAddress = requestedAddress
        self.descriptor = descriptor
        self.channel = channel
    }

    /// Stops accepting connections. Sessions already accepted stay open.
    public func close() async {
        try? await channel.close()
    }
}
