@testable import Ferry
import NIOCore
import NIOEmbedded
import NIOTestUtils
import FerryTestSupport
import Testing

@Suite("Frame decoder")
struct DecoderTests {
    @Test("the decoder yields the vectors whether bytes come one at a time, all at once or in between")
    func verifier() throws {
        let pairs = WireVectors.pairs.map { message, bytes in (ByteBuffer(bytes: bytes), [message]) }
        try ByteToMessageDecoderVerifier.verifyDecoder(inputOutputPairs: pairs) {
            FerryMessageDecoder(proto: FerryRawProto())
        }
    }

    @Test("several frames in one read decode in order")
    func manyFramesInOneRead() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FerryMessageDecoder(proto: FerryRawProto())))
        var buffer = ByteBuffer()
        for (_, bytes) in WireVectors.pairs { buffer.writeBytes(bytes) }
        try channel.writeInbound(buffer)
        for (message, _) in WireVectors.pairs {
            #expect(try channel.readInbound(as: FerryMessage.self) == message)
        }
        #expect(try channel.finish().isClean)
    }

    @Test("a decoder with a delivery closure hands it every message in order and fires none down the pipeline")
    func deliveredDirectly() throws {
        final class Received { var messages: [FerryMessage] = [] }
        let received = Received()
        let decoder = FerryMessageDecoder(proto: FerryRawProto()) { message, _ in received.messages.append(message) }
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(decoder))
        var buffer = ByteBuffer()
        for (_, bytes) in WireVectors.pairs { buffer.writeBytes(bytes) }
        try channel.writeInbound(buffer)
        #expect(received.messages == WireVectors.pairs.map(\.0))
        #expect(try channel.readInbound(as: FerryMessage.self) == nil)
        #expect(try channel.finish().isClean)
    }

    @Test("a connection that ends mid-frame is reported")
    func endsMidFrame() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(FerryMessageDecoder(proto: FerryRawProto())))
        try channel.writeInbound(ByteBuffer(bytes: WireVectors.call.prefix(20)))
        #expect(throws: FerryProtocolError.incompleteFrameAtClose(bufferedBytes: 20)) {
            _ = try channel.finish()
        }
    }
}
