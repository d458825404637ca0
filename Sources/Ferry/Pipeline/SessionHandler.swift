import NIOCore

/// The last handler of a session's pipeline: hands decoded messages to the session, answers
/// heartbeats, and turns protocol errors, time limits and disconnection into a closed session
/// with a reason.
final class SessionHandler: ChannelInboundHandler {
    typealias InboundIn = FerryMessage

    let session: FerrySession
    /// The pipeline's encoder, which takes the replies of this connection's handlers directly.
    let replies: MessageEncoderHandler
    /// The connection's clock readings, which give each message its times.
    let clock: ConnectionClock

    init(session: FerrySession, replies: MessageEncoderHandler, clock: ConnectionClock) {
        self.session = session
        self.replies = replies
        self.clock = clock
    }

    /// Handles one decoded message. The session's decoder calls this directly, with its own
    /// context, so that messages are not boxed for the trip down the pipeline (none reach this
    /// handler as reads).
    func receive(_ message: FerryMessage, context: ChannelHandlerContext) {
        if message.serviceMethod == FerryPeer.Heartbeat.route, message.type == .call || message.type == .push {
            if let period = session.answerHeartbeat(message, on: context.channel) {
                context.triggerUserOutboundEvent(HeartbeatAnnounced(period: period), promise: nil)
            }
            return
        }
        if message.serviceMethod == FerryPeer.goAwayRoute, message.type == .push {
            session.leaveConnection(ObjectIdentifier(context.channel))
            return
        }
        session.receive(message, clock: clock, from: context.channel, replies: replies)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event as? SessionTimerEvent {
        case .heartbeatDue:
            session.sendHeartbeat()
        case .limitPassed(let reason):
            session.recordCloseReason(reason)
            session.logger.info("closing session", metadata: ["reason": "\(reason)"])
            context.close(promise: nil)
        case nil:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        session.writabilityChanged(context.channel)
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let reason = Self.describe(error)
        session.recordCloseReason(reason)
        session.logger.info("closing session", metadata: ["reason": "\(reason)"])
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        session.connectionClosed(context.channel)
        context.fireChannelInactive()
    }

    private static func describe(_ error: any Error) -> String {
        if let error = error as? ByteToMessageDecoderError,
            case .dataReceivedInErrorState(let inner, _) = error
        {
            return "protocol error: \(inner)"
        }
        if error is FerryProtocolError { return "protocol error: \(error)" }
        return "\(error)"
    }
}

@available(*, unavailable)
extension SessionHandler: Sendable {}
