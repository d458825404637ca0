import NIOCore

/// The last handler of a session's pipeline: hands decoded messages to the session, and turns
/// protocol errors and disconnection into a closed session with a reason.
final class SessionHandler: ChannelInboundHandler {
    typealias InboundIn = FerryMessage

    let session: FerrySession

    init(session: FerrySession) { self.session = session }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        session.receive(unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        session.recordCloseReason(Self.describe(error))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        session.connectionClosed()
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
