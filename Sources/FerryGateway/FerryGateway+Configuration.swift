import Ferry
import FerryMicro
import FerryPush
import NIOCore

extension FerryGateway {
    /// Where the gateway listens and how it treats the clients it lets in. Every listener is
    /// optional; a gateway with none only proxies nothing.
    public struct Configuration: Sendable {
        /// HTTP in: `POST` or `GET /service/route` becomes a CALL of that route (nil: no HTTP).
        public var http: HTTP?
        /// A raw-socket listener (erpc's raw proto) for outside clients (nil: none).
        public var socket: FerryAddress?
        /// A WebSocket listener (erpc's WebSocket mixer) for outside clients, browsers included
        /// (nil: none).
        public var webSocket: FerryAddress?
        /// The listener internal services call to reach connected users (push, kick, online
        /// counts; see ``FerryGateway/InnerRoute``). Keep it on an internal network (nil: none).
        public var inner: FerryAddress?
        /// Settings of the peer that holds the outside clients' sessions (raw socket and
        /// WebSocket): limits, heartbeats, WebSocket sub-protocol and hooks. The gateway sets its
        /// auth and its routes. By default at most 1,024 connections may be waiting to
        /// authenticate at once, so a flood of connections that never do is refused at accept.
        public var outerPeer: FerryPeer.Configuration
        /// Settings of the peer that serves the inner listener and dials the services.
        public var innerPeer: FerryPeer.Configuration
        /// Settings of the client that finds the services in the registry and calls them.
        public var client: FerryClient.Configuration
        /// How long an outside client has to authenticate after it connects.
        public var authTimeout: Duration
        /// How many sessions a user may have at once.
        public var logins: LoginPolicy
        /// The timeout of an inward call when the caller set none (an HTTP request, or a
        /// session call without a timeout).
        public var callTimeout: Duration
        /// How long one push of the inner API may wait to be written to one session, so that a
        /// client that stops reading holds an inner call no longer than this. (Past the peer's
        /// ``FerryPeer/Limits/maximumQueuedOutboundBytes``, its slow-consumer policy applies.)
        public var pushTimeout: Duration
        /// At-least-once pushes to users (``FerryGateway/InnerRoute/send``, delivered with
        /// `FerryPushProtocol`): the mailbox that stores them and the delivery settings (nil:
        /// only best-effort pushes).
        public var durablePush: DurablePush?
        /// Several gateways as one: presence in a shared registry, and pushes accepted by any
        /// gateway delivered wherever the user is (nil: this gateway alone).
        public var cluster: Cluster?
        /// Rooms outside clients join and internal services broadcast to (nil: no rooms).
        public var rooms: Rooms?
        /// Where the gateway announces itself and its load for `GET /gateways` (nil: it does
        /// not, and `GET /gateways` is proxied like any other path).
        public var announcement: Announcement?

        /// Creates a configuration; every argument has a production default.
        public init(
            http: HTTP? = nil,
            socket: FerryAddress? = nil,
            webSocket: FerryAddress? = nil,
            inner: FerryAddress? = nil,
            outerPeer: FerryPeer.Configuration = FerryPeer.Configuration(limits: .init(maximumUnauthenticatedConnections: 1024)),
            innerPeer: FerryPeer.Configuration = FerryPeer.Configuration(),
            client: FerryClient.Configuration = FerryClient.Configuration(),
            authTimeout: Duration = .seconds(10),
            logins: LoginPolicy = .single,
            callTimeout: Duration = .seconds(10),
            pushTimeout: Duration = .seconds(5),
            durablePush: DurablePush? = nil,
            rooms: Rooms? = nil,
            cluster: Cluster? = nil,
            announcement: Announcement? = nil
        ) {
            self.http = http
            self.socket = socket
            self.webSocket = webSocket
            self.inner = inner
            self.outerPeer = outerPeer
            self.innerPeer = innerPeer
            self.client = client
            self.authTimeout = authTimeout
            self.logins = logins
            self.callTimeout = callTimeout
            self.pushTimeout = pushTimeout
            self.durablePush = durablePush
            self.rooms = rooms
            self.cluster = cluster
            self.announcement = announcement
        }
    }

    /// At-least-once pushes: where they are stored and how they are delivered.
    public struct DurablePush: Sendable {
        /// The mailbox (`FerryMemoryMailbox`, or `FerrySQLiteMailbox` to survive restarts).
        public var mailbox: any FerryMailbox
        /// Window, resend time and clock.
        public var delivery: FerryPushService.Configuration

        /// Creates the settings.
        public init(mailbox: any FerryMailbox, delivery: FerryPushService.Configuration = FerryPushService.Configuration()) {
            self.mailbox = mailbox
            self.delivery = delivery
        }
    }

    /// How many sessions a user may hold at once.
    public enum LoginPolicy: Sendable, Hashable {
        /// One: a new login closes the user's older session. The session's ID is the user ID.
        case single
        /// Up to `maximum` sessions (devices); a login beyond that is refused with 401. Session
        /// IDs are `USER#N`.
        case multipleDevices(maximum: Int)
    }

    /// HTTP in: the listener, the request limits and what passes into the call's meta.
    public struct HTTP: Sendable {
        /// Where the HTTP server listens (TCP host and port; port 0 picks a free one).
        public var host: String
        /// The port; 0 picks a free one.
        public var port: Int
        /// The largest request body accepted; a larger one is answered 413.
        public var maximumBodySize: Int
        /// Request headers copied into the call's meta, matched without regard to case; the meta
        /// key is the header name in lower case.
        public var forwardedHeaders: [String]
        /// Whether `X-Forwarded-For` (its first address) is trusted as the client's IP. Turn it
        /// on only behind a proxy that sets it; otherwise a client could choose its own IP.
        public var trustsForwardedFor: Bool
        /// Cross-origin settings for browsers (nil: no CORS headers).
        public var cors: CORS?

        /// Creates the HTTP settings.
        public init(
            host: String = "127.0.0.1",
            port: Int,
            maximumBodySize: Int = 4 << 20,
            forwardedHeaders: [String] = ["authorization", "x-request-id", "traceparent", "tracestate", "user-agent"],
            trustsForwardedFor: Bool = false,
            cors: CORS? = CORS()
        ) {
            self.host = host
            self.port = port
            self.maximumBodySize = maximumBodySize
            self.forwardedHeaders = forwardedHeaders
            self.trustsForwardedFor = trustsForwardedFor
            self.cors = cors
        }
    }

    /// Cross-origin resource sharing for HTTP in.
    public struct CORS: Sendable {
        /// The origins allowed; empty allows any origin.
        public var allowedOrigins: [String]
        /// Request headers a browser may send.
        public var allowedHeaders: [String]
        /// Whether browsers may send credentials (cookies, HTTP auth).
        public var allowsCredentials: Bool
        /// How long a browser may cache a preflight answer.
        public var maximumAge: Duration?

        /// Creates CORS settings; by default any origin, the usual headers, no credentials.
        public init(
            allowedOrigins: [String] = [],
            allowedHeaders: [String] = ["accept", "authorization", "content-type", "origin", "x-request-id"],
            allowsCredentials: Bool = false,
            maximumAge: Duration? = .seconds(600)
        ) {
            self.allowedOrigins = allowedOrigins
            self.allowedHeaders = allowedHeaders
            self.allowsCredentials = allowsCredentials
            self.maximumAge = maximumAge
        }
    }
}
