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
    /// The service method exactly as it travels on the wire: `/math/add`, or `Hello.Say` in the
    /// style of erpc's RPC mapper.
    public var path: String

    /// Creates a route of `kind` named `path`.
    package init(kind: Kind, path: String) {
        self.kind = kind
        self.path = path
    }

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
/// peer.router.call("Hello.Say") { (name: String, ctx) in "hello, \(name)" }
/// peer.router.push("/chat/say") { (text: String, ctx) in ctx.logger.info("\(text)") }
/// let admin = peer.router.group("/admin", middleware: [RequireToken()])
/// admin.call("/stats") { (_: Void, ctx) in stats() }
/// ```
///
/// A route is registered and matched exactly as written: `/math/add` (the style of erpc's
/// default HTTP-like mapper) and `Hello.Say` (its RPC mapper) are both names, and `/Hello.Say`
/// is a third one. Groups join their prefixes to a path as described in ``FerryRouteGroup``.
///
/// Middleware added with ``use(_:)`` applies to routes registered after it, and to the
/// catch-all handlers.
///
/// The router is built first, then frozen when its peer starts to listen, dial or serve: the
/// peer reads a ``FerryRouteTable`` per message, which takes no lock. Registering a route or
/// middleware after that is a programmer error and stops the process.
public final class FerryRouter: FerryRouteRegistrar {
    /// The routes so far and the middleware that wraps the next ones.
    private struct Builder {
        var entries = RouteEntries()
        var middleware: [any FerryMiddleware] = []
    }

    /// Routes are added while building; a frozen router only hands out its table.
    private enum State {
        case building(Builder)
        case frozen(FerryRouteTable)

        /// The routes as they are now, for lookups and listings.
        var entries: RouteEntries {
            switch self {
            case .building(let builder): builder.entries
            case .frozen(let table): table.entries
            }
        }

        /// Runs `body` on the builder; `what` names the registration for the message that
        /// stops the process if the router is already frozen.
        mutating func build<T>(_ what: @autoclosure () -> String, _ body: (inout Builder) -> T) -> T {
            guard case .building(var builder) = self else {
                preconditionFailure(
                    "cannot register \(what()): the router is frozen; register routes before the peer listens, dials or serves")
            }
            // Leave nothing behind that shares the builder's storage, so that it is changed in place.
            self = .building(Builder())
            defer { self = .building(builder) }
            return body(&builder)
        }
    }
    private let state = Mutex(State.building(Builder()))

    /// Creates an empty router.
    public init() {}

    /// Adds middleware that wraps every route registered from now on.
    public func use(_ middleware: any FerryMiddleware) {
        state.withLock { $0.build("middleware \(type(of: middleware))") { $0.middleware.append(middleware) } }
    }

    /// Registers `handler` for `path`, exactly as written (`/math/add` or `Hello.Say`), wrapped
    /// in the middleware added so far.
    public func addRoute(_ kind: FerryRoute.Kind, _ path: String, handler: @escaping FerryHandler) {
        let route = FerryRoute(kind: kind, path: path)
        precondition(!path.isEmpty, "cannot register \(kind.rawValue.uppercased()) routes with an empty name: no message can reach it")
        state.withLock { state in
            state.build(route.description) { builder in
                builder.entries.set(route, .asynchronous(builder.middleware.wrap(handler)))
            }
        }
    }

    /// Registers a handler that never suspends for `path`, exactly as written. With middleware
    /// in force it is wrapped like any other handler; without, it stays synchronous.
    public func addRoute(_ kind: FerryRoute.Kind, _ path: String, synchronousHandler: @escaping FerrySynchronousHandler) {
        let route = FerryRoute(kind: kind, path: path)
        precondition(!path.isEmpty, "cannot register \(kind.rawValue.uppercased()) routes with an empty name: no message can reach it")
        state.withLock { state in
            state.build(route.description) { builder in
                if builder.middleware.isEmpty {
                    builder.entries.set(route, .synchronous(synchronousHandler))
                } else {
                    let handler = FerryRouteHandler.synchronous(synchronousHandler).asynchronous
                    builder.entries.set(route, .asynchronous(builder.middleware.wrap(handler)))
                }
            }
        }
    }

    /// A group of routes under `prefix`, with extra middleware; see ``FerryRouteGroup`` for how
    /// the prefix and a route's path are joined.
    public func group(_ prefix: String, middleware: [any FerryMiddleware] = []) -> FerryRouteGroup {
        FerryRouteGroup(router: self, prefixes: [prefix], middleware: middleware)
    }

    /// Handles every CALL whose route is not registered (the basis of proxying). The handler
    /// receives the raw body.
    public func unknownCall(_ handler: @escaping FerryHandler) {
        state.withLock { state in
            state.build("the catch-all CALL handler") { builder in
                builder.entries.unknownCall = .asynchronous(builder.middleware.wrap(handler))
            }
        }
    }

    /// Handles every PUSH whose route is not registered. The handler receives the raw body.
    public func unknownPush(_ handler: @escaping @Sendable (FerryMessage, FerryContext) async throws -> Void) {
        state.withLock { state in
            state.build("the catch-all PUSH handler") { builder in
                builder.entries.unknownPush = .asynchronous(
                    builder.middleware.wrap { message, context in
                        try await handler(message, context)
                        return FerryResponse()
                    })
            }
        }
    }

    /// Every route registered on this router, sorted by path. Routes a peer serves itself, such
    /// as its health route, are not listed.
    public var routes: [FerryRoute] {
        state.withLock { $0.entries }.routes
    }

    /// Freezes the router and returns its routes as a table that a peer reads per message
    /// without a lock. Freezing again returns the same table. From now on, registering a route
    /// or middleware stops the process: routes are registered before the peer listens, dials
    /// or serves.
    ///
    /// `builtIns` are routes the peer serves itself (its health route): each is added unless
    /// the user registered a route of the same kind and name, which wins. They are not wrapped
    /// in the router's middleware, are matched before the catch-all handlers, and are left out
    /// of ``routes``. They count only on the first freeze.
    package func freeze(builtIns: [FerryRoute: FerryRouteHandler] = [:]) -> FerryRouteTable {
        state.withLock { state in
            switch state {
            case .building(var builder):
                for (route, handler) in builtIns { builder.entries.setBuiltIn(route, handler) }
                let table = FerryRouteTable(builder.entries)
                state = .frozen(table)
                return table
            case .frozen(let table):
                return table
            }
        }
    }

    /// The handler for an inbound message: the route's own, else the catch-all, else nil.
    ///
    /// This takes the router's lock; a serving peer reads its ``FerryRouteTable`` instead.
    package func handler(for kind: FerryRoute.Kind, path: String) -> FerryRouteHandler? {
        state.withLock { $0.entries.handler(for: kind, path: path) }
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
        throw FerryStatus.internalServerError("cannot encode the reply: \(error)")
    }
}
