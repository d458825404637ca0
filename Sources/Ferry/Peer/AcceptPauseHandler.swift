import NIOCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sits on a listening channel: when accepting fails for lack of resources (no file
/// descriptors, no buffers, no memory), stops accepting for `pause`, then resumes.
///
/// Turning `autoRead` off is what stops the event loop from watching the socket; NIO's
/// `AcceptBackoffHandler` only delays reads the pipeline asks for, and after a failed first
/// accept the channel asks for none, so the loop would spin on a socket that stays readable.
final class AcceptPauseHandler: ChannelInboundHandler {
    typealias InboundIn = any Channel
    typealias InboundOut = any Channel

    private let pause: TimeAmount
    private var paused = false

    init(pause: TimeAmount = .seconds(1)) { self.pause = pause }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? IOError, [EMFILE, ENFILE, ENOBUFS, ENOMEM].contains(error.errnoCode), !paused {
            paused = true
            try? context.channel.syncOptions?.setOption(.autoRead, value: false)
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: pause) {
                let (handler, context) = loopBound.value
                handler.paused = false
                try? context.channel.syncOptions?.setOption(.autoRead, value: true)
            }
        }
        context.fireErrorCaught(error)
    }
}

@available(*, unavailable)
extension AcceptPauseHandler: Sendable {}
