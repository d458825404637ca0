import NIOCore

extension FerryPeer {
    /// The route of the health check every peer answers unless
    /// ``Configuration/servesHealthRoute`` is off: `/ferry/health`.
    ///
    /// A CALL to it is answered OK with a small body that says the peer is serving:
    /// `{"status":"serving"}` when the caller asks for JSON (its `X-Accept-Body-Codec`, else the
    /// codec of its request, else the peer's default codec), the plain text `serving` for any
    /// other codec.
    ///
    /// A load balancer or a probe tells a healthy peer from one that is not by the reply's
    /// status, never by the body:
    /// - a draining peer (``FerryPeer/shutdown(drainTimeout:)``) answers with 106 "Shutting Down",
    ///   as it answers every call it does not handle, and a peer that no longer listens refuses
    ///   the connection;
    /// - a peer at ``Limits/maximumConcurrentHandlers`` answers 503, as for every call;
    /// - the auth handshake and the ``Hooks/onHeaderRead`` hook apply to it as to any route; the
    ///   router's middleware does not wrap it.
    ///
    /// A route the user registers under this name (a CALL `/ferry/health`) replaces the built-in
    /// one, so an application can answer with a check of its own (its database, its
    /// dependencies). The built-in route is not listed in ``FerryRouter/routes``, and so not
    /// announced to discovery; it is matched before ``FerryRouter/unknownCall(_:)``, so a proxy
    /// answers for itself rather than forwarding the probe.
    ///
    /// ```sh
    /// ferry call 127.0.0.1:9090 /ferry/health
    /// ```
    public static let healthRoute = "/ferry/health"

    /// The routes the peer serves itself, as its configuration asks, for
    /// ``FerryRouter/freeze(builtIns:)``.
    var builtInRoutes: [FerryRoute: FerryRouteHandler] {
        var routes: [FerryRoute: FerryRouteHandler] = [:]
        if configuration.servesHealthRoute {
            routes[FerryRoute(kind: .call, path: Self.healthRoute)] = .synchronous(HealthRoute.answer)
        }
        if configuration.observability.servesStats {
            routes[FerryRoute(kind: .call, path: Self.statsRoute)] = .synchronous(statsHandler)
        }
        return routes
    }
}

/// The built-in `/ferry/health` route. A draining or overloaded peer refuses the call before it
/// gets here, so reaching it means serving.
enum HealthRoute {
    /// The reply's body in JSON.
    static let jsonBody = ByteBuffer(string: #"{"status":"serving"}"#)
    /// The reply's body in any codec other than JSON.
    static let plainBody = ByteBuffer(string: "serving")

    /// Answers a CALL to the health route; never suspends, so the peer may run it in place.
    @Sendable
    static func answer(_ message: FerryMessage, _ context: FerryContext) throws -> FerryResponse {
        if context.resolvedReplyCodec == .json {
            return FerryResponse(meta: context.replyMeta, bodyCodec: .json, body: jsonBody)
        }
        return FerryResponse(meta: context.replyMeta, bodyCodec: .plain, body: plainBody)
    }
}
