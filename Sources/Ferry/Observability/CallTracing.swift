import FerryCore
import Tracing

/// Writes a span context into a message's meta, as the tracer's propagation asks (for W3C:
/// `traceparent` and `tracestate`).
public struct FerryMetaInjector: Injector {
    /// Creates the injector.
    public init() {}

    /// Sets `key` to `value` in `meta`, replacing an earlier value.
    public func inject(_ value: String, forKey key: String, into meta: inout FerryMeta) {
        meta.set(key, value)
    }
}

/// Reads a span context from a message's meta.
public struct FerryMetaExtractor: Extractor {
    /// Creates the extractor.
    public init() {}

    /// The value of `key` in `meta`.
    public func extract(key: String, from meta: FerryMeta) -> String? {
        meta[key]
    }
}

/// The spans of calls: a client span around a call made here, a server span around a handler.
enum CallSpans {
    /// Starts the client span of a call to `route`, child of the caller's context, and writes
    /// its context into `meta`.
    static func startClient(_ route: String, remote: String, tracer: any Tracer, meta: inout FerryMeta) -> any Span {
        let span = tracer.startSpan(route, context: ServiceContext.current ?? .topLevel, ofKind: .client)
        span.updateAttributes { attributes in
            describe(&attributes, route: route)
            attributes["server.address"] = remote
        }
        tracer.inject(span.context, into: &meta, using: FerryMetaInjector())
        return span
    }

    /// Starts the server span of an inbound call, child of the context its meta carries.
    static func startServer(_ message: FerryMessage, tracer: any Tracer) -> any Span {
        var context = ServiceContext.topLevel
        tracer.extract(message.meta, into: &context, using: FerryMetaExtractor())
        let span = tracer.startSpan(message.serviceMethod, context: context, ofKind: .server)
        span.updateAttributes { describe(&$0, route: message.serviceMethod) }
        return span
    }

    private static func describe(_ attributes: inout SpanAttributes, route: String) {
        attributes["rpc.system"] = "ferry"
        attributes["rpc.method"] = route
    }

    /// Ends `span` with the call's status: an error status for anything but OK.
    static func end(_ span: any Span, status: FerryStatus) {
        span.attributes["rpc.ferry.status_code"] = Int(status.code.rawValue)
        if !status.isOK {
            span.setStatus(SpanStatus(code: .error, message: status.message))
        }
        span.end()
    }

    /// Ends `span` for a call that failed with `error`.
    static func end(_ span: any Span, error: any Error) {
        span.recordError(error)
        end(span, status: (error as? FerryStatus) ?? FerryStatus.internalServerError("\(error)"))
    }

    /// Runs a handler's `body` inside the server span of `message`.
    static func serve(_ message: FerryMessage, tracer: any Tracer, _ body: () -> FerryMessage) -> FerryMessage {
        let span = startServer(message, tracer: tracer)
        let reply = ServiceContext.withValue(span.context) { body() }
        end(span, status: reply.status)
        return reply
    }

    /// Runs a handler's `body` inside the server span of `message`.
    static func serve(_ message: FerryMessage, tracer: any Tracer, _ body: () async -> FerryMessage) async -> FerryMessage {
        let span = startServer(message, tracer: tracer)
        let reply = await ServiceContext.withValue(span.context) { await body() }
        end(span, status: reply.status)
        return reply
    }
}
