import FerryMicro
import FerryTestSupport
import NIOCore
import SwiftProtobuf
import Synchronization
import Testing

/// The calls whose argument and reply are SwiftProtobuf messages take overloads that know the
/// message types at compile time. They must still use whatever codec the peer has under `p`.
@Suite("Protobuf message calls", .timeLimit(.minutes(1)), .runsFerryClients)
struct ProtobufCallTests {
    /// A node serving `/echo` (a protobuf message back with `!` appended), `/bytes` (the body
    /// as received) and PUSH `/recorded` (records the message), with `codecs`.
    static func node(codecs: FerryCodecRegistry, notes: Notes) async throws -> TestNode {
        try await TestNode.start("p", routes: ["/echo", "/bytes", "/recorded"], configuration: FerryPeer.Configuration(codecs: codecs)) { router in
            router.call("/echo") { (value: Google_Protobuf_StringValue, _) in Google_Protobuf_StringValue(value.value + "!") }
            router.call("/bytes") { (body: ByteBuffer, _) in body }
            router.push("/recorded") { (value: Google_Protobuf_StringValue, _) in notes.append(value.value) }
        }
    }

    final class Notes: Sendable {
        private let values = Mutex<[String]>([])
        func append(_ value: String) { values.withLock { $0.append(value) } }
        var all: [String] { values.withLock { $0 } }
    }

    @Test("sessions and FerryClient send, answer and read protobuf messages with the codec registered under p",
          arguments: [false, true])
    func registeredCodec(tagged: Bool) async throws {
        let codecs = tagged ? TaggedProtobufCodec.registry : .standard
        let notes = Notes()
        let node = try await Self.node(codecs: codecs, notes: notes)
        let peer = makeClientPeer(FerryPeer.Configuration(defaultCodec: .protobuf, codecs: codecs))
        let client = runningClient(registry: FerryStaticRegistry(nodes: [node.node]), peer: peer)
        let session = try await peer.dial(node.node.address)
        let request = Google_Protobuf_StringValue("hi")
        let serialized: [UInt8] = try request.serializedBytes()
        let expectedBody = ByteBuffer(bytes: (tagged ? [TaggedProtobufCodec.tag] : []) + serialized)

        #expect(try await session.call("/echo", request, as: Google_Protobuf_StringValue.self).value == "hi!")
        #expect(try await client.call("/echo", request, as: Google_Protobuf_StringValue.self).value == "hi!")
        // What the message overloads put on the wire, and what a typed route answers.
        #expect(try await session.callForReply("/bytes", request).body == expectedBody)
        #expect(try await client.callForReply("/bytes", request).body == expectedBody)
        let answered = try await session.call("/echo", body: expectedBody, codec: FerryCodecID.protobuf, options: FerryCallOptions())
        let answeredBytes: [UInt8] = try Google_Protobuf_StringValue("hi!").serializedBytes()
        #expect(Array(answered.body.readableBytesView) == (tagged ? [TaggedProtobufCodec.tag] : []) + answeredBytes)
        // A body in the other codec's form is refused, so the codec in use is the registered one.
        let other = try (tagged ? FerryCodecRegistry.standard : TaggedProtobufCodec.registry).encode(request, codec: .protobuf)
        let refused = try await session.call("/echo", body: other, codec: FerryCodecID.protobuf, options: FerryCallOptions())
        #expect(refused.status.code == FerryStatus.Code.badMessage)

        try await session.push("/recorded", Google_Protobuf_StringValue("a"))
        try await client.push("/recorded", Google_Protobuf_StringValue("b"))
        #expect(await eventually { notes.all.sorted() == ["a", "b"] })

        await client.close()
        await peer.close()
        await node.stop()
    }
}
