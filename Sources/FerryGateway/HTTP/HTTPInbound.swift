import Ferry
import FerryMicro
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Tracing

/// HTTP in: turns a request into a CALL of the route named by its path, made through the
/// gateway's ``FerryClient``, and the reply into a response.
///
/// - The path is the route: `POST /math/add` calls `/math/add` on a node that serves it.
/// - `Content-Type` picks the body codec (JSON, protobuf, plain text, form); a request without a
///   body sends its query string as a form body, so `GET /math/add?a=1&b=2` works too. Other
///   media types are refused with 415.
/// - Query parameters and the configured headers become meta, with `X-Real-IP`.
/// - `Accept` asks for the reply codec; without it the reply comes in the request's codec, or
///   JSON for a form body or none.
/// - The reply's status maps to HTTP as ``HTTPReplyMapping`` says; a failed call answers the
///   Ferry status as JSON.
struct HTTPInbound: Sendable {
    let client: FerryClient
    let settings: FerryGateway.HTTP
    let callTimeout: Duration
    /// The forwarded header names, lower case, parsed once.
    let forwardedHeaders: [(HTTPField.Name, String)]

    init(client: FerryClient, settings: FerryGateway.HTTP, callTimeout: Duration) {
        self.client = client
        self.settings = settings
        self.callTimeout = callTimeout
        self.forwardedHeaders = settings.forwardedHeaders.compactMap { name in
            HTTPField.Name(name).map { ($0, name.lowercased()) }
        }
    }

    /// Answers `request`; with a tracer, inside a server span that continues the trace its
    /// headers carry (`traceparent`, `tracestate`), so the calls it makes are its children.
    func respond(to request: Request, context: GatewayRequestContext) async -> Response {
        guard let tracer = client.peer.configuration.observability.tracer else {
            return await handle(request, context: context)
        }
        var carried = ServiceContext.topLevel
        tracer.extract(request.headers, into: &carried, using: HTTPFieldsExtractor())
        let span = tracer.startSpan("\(request.method) \(request.uri.path)", context: carried, ofKind: .server)
        span.attributes["http.request.method"] = "\(request.method)"
        span.attributes["url.path"] = request.uri.path
        let response = await ServiceContext.withValue(span.context) { await handle(request, context: context) }
        span.attributes["http.response.status_code"] = Int(response.status.code)
        if response.status.code >= 500 { span.setStatus(SpanStatus(code: .error)) }
        span.end()
        return response
    }

    private func handle(_ request: Request, context: GatewayRequestContext) async -> Response {
        guard request.method == .get || request.method == .post else {
            return failure(.init(code: 405, message: "Method Not Allowed", cause: "use GET or POST"), httpStatus: 405)
        }
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > settings.maximumBodySize {
            return tooLarge()
        }
        var body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: settings.maximumBodySize)
        } catch is NIOTooManyBytesError {
            return tooLarge()
        } catch {
            return failure(.badMessage("the request body could not be read: \(error)"), httpStatus: 400)
        }
        let codec: FerryCodecID
        if body.readableBytes > 0 {
            guard let contentType = request.headers[.contentType] else {
                return unsupportedMediaType("a request body needs a Content-Type")
            }
            guard let bodyCodec = HTTPMediaType.codec(contentType: contentType) else {
                return unsupportedMediaType("no codec for Content-Type \(contentType)")
            }
            codec = bodyCodec
        } else if let query = request.uri.query, !query.isEmpty {
            body = ByteBuffer(string: query)
            codec = .form
        } else {
            codec = .none
        }
        let options = FerryCallOptions(
            timeout: callTimeout, meta: meta(of: request, context: context), codec: codec,
            acceptCodec: request.headers[.accept].flatMap(HTTPMediaType.codec(accept:)) ?? Self.defaultReplyCodec(for: codec))
        do {
            let reply = try await client.callForReply(request.uri.path, body, options: options)
            guard reply.status.isOK else {
                return failure(reply.status, httpStatus: HTTPReplyMapping.httpStatus(for: reply.status))
            }
            var headers = HTTPFields()
            if reply.bodyCodec != .none {
                headers[.contentType] = HTTPMediaType.contentType(of: reply.bodyCodec)
            }
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: reply.body))
        } catch {
            let status = error as? FerryStatus ?? FerryStatus.badGateway("\(error)")
            return failure(status, httpStatus: HTTPReplyMapping.httpStatus(for: status))
        }
    }

    /// The reply codec when `Accept` names none: the request's, except that a form body or no
    /// body (a query) gets JSON, which is what HTTP clients read.
    static func defaultReplyCodec(for requestCodec: FerryCodecID) -> FerryCodecID {
        requestCodec == .form || requestCodec == .none ? .json : requestCodec
    }

    /// Query parameters, forwarded headers and the client's IP, as the call's meta.
    private func meta(of request: Request, context: GatewayRequestContext) -> FerryMeta {
        var meta = FerryMeta()
        for (key, value) in request.uri.queryParameters {
            meta.add(String(key), String(value))
        }
        for (name, key) in forwardedHeaders {
            for value in request.headers[values: name] { meta.add(key, value) }
        }
        if let ip = realIP(of: request, context: context) {
            meta.set(FerryGateway.MetaKey.realIP, ip)
        }
        return meta
    }

    /// The first `X-Forwarded-For` address when trusted, else the connection's address.
    private func realIP(of request: Request, context: GatewayRequestContext) -> String? {
        if settings.trustsForwardedFor, let forwarded = request.headers[.xForwardedFor],
            let first = forwarded.split(separator: ",").first?.trimmingCharacters(in: .whitespaces), !first.isEmpty
        {
            return first
        }
        return context.remoteAddress?.ipAddress
    }

    private func tooLarge() -> Response {
        failure(.init(code: 413, message: "Content Too Large", cause: "the body exceeds \(settings.maximumBodySize) bytes"), httpStatus: 413)
    }

    private func unsupportedMediaType(_ cause: String) -> Response {
        failure(.init(code: 415, message: "Unsupported Media Type", cause: cause), httpStatus: 415)
    }

    private func failure(_ status: FerryStatus, httpStatus: Int) -> Response {
        Response(
            status: HTTPResponse.Status(code: httpStatus),
            headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: HTTPReplyMapping.errorBody(for: status)))
    }
}

extension HTTPField.Name {
    static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
}

/// Reads a span context from HTTP request headers.
struct HTTPFieldsExtractor: Extractor {
    func extract(key: String, from fields: HTTPFields) -> String? {
        HTTPField.Name(key).flatMap { fields[$0] }
    }
}
