import FerryCore
import NIOCore

/// A form body type for the form decoder to chew on.
private struct FormSample: Codable {
    var name: String
    var count: Int?
    var tags: [String]
    var ratio: Double?
    var enabled: Bool?
}

private let proto = FerryRawProto(maximumFrameSize: 1 << 20)

/// libFuzzer entry point: feeds arbitrary bytes to the frame and message decoders.
///
/// Properties checked: decoding never crashes; a decoded message re-encodes, and decoding that
/// again gives the same message (unless the re-encoding is refused for a size limit, which
/// lossy UTF-8 repair of a service method can cause); bodies given to the form codec never crash.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    var buffer = ByteBuffer(bytes: UnsafeBufferPointer(start: data, count: size))
    while true {
        let message: FerryMessage
        do {
            guard let decoded = try proto.decodeMessage(from: &buffer) else { break }
            message = decoded
        } catch {
            break
        }
        checkRoundTrip(message)
        _ = try? FerryCodecRegistry.standard.decode(FormSample.self, from: message.body, codec: .form)
    }
    return 0
}

private func checkRoundTrip(_ message: FerryMessage) {
    var encoded = ByteBuffer()
    do {
        try proto.encodeMessage(message, into: &encoded)
    } catch let error as FerryProtocolError {
        switch error {
        case .fieldTooLong, .frameTooLarge: return
        default: fatalError("a decoded message failed to re-encode: \(error)")
        }
    } catch {
        fatalError("a decoded message failed to re-encode: \(error)")
    }
    let again: FerryMessage?
    do {
        again = try proto.decodeMessage(from: &encoded)
    } catch {
        fatalError("a re-encoded message failed to decode: \(error)")
    }
    guard again == message else {
        fatalError("round trip changed the message:\n\(message)\n\(String(describing: again))")
    }
}

@_silgen_name("LLVMFuzzerRunDriver")
private func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

/// The executable's entry point (SwiftPM names it after the target): hands control to libFuzzer.
@_cdecl("FerryFrameFuzzer_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var argc = argc
    var argv = argv
    return runFuzzerDriver(&argc, &argv) { data, size in fuzz(data, size) }
}
