import Synchronization

/// A registered route, as listed by ``FerryRouter/routes``.
public struct FerryRoute: Hashable, Sendable, CustomStringConvertible {
    /// Whether a route answers CALLs or receives PUSHes.
    public enum Kind: String, Hashable, Sendable {
        /// A CALL route: request and reply.
        case call
        /// A PUSH route: one-way.
        case push
    }

    /// The kind of route.
    public var kind: Kind
    /// The service method, e.g. `/math/add`.
    public var path: String

    /// A readable form, for logs and error messages.
    public var description: String { "\(kind.rawValue.uppercased()) \(path)" }
}

/// Registers routes: implemented by ``FerryRouter`` and ``FerryRouteGroup``. The typed
/// `call` and `push` registration methods come from this protocol's extension.
public protocol FerryRouteRegistrar: Sendable {
    /// Registers `handler` for `path` (relative to this registrar's prefix).
    func addRoute(_ kind: FerryRoute.Kind, _ path: String, handler: @escaping FerryHandler)
    /// Registers a handler that never suspends for `path` (relative to this registrar's prefix).
    /// Where no middleware wraps it, a peer may run it in place as its message is read, without
    /// a task (see ``FerrySynchronousHandler``).
    func addRoute(_ kind: FerryRoute.Kind, _ path: String, synchronousHandler: @escaping FerrySynchronousHandler)
    /// A group of routes under `prefix` with extra middleware.
    func group(_ prefix: String, middleware: [any FerryMiddleware]) -> FerryRouteGroup
}

/// Maps service methods to CALL and PUSH handlers.
///
/// ```swift
/// peer.router.call("/math/add") { (args: Add, ctx) in args.a + args.b }
/// peer.router.push("/chat/say") { (text: String, ctx) in ctx.logger.info("\(text)") }
/// let admin = peer.router.group("/admin", middleware: [RequireToken()])
/// admin.call("/stats") { (_: Void, ctx) in stats() }
/// ```
///
/// Middleware added with ``use(_:)`` applies to routes registered after it, and to the
/// catch-all handlers.
public final class FerryRouter: FerryRouteRegistrar {
    private struct State {
        var calls: [String: FerryRouteHandler] = [:]
        var pushes: [String: FerryRouteHandler] = [:]
        var unknownCall: FerryHandler?
        var unknownPush: FerryHandler?
        var middleware: [any FerryMiddleware] = []

        mutating func set(_ kind: FerryRoute.Kind, _ path: String, _ handler: FerryRouteHandler) {
            switch kind {
            case .call: calls[path] = handler
            case .push: pushes[path] = handler
            }
        }
    }
    private let state = Mutex(State())

    /// Creates an empty router.
    public init() {}

    /// Adds middleware that wraps every route registered from now on.
    public func use(_ middleware: any FerryMiddleware) {
        state.withLock { $0.middleware.append(middleware) }
    }

    /// Registers `handler` for `path` (under this registrar's prefix, wrapped in its middleware).
    public func addRoute(_ kind: FerryRoute.Kind, _ path: String, handler: @escaping FerryHandler) {
        let path = FerryRouteGroup.join("", path)
        state.withLock { state in
            state.set(kind, path, .asynchronous(state.middleware.wrap(handler)))
        }
    }

    /// Registers a handler that never suspends for `path` (under this registrar's prefix). With
    /// middleware in force it is wrapped like any other handler; without, it stays synchronous.
    public func addRoute(_ kind: FerryRoute.Kind, _ path: String, synchronousHandler: @escaping FerrySynchronousHandler) {
        let path = FerryRouteGroup.join("", path)
        state.withLock { state in
            if state.middleware.isEmpty {
                state.set(kind, path, .synchronous(synchronousHandler))
            } else {
                state.set(kind, path, .asynchronous(state.middleware.wrap(FerryRouteHandler.synchronous(synchronousHandler).asynchronous)))
            }
        }
    }

    /// A group of routes under `prefix` (appended to this one's), with extra middleware.
    public func group(_ prefix: String, middleware: [any FerryMiddleware] = []) -> FerryRouteGroup {
        FerryRouteGroup(router: self, prefix: FerryRouteGroup.join("", prefix), middleware: middleware)
    }

    /// Handles every CALL whose route is not registered (the basis of proxying). The handler
    /// receives the raw body.
    public func unknownCall(_ handler: @escaping FerryHandler) {
        state.withLock { $0.unknownCall = $0.middleware.wrap(handler) }
    }

    /// Handles every PUSH whose route is not registered. The handler receives the raw body.
    public func unknownPush(_ handler: @escaping @Sendable (FerryMessage, FerryContext) async throws -> Void) {
        state.withLock {
            $0.unknownPush = $0.middleware.wrap { message, context in
                try await handler(message, context)
                return FerryResponse()
            }
        }
    }

    /// Every registered route, sorted by path.
    public var routes: [FerryRoute] {
        state.withLock { state in
            (state.calls.keys.map { FerryRoute(kind: .call, path: $0) }
                + state.pushes.keys.map { FerryRoute(kind: .push, path: $0) })
                .sorted { ($0.path, $0.kind.rawValue) < ($1.path, $1.kind.rawValue) }
        }
    }

    /// The handler for an inbound message: the route's own, else the catch-all, else nil.
    package func handler(for kind: FerryRoute.Kind, path: String) -> FerryRouteHandler? {
        state.withLock { state in
            switch kind {
            case .call: state.calls[path] ?? state.unknownCall.map(FerryRouteHandler.asynchronous)
            case .push: state.pushes[path] ?? state.unknownPush.map(FerryRouteHandler.asynchronous)
            }
        }
    }
}

/// A registered handler, as the router keeps it.
package enum FerryRouteHandler: Sendable {
    /// A handler that may suspend: it runs in a task.
    case asynchronous(FerryHandler)
    /// A handler that never suspends: it may run in place, without a task.
    case synchronous(FerrySynchronousHandler)

    /// The handler as an asynchronous one.
    package var asynchronous: FerryHandler {
        switch self {
        case .asynchronous(let handler): handler
        case .synchronous(let handler): { message, context in try handler(message, context) }
        }
    }
}

/// Routes under a common prefix, sharing middleware. Create one with ``FerryRouter/group(_:middleware:)``.
public struct FerryRouteGroup: FerryRouteRegistrar {
    private let router: FerryRouter
    private let prefix: String
    private let middleware: [any FerryMiddleware]

    init(router: FerryRouter, prefix: String, middleware: [any FerryMiddleware]) {
        self.router = router
        self.prefix = prefix
        self.middleware = middleware
    }

    /// Registers `handler` for `path` (under this registrar's prefix, wrapped in its middleware).
    public func addRoute(_ kind: FerryRoute.Kind, _ path: String, handler: @escaping FerryHandler) {
        router.addRoute(kind, Self.join(prefix, path), handler: middleware.wrap(handler))
    }

    /// Registers a handler that never suspends for `path` (under this registrar's prefix). With
    /// the group's middleware, or the router's, it is wrapped like any other handler.
    public func addRoute(_ kind: FerryRoute.Kind, _ path: String, synchronousHandler: @escaping FerrySynchronousHandler) {
        if middleware.isEmpty {
            router.addRoute(kind, Self.join(prefix, path), synchronousHandler: synchronousHandler)
        } else {
            addRoute(kind, path, handler: FerryRouteHandler.synchronous(synchronousHandler).asynchronous)
        }
    }

    /// A group of routes under `prefix` (appended to this one's), with extra middleware.
    public func group(_ prefix: String, middleware: [any FerryMiddleware] = []) -> FerryRouteGroup {
        FerryRouteGroup(router: router, prefix: Self.join(self.prefix, prefix), middleware: self.middleware + middleware)
    }

    /// Joins path segments with exactly one `/` between them and a leading `/`.
    static func join(_ prefix: String, _ path: String) -> String {
        let parts = (prefix + "/" + path).split(separator: "/", omittingEmptySubsequences: true)
        return "/" + parts.joined(separator: "/")
    }
}

extension FerryRouteRegistrar {
    /// Registers a typed CALL handler. The request body is decoded as `Args` with the request's
    /// codec (a failure answers 400); the returned value is encoded with the reply codec.
    /// `ByteBuffer` arguments and replies pass through raw; `Void` means an empty body.
    public func call<Args, Reply>(
        _ path: String, _ handler: @escaping @Sendable (Args, FerryContext) async throws -> Reply
    ) {
        let argsBody = TypedBody<Args>()
        let replyBody = TypedBody<Reply>()
        addRoute(.call, path) { message, context in
            let args = try decodeArguments(argsBody, from: message, context: context)
            let reply = try await handler(args, context)
            return try encodeResponse(reply, replyBody, context: context)
        }
    }

    /// Registers a typed PUSH handler. A body that does not decode as `Args` is dropped and logged.
    public func push<Args>(_ path: String, _ handler: @escaping @Sendable (Args, FerryContext) async throws -> Void) {
        let argsBody = TypedBody<Args>()
        addRoute(.push, path) { message, context in
            let args = try decodeArguments(argsBody, from: message, context: context)
            try await handler(args, context)
            return FerryResponse()
        }
    }

    /// Registers a typed CALL handler that never suspends (a closure without `await`). It
    /// behaves as the asynchronous form, and on a peer whose handlers run on the event loop it
    /// runs in place as the CALL is read, without a task of its own.
    public func call<Args, Reply>(_ path: String, _ handler: @escaping @Sendable (Args, FerryContext) throws -> Reply) {
        let argsBody = TypedBody<Args>()
        let replyBody = TypedBody<Reply>()
        addRoute(.call, path, synchronousHandler: { message, context in
            let args = try decodeArguments(argsBody, from: message, context: context)
            return try encodeResponse(try handler(args, context), replyBody, context: context)
        })
    }

    /// Registers a typed PUSH handler that never suspends (a closure without `await`); see
    /// ``call(_:_:)-(_,(Args,FerryContext)throws->Reply)``.
    public func push<Args>(_ path: String, _ handler: @escaping @Sendable (Args, FerryContext) throws -> Void) {
        let argsBody = TypedBody<Args>()
        addRoute(.push, path, synchronousHandler: { message, context in
            try handler(try decodeArguments(argsBody, from: message, context: context), context)
            return FerryResponse()
        })
    }

    /// A group with no extra middleware.
    public func group(_ prefix: String) -> FerryRouteGroup { group(prefix, middleware: []) }

    /// Registers a handler that never suspends by wrapping it as an asynchronous one: the
    /// default for registrars that do not keep synchronous handlers.
    public func addRoute(_ kind: FerryRoute.Kind, _ path: String, synchronousHandler: @escaping FerrySynchronousHandler) {
        addRoute(kind, path, handler: FerryRouteHandler.synchronous(synchronousHandler).asynchronous)
    }
}

private func decodeArguments<Args>(_ typed: TypedBody<Args>, from message: FerryMessage, context: FerryContext) throws -> Args {
    if Args.self == Void.self { return () as! Args }
    do {
        return try typed.decode(from: message.body, codec: message.bodyCodec, codecs: context.codecs)
    } catch {
        throw FerryStatus.badMessage("\(error)")
    }
}

private func encodeResponse<Reply>(_ reply: Reply, _ typed: TypedBody<Reply>, context: FerryContext) throws -> FerryResponse {
    let codec = context.resolvedReplyCodec
    if Reply.self == Void.self {
        return FerryResponse(meta: context.replyMeta, bodyCodec: codec)
    }
    do {
        let body = try typed.encode(reply, codec: codec, codecs: context.codecs)
        return FerryResponse(meta: context.replyMeta, bodyCodec: codec, body: body)
    } catch {
        throw FerryStatus(.internalServerError, "Internal Server Error", cause: "cannot encode the reply: \(error)")
    }
}
