import NIOCore

/// Turns inbound bytes into ``FerryMessage``s with a ``FerryProto``. Wrap it in a
/// `ByteToMessageHandler` at the front of a pipeline.
public struct FerryMessageDecoder: ByteToMessageDecoder {
    /// Decoded messages.
    public typealias InboundOut = FerryMessage

    private let proto: any FerryProto
    /// Where decoded messages go instead of down the pipeline, if set.
    private let deliver: ((FerryMessage, ChannelHandlerContext) -> Void)?

    /// Creates a decoder for `proto`; decoded messages go to the next handler.
    public init(proto: any FerryProto) {
        self.proto = proto
        self.deliver = nil
    }

    /// Creates a decoder for `proto` that hands each decoded message to `deliver`, with the
    /// decoder's context, instead of firing it down the pipeline: the message is not boxed for
    /// the trip to the next handler.
    init(proto: any FerryProto, deliver: @escaping (FerryMessage, ChannelHandlerContext) -> Void) {
        self.proto = proto
        self.deliver = deliver
    }

    /// Decodes as many whole messages as `buffer` holds.
    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let message = try proto.decodeMessage(from: &buffer) else { return .needMoreData }
        if let deliver {
            deliver(message, context)
        } else {
            context.fireChannelRead(Self.wrapInboundOut(message))
        }
        return .continue
    }

    /// Decodes what is left at the end of the stream; an incomplete frame is an error.
    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        if seenEOF && buffer.readableBytes > 0 {
            let buffered = buffer.readableBytes
            buffer.moveReaderIndex(forwardBy: buffered)
            throw FerryProtocolError.incompleteFrameAtClose(bufferedBytes: buffered)
        }
        return .needMoreData
    }
}
