import Ferry
import HTTPTypes
import Hummingbird
import NIOCore

extension FerryGateway {
    /// The path of the browser client, an ES module: `import { FerryClient } from '/ferry.js'`.
    static let browserClientPath = "/ferry.js"
    /// The path of the demo page; open it with `?token=USER`.
    static let demoPagePath = "/ferry/demo"

    /// Adds the routes browsers load from the gateway (its JavaScript client and demo page) to
    /// the HTTP router, ahead of the catch-all that proxies calls. `webSocket` is the gateway's
    /// WebSocket listener, if it has one.
    ///
    /// - `GET /ferry.js`: the client (``BrowserClientScript``), `text/javascript`.
    /// - `GET /ferry/demo`: the demo page (``DemoPage``), `text/html`, which dials the
    ///   WebSocket listener's port and path on the host the page was loaded from.
    static func registerBrowserRoutes(on router: Router<GatewayRequestContext>, webSocket: FerryAddress?) {
        let script = ByteBuffer(string: BrowserClientScript.source)
        router.get(RouterPath(browserClientPath)) { _, _ in
            staticResponse(script, contentType: "text/javascript; charset=utf-8")
        }
        let endpoint: DemoPage.WebSocketEndpoint? =
            if case .webSocket(_, let port, let path) = webSocket { DemoPage.WebSocketEndpoint(port: port, path: path) } else { nil }
        let page = ByteBuffer(string: DemoPage.html(webSocket: endpoint))
        router.get(RouterPath(demoPagePath)) { _, _ in
            staticResponse(page, contentType: "text/html; charset=utf-8")
        }
    }

    /// A `200 OK` with `body`, revalidated by browsers on each load so that a gateway upgrade
    /// reaches them at once.
    private static func staticResponse(_ body: ByteBuffer, contentType: String) -> Response {
        Response(
            status: .ok,
            headers: [.contentType: contentType, .cacheControl: "no-cache", .init("X-Content-Type-Options")!: "nosniff"],
            body: ResponseBody(byteBuffer: body))
    }
}
