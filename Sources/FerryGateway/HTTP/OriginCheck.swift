import Hummingbird

/// Refuses (403) browser requests whose `Origin` is not allowed; requests without an `Origin`
/// (not from a browser page) pass. With no allowed origins listed, every origin passes.
struct OriginCheck<Context: RequestContext>: RouterMiddleware {
    let allowedOrigins: Set<String>

    init(allowedOrigins: [String]) {
        self.allowedOrigins = Set(allowedOrigins)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if !allowedOrigins.isEmpty, let origin = request.headers[.origin], !allowedOrigins.contains(origin) {
            return Response(status: .forbidden)
        }
        return try await next(request, context)
    }
}
