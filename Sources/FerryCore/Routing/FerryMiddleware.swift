/// The handler of one route after decoding: takes the inbound message and its context, returns
/// the response (ignored for pushes).
public typealias FerryHandler = @Sendable (FerryMessage, FerryContext) async throws -> FerryResponse

/// A handler that never suspends: it decodes, answers and encodes in one go. Typed routes
/// registered with a closure that does not `await` are kept in this form, and a peer whose
/// handlers run on the event loop runs them in place as their message is read, with no task.
/// They must not block: the connection's other messages wait while one runs.
public typealias FerrySynchronousHandler = @Sendable (FerryMessage, FerryContext) throws -> FerryResponse

/// Wraps handlers in the onion model: each middleware runs code before and after `next`, may
/// change the message or the response, or answer without calling `next` (auth, validation,
/// metrics, rate limits).
///
/// ```swift
/// struct RequireToken: FerryMiddleware {
///     func handle(_ message: FerryMessage, context: FerryContext, next: FerryHandler) async throws -> FerryResponse {
///         guard message.meta["token"] == "secret" else { throw FerryStatus(.unauthorized, "Unauthorized") }
///         return try await next(message, context)
///     }
/// }
/// ```
public protocol FerryMiddleware: Sendable {
    /// Handles `message`, calling `next` to continue inward.
    func handle(_ message: FerryMessage, context: FerryContext, next: FerryHandler) async throws -> FerryResponse
}

/// A middleware made from a closure.
public struct FerryMiddlewareFunction: FerryMiddleware {
    private let body: @Sendable (FerryMessage, FerryContext, FerryHandler) async throws -> FerryResponse

    /// Creates a middleware that runs `body`.
    public init(_ body: @escaping @Sendable (FerryMessage, FerryContext, FerryHandler) async throws -> FerryResponse) {
        self.body = body
    }

    /// Runs the closure.
    public func handle(_ message: FerryMessage, context: FerryContext, next: FerryHandler) async throws -> FerryResponse {
        try await body(message, context, next)
    }
}

extension Array where Element == any FerryMiddleware {
    /// Wraps `handler` so the first middleware is the outer-most layer.
    func wrap(_ handler: @escaping FerryHandler) -> FerryHandler {
        reversed().reduce(handler) { next, middleware in
            { message, context in try await middleware.handle(message, context: context, next: next) }
        }
    }
}
