import AsyncHTTPClient
import Ferry
import FerryGateway
import FerryTestSupport
import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// One HTTP exchange's result.
struct HTTPResult {
    var status: Int
    var headers: [String: String]
    var body: String

    /// The body as a Ferry error (`{"code":…,"message":…,"cause":…}`).
    var error: ErrorBody? { try? JSONDecoder().decode(ErrorBody.self, from: Data(body.utf8)) }

    struct ErrorBody: Decodable {
        var code: Int32
        var message: String
        var cause: String
    }
}

/// Sends one request to the gateway's HTTP listener over a real socket.
func http(
    _ method: HTTPMethod, _ address: FerryAddress?, _ path: String, body: String? = nil, headers: [(String, String)] = []
) async throws -> HTTPResult {
    var request = HTTPClientRequest(url: "http://\(try #require(address))\(path)")
    request.method = method
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    if let body { request.body = .bytes(ByteBuffer(string: body)) }
    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
    let bytes = try await response.body.collect(upTo: 1 << 20)
    var fields: [String: String] = [:]
    for header in response.headers { fields[header.name.lowercased()] = header.value }
    return HTTPResult(status: Int(response.status.code), headers: fields, body: String(buffer: bytes))
}

@Suite("HTTP in through the gateway")
struct HTTPGatewayTests {
    static let json = [("Content-Type", "application/json")]

    @Test("POST with a JSON body calls the route its path names and answers the reply as JSON")
    func postJSON() async throws {
        try await withGateway(allListeners()) { _, addresses, _ in
            let result = try await http(.POST, addresses.http, "/math/add", body: #"{"a":1,"b":2}"#, headers: Self.json)
            #expect(result.status == 200)
            #expect(result.body == "3")
            #expect(result.headers["content-type"] == "application/json")
        }
    }

    @Test("GET sends its query as a form body, so a typed route takes its arguments from the URL")
    func getWithQuery() async throws {
        try await withGateway(allListeners()) { _, addresses, _ in
            let result = try await http(.GET, addresses.http, "/math/add?a=20&b=22")
            #expect(result.status == 200)
            #expect(result.body == "42")
        }
    }

    @Test("Accept picks the reply codec")
    func acceptPicksReplyCodec() async throws {
        try await withGateway(allListeners()) { _, addresses, _ in
            let result = try await http(
                .POST, addresses.http, "/math/pair", body: #"{"a":1,"b":2}"#,
                headers: Self.json + [("Accept", "application/x-www-form-urlencoded")])
            #expect(result.status == 200)
            #expect(result.headers["content-type"] == "application/x-www-form-urlencoded")
            #expect(result.body == "a=1&b=2")
        }
    }

    @Test(
        "a failed call's status maps as erpc's gateway maps it, with the Ferry status as JSON",
        arguments: [(Int32(418), 418), (404, 404), (503, 503), (100, 500), (199, 500), (600, 299), (1001, 299)])
    func statusMapping(code: Int32, expected: Int) async throws {
        try await withGateway(allListeners()) { _, addresses, _ in
            let result = try await http(.POST, addresses.http, "/fail/status", body: "\(code)", headers: Self.json)
            #expect(result.status == expected)
            let error = try #require(result.error, "body: \(result.body)")
            #expect(error.code == code)
            #expect(error.message == "Told To Fail")
            #expect(error.cause == "code \(code)")
        }
    }

    @Test("a route no service serves is 404: unknown to the registry, or unknown to the service")
    func unknownRoutes() async throws {
        try await withGateway(allListeners(), routes: ["/math/add"]) { _, addresses, _ in
            let unlisted = try await http(.POST, addresses.http, "/nobody/here", body: "{}", headers: Self.json)
            #expect(unlisted.status == 404, "body: \(unlisted.body)")
            #expect(unlisted.error?.message == "No Endpoint")
        }
        try await withGateway(allListeners()) { _, addresses, _ in
            let unserved = try await http(.POST, addresses.http, "/nobody/here", body: "{}", headers: Self.json)
            #expect(unserved.status == 404, "body: \(unserved.body)")
            #expect(unserved.error?.message == "Not Found")
        }
    }

    @Test("a body over the limit is 413, and the gateway goes on serving")
    func bodyTooLarge() async throws {
        let settings = FerryGateway.HTTP(port: 0, maximumBodySize: 1024)
        try await withGateway(allListeners(http: settings)) { _, addresses, _ in
            let body = #"{"a":1,"b":2,"pad":""# + String(repeating: "x", count: 4096) + #""}"#
            let result = try await http(.POST, addresses.http, "/math/add", body: body, headers: Self.json)
            #expect(result.status == 413)
            #expect(result.error?.code == 413)
            let small = try await http(.POST, addresses.http, "/math/add", body: #"{"a":1,"b":2}"#, headers: Self.json)
            #expect(small.status == 200, "the connection and the gateway still serve")
        }
    }

    @Test("malformed JSON is 400, an unknown Content-Type is 415")
    func badBodies() async throws {
        try await withGateway(allListeners()) { _, addresses, _ in
            let malformed = try await http(.POST, addresses.http, "/math/add", body: #"{"a":1,"#, headers: Self.json)
            #expect(malformed.status == 400, "body: \(malformed.body)")
            let unknown = try await http(.POST, addresses.http, "/math/add", body: "<a/>", headers: [("Content-Type", "application/xml")])
            #expect(unknown.status == 415)
            let untyped = try await http(.POST, addresses.http, "/math/add", body: "{}")
            #expect(untyped.status == 415, "a body without a Content-Type")
        }
    }

    @Test("a call that outlives the gateway's timeout is 504")
    func timeout() async throws {
        try await withGateway(allListeners(callTimeout: .milliseconds(300))) { _, addresses, _ in
            let result = try await http(.POST, addresses.http, "/slow/never")
            #expect(result.status == 504, "body: \(result.body)")
        }
    }

    @Test("query parameters, forwarded headers and X-Real-IP become meta; X-Forwarded-For only when trusted")
    func metaFromRequest() async throws {
        try await withGateway(allListeners()) { _, addresses, _ in
            let result = try await http(
                .POST, addresses.http, "/echo/meta?tag=a&tag=b&q=hello%20world",
                headers: [("X-Request-Id", "r-1"), ("X-Forwarded-For", "203.0.113.9"), ("X-Secret", "no")])
            #expect(result.status == 200, "body: \(result.body)")
            let meta = try JSONDecoder().decode([String: [String]].self, from: Data(result.body.utf8))
            #expect(meta["tag"] == ["a", "b"])
            #expect(meta["q"] == ["hello world"])
            #expect(meta["x-request-id"] == ["r-1"])
            #expect(meta["X-Real-IP"] == ["127.0.0.1"], "an untrusted X-Forwarded-For is ignored")
            #expect(meta["x-secret"] == nil, "only the configured headers pass")
        }
        let trusting = FerryGateway.HTTP(port: 0, trustsForwardedFor: true)
        try await withGateway(allListeners(http: trusting)) { _, addresses, _ in
            let result = try await http(.POST, addresses.http, "/echo/meta", headers: [("X-Forwarded-For", "203.0.113.9, 10.0.0.1")])
            let meta = try JSONDecoder().decode([String: [String]].self, from: Data(result.body.utf8))
            #expect(meta["X-Real-IP"] == ["203.0.113.9"])
        }
    }

    @Test("CORS: a preflight from an allowed origin is answered, a request from another origin is refused")
    func cors() async throws {
        let settings = FerryGateway.HTTP(port: 0, cors: FerryGateway.CORS(allowedOrigins: ["https://app.example"]))
        try await withGateway(allListeners(http: settings)) { _, addresses, _ in
            let preflight = try await http(
                .OPTIONS, addresses.http, "/math/add",
                headers: [("Origin", "https://app.example"), ("Access-Control-Request-Method", "POST")])
            #expect(preflight.status == 200 || preflight.status == 204)
            #expect(preflight.headers["access-control-allow-origin"] == "https://app.example")
            let allowed = try await http(
                .POST, addresses.http, "/math/add", body: #"{"a":1,"b":2}"#, headers: Self.json + [("Origin", "https://app.example")])
            #expect(allowed.status == 200)
            #expect(allowed.headers["access-control-allow-origin"] == "https://app.example")
            let refused = try await http(
                .POST, addresses.http, "/math/add", body: #"{"a":1,"b":2}"#, headers: Self.json + [("Origin", "https://evil.example")])
            #expect(refused.status == 403)
        }
    }
}

@Suite("Tracing through the HTTP gateway")
struct HTTPGatewayTracingTests {
    @Test("a traceparent sent over HTTP continues through the gateway: the service gets the same trace, with the gateway's call as parent")
    func traceContinues() async throws {
        let tracer = W3CInMemoryTracer()
        var configuration = allListeners()
        configuration.innerPeer.observability = FerryObservability(tracer: tracer)
        let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
        let parent = "00f067aa0ba902b7"
        try await withGateway(configuration) { _, addresses, _ in
            let result = try await http(
                .GET, addresses.http, "/echo/meta",
                headers: [("traceparent", "00-\(traceID)-\(parent)-01"), ("tracestate", "vendor=1")])
            #expect(result.status == 200, "\(result.body)")
            let meta = try JSONDecoder().decode([String: [String]].self, from: Data(result.body.utf8))
            let carried = try #require(meta["traceparent"]?.first, "meta: \(meta)")
            let parts = carried.split(separator: "-").map(String.init)
            #expect(parts.count == 4 && parts[1] == traceID, "the service sees the caller's trace: \(carried)")
            #expect(parts.count == 4 && parts[2] != parent, "its parent is the gateway's own call, not the HTTP caller")
        }
        let spans = tracer.recorder.finishedSpans
        let server = try #require(spans.first { $0.kind == .server })
        #expect(server.traceID == traceID)
        #expect(server.parentSpanID == parent, "the gateway's HTTP span continues the caller's")
        #expect(server.attributes["http.response.status_code"]?.toSpanAttribute() == 200.toSpanAttribute())
        let call = try #require(spans.first { $0.kind == .client && $0.operationName == "/echo/meta" })
        #expect(call.traceID == traceID)
    }
}
