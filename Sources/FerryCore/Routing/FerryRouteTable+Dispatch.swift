import Logging
import NIOCore

extension FerryRouteTable {
    /// Runs the route of an inbound CALL and returns the REPLY to send: same seq, same filters,
    /// empty service method; an error reply has an empty body and codec 0.
    package func reply(to message: FerryMessage, context: FerryContext, exposeErrorDetails: Bool) async -> FerryMessage {
        await reply(to: message, route: handler(for: .call, path: message.serviceMethod), context: context, exposeErrorDetails: exposeErrorDetails)
    }

    /// ``reply(to:context:exposeErrorDetails:)`` with the route already looked up.
    package func reply(to message: FerryMessage, route: FerryRouteHandler?, context: FerryContext, exposeErrorDetails: Bool) async -> FerryMessage {
        Self.reply(to: message, response: await Self.run(route, message, context: context, exposeErrorDetails: exposeErrorDetails))
    }

    /// Runs a synchronous CALL route in place, as its message is read, and returns the REPLY
    /// to send. `now` is the time the caller's deadline is checked against: a recent clock
    /// reading, so that running in place costs no clock read of its own.
    package func reply(
        to message: FerryMessage, synchronousHandler handler: FerrySynchronousHandler, context: FerryContext,
        checkedAt now: ContinuousClock.Instant, exposeErrorDetails: Bool
    ) -> FerryMessage {
        let response: FerryResponse
        do {
            try Self.checkDeadline(of: context, now: now)
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
        await Self.run(route, message, context: context, exposeErrorDetails: true).status
    }

    /// Runs a synchronous PUSH route in place, as its message is read; returns the outcome for
    /// the log. `now` is as in ``reply(to:synchronousHandler:context:checkedAt:exposeErrorDetails:)``.
    package func receivePush(
        _ message: FerryMessage, synchronousHandler handler: FerrySynchronousHandler, context: FerryContext, checkedAt now: ContinuousClock.Instant
    ) -> FerryStatus {
        do {
            try Self.checkDeadline(of: context, now: now)
            return try FerryDeadline.$current.withValue(context.deadline) { try handler(message, context) }.status
        } catch {
            return Self.response(for: error, message: message, context: context, exposeErrorDetails: true).status
        }
    }

    private static func run(_ route: FerryRouteHandler?, _ message: FerryMessage, context: FerryContext, exposeErrorDetails: Bool) async -> FerryResponse {
        do {
            guard !message.serviceMethod.isEmpty else {
                throw FerryStatus.badMessage("invalid service method for message")
            }
            guard let route else { throw FerryStatus.notFound(message.serviceMethod) }
            try checkDeadline(of: context, now: .now)
            let handler = route.asynchronous
            return try await FerryDeadline.$current.withValue(context.deadline) {
                try await handler(message, context)
            }
        } catch {
            return response(for: error, message: message, context: context, exposeErrorDetails: exposeErrorDetails)
        }
    }

    /// Refuses a call whose deadline has passed at `now`.
    private static func checkDeadline(of context: FerryContext, now: ContinuousClock.Instant) throws {
        if let deadline = context.deadline, deadline <= now {
            throw FerryStatus.deadlineExceeded("the caller's deadline passed before the call was handled")
        }
    }

    /// The response a handler's error becomes: a thrown status as it is, anything else 500.
    private static func response(for error: any Error, message: FerryMessage, context: FerryContext, exposeErrorDetails: Bool) -> FerryResponse {
        if let status = error as? FerryStatus {
            return FerryResponse(status: status, meta: context.replyMeta)
        }
        context.logger.error("handler failed", metadata: ["route": "\(message.serviceMethod)", "error": "\(error)"])
        let cause = exposeErrorDetails ? "\(error)" : ""
        return FerryResponse(status: FerryStatus.internalServerError(cause), meta: context.replyMeta)
    }

    private static func reply(to message: FerryMessage, response: consuming FerryResponse) -> FerryMessage {
        // Built in one go from the response's parts, which it gives up: no default message
        // made first and then overwritten field by field.
        let isOK = response.status.isOK
        return FerryMessage(
            type: .reply, seq: message.seq, status: response.status, meta: response.meta,
            bodyCodec: isOK ? response.bodyCodec : .none, body: isOK ? response.body : ByteBuffer(), filters: message.filters)
    }
}
