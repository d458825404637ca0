import Logging

extension FerryRouter {
    /// Runs the route of an inbound CALL and returns the REPLY to send: same seq, same filters,
    /// empty service method; an error reply has an empty body and codec 0.
    package func reply(to message: FerryMessage, context: FerryContext, exposeErrorDetails: Bool) async -> FerryMessage {
        var reply = FerryMessage(type: .reply, seq: message.seq, filters: message.filters)
        let response = await run(.call, message, context: context, exposeErrorDetails: exposeErrorDetails)
        reply.status = response.status
        reply.meta = response.meta
        if response.status.isOK {
            reply.bodyCodec = response.bodyCodec
            reply.body = response.body
        }
        return reply
    }

    /// Runs the route of an inbound PUSH; returns the outcome for the log (nothing is sent).
    package func receivePush(_ message: FerryMessage, context: FerryContext) async -> FerryStatus {
        await run(.push, message, context: context, exposeErrorDetails: true).status
    }

    private func run(_ kind: FerryRoute.Kind, _ message: FerryMessage, context: FerryContext, exposeErrorDetails: Bool) async -> FerryResponse {
        do {
            guard !message.serviceMethod.isEmpty else {
                throw FerryStatus.badMessage("invalid service method for message")
            }
            guard let handler = handler(for: kind, path: message.serviceMethod) else {
                throw FerryStatus.notFound(message.serviceMethod)
            }
            if let deadline = context.deadline, deadline <= .now {
                throw FerryStatus(.deadlineExceeded, "Deadline Exceeded", cause: "the caller's deadline passed before the call was handled")
            }
            return try await FerryDeadline.$current.withValue(context.deadline) {
                try await handler(message, context)
            }
        } catch let status as FerryStatus {
            return FerryResponse(status: status, meta: context.replyMeta)
        } catch {
            context.logger.error("handler failed", metadata: ["route": "\(message.serviceMethod)", "error": "\(error)"])
            let cause = exposeErrorDetails ? "\(error)" : ""
            return FerryResponse(status: FerryStatus(.internalServerError, "Internal Server Error", cause: cause), meta: context.replyMeta)
        }
    }
}
