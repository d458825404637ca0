import Hummingbird
import NIOCore

/// The request context of HTTP in: Hummingbird's core storage and the connection's remote
/// address, for `X-Real-IP`.
struct GatewayRequestContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
    }
}
