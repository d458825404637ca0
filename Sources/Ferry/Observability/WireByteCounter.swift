import Metrics
import NIOCore

/// Counts the bytes a connection reads and writes at the socket (TLS records and WebSocket
/// frames included), as `ferry_wire_bytes_total`. It sits first in the pipeline of every
/// accepted and dialled connection of a peer with metrics.
final class WireByteCounter: ChannelDuplexHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let received: Counter
    private let sent: Counter

    init(_ metrics: PeerMetrics) {
        received = metrics.wireBytesIn
        sent = metrics.wireBytesOut
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received.increment(by: unwrapInboundIn(data).readableBytes)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        sent.increment(by: unwrapOutboundIn(data).readableBytes)
        context.write(data, promise: promise)
    }
}

extension FerryPeer {
    /// Puts a ``WireByteCounter`` first in `channel`'s pipeline when the peer records metrics.
    func countWireBytes(of channel: any Channel) throws {
        guard let metrics = instruments.metrics else { return }
        try channel.pipeline.syncOperations.addHandler(WireByteCounter(metrics), position: .first)
    }
}
