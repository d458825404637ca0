import Ferry
import Hummingbird

extension FerryGateway {
    /// Adds the routes browsers load from the gateway (its JavaScript client and demo page) to
    /// the HTTP router, ahead of the catch-all that proxies calls. `webSocket` is the gateway's
    /// WebSocket listener, if it has one.
    static func registerBrowserRoutes(on router: Router<GatewayRequestContext>, webSocket: FerryAddress?) {}
}
