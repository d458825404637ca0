import Logging

extension FerryRouter {
    /// Runs the route of an inbound CALL and returns the REPLY to send: same seq, same filters,
    /// empty service method; an error reply has an empty body and codec 0.
    package func reply(to message: FerryMessage, context: FerryContext, exposeErrorDetails: Bool) async -> FerryMessage {
        await reply(to: message, route: handler(for: .call, path: message.serviceMethod), context: context, exposeErrorDetails: exposeErrorDetails)
    }

    /// ``reply(to:context:exposeErrorDetails:)`` with the route already looked up.
    package func reply(to message: FerryMessage, route: FerryRouteHandler?, context: FerryContext, exposeErrorDetails: Bool) async -> FerryMessage {
        Self.reply(to: message, response: await run(route, message, context: context, exposeErrorDetails: exposeErrorDetails))
    }

    /// Runs a synchronous CALL route in place, as its message is read, and returns the REPLY
    /// to send.
    package func reply(to message: FerryMessage, synchronousHandler handler: FerrySynchronousHandler, context: FerryContext, exposeErrorDetails: Bool) -> FerryMessage {
        let response: FerryResponse
        do {
            try Self.checkDeadline(of: context, now: context.arrival)
            response = try FerryDeadline.$current.withValue(context.deadline) { try handler(message, context) }
        } catch {
            response = Self.response(for: error, message: message, context: context, exposeErrorDetails: exposeErrorDetails)
        }
        return Self.reply(to: message, response: response)
    }

    /// Runs the route of an inbound PUSH; returns the outcome for the log (nothing is sent).
    package func receivePush(_ message: FerryMessage, context: FerryContext) async -> FerryStatus {
        await receivePush(message, route: handler(for: .push, path: message.serviceMethod), context: context)
    }

    /// ``receivePush(_:context:)`` with the route already looked up.
    package func receivePush(_ message: FerryMessage, route: FerryRouteHandler?, context: FerryContext) async -> FerryStatus {
        await run(route, message, context: context, exposeErrorDetails: true).status
    }

    /// Runs a synchronous PUSH route in place, as its message is read; returns the outcome for
    /// the log.
    package func receivePush(_ message: FerryMessage, synchronousHandler handler: FerrySynchronousHandler, context: FerryContext) -> FerryStatus {
        do {
            try Self.checkDeadline(of: context, now: context.arrival)
            return try FerryDeadline.$current.withValue(context.deadline) { try handler(message, context) }.status
        } catch {
            return Self.response(for: error, message: message, context: context, exposeErrorDetails: true).status
        }
    }

    private func run(_ route: FerryRouteHandler?, _ message: FerryMessage, context: FerryContext, exposeErrorDetails: Bool) async -> FerryResponse {
        do {
            guard !message.serviceMethod.isEmpty else {
                throw FerryStatus.badMessage("invalid service method for message")
            }
            guard let route else { throw FerryStatus.notFound(message.serviceMethod) }
            try Self.checkDeadline(of: context, now: .now)
            let handler = route.asynchronous
            return try await FerryDeadline.$current.withValue(context.deadline) {
                try await handler(message, context)
            }
        } catch {
            return Self.response(for: error, message: message, context: context, exposeErrorDetails: exposeErrorDetails)
        }
    }

    /// Refuses a call whose deadline has passed at `now`. A handler run in place, as its message
    /// is read, checks at the message's arrival, which is the same instant.
    private static func checkDeadline(of context: FerryContext, now: ContinuousClock.Instant) throws {
        if let deadline = context.deadline, deadline <= now {
            throw FerryStatus(.deadlineExceeded, "Deadline Exceeded", cause: "the caller's deadline passed before the call was handled")
        }
    }

    /// The response a handler's error becomes: a thrown status as it is, anything else 500.
    private static func response(for error: any Error, message: FerryMessage, context: FerryContext, exposeErrorDetails: Bool) -> FerryResponse {
        if let status = error as? FerryStatus {
            return FerryResponse(status: status, meta: context.replyMeta)
        }
        context.logger.error("handler failed", metadata: ["route": "\(message.serviceMethod)", "error": "\(error)"])
        let cause = exposeErrorDetails ? "\(error)" : ""
        return FerryResponse(status: FerryStatus(.internalServerError, "Internal Server Error", cause: cause), meta: context.replyMeta)
    }

    private static func reply(to message: FerryMessage, response: FerryResponse) -> FerryMessage {
        var reply = FerryMessage(type: .reply, seq: message.seq, filters: message.filters)
        reply.status = response.status
        reply.meta = response.meta
        if response.status.isOK {
            reply.bodyCodec = response.bodyCodec
            reply.body = response.body
        }
        return reply
    }
}
