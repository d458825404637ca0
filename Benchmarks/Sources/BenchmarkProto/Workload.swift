import SwiftProtobuf

/// The shared benchmark workload (`shared/bench/BENCH.md`): one `BenchmarkMessage` filled in the
/// way the published Go RPC benchmarks fill it, 581 bytes encoded.
public enum Workload {
    /// The 54-byte UTF-8 string every string field carries.
    public static let text = "许多往事在眼前一幕一幕，变的那麼模糊"
    /// The encoded size of ``message``.
    public static let encodedSize = 581
    /// The CALL route of the Ferry server.
    public static let route = "/bench/say"

    /// Every string field set to ``text``, every integer field to 100000, every bool to true,
    /// `field5` empty.
    public static var message: Bench_BenchmarkMessage {
        var m = Bench_BenchmarkMessage()
        m.field1 = text
        m.field9 = text
        m.field18 = text
        m.field80 = true
        m.field81 = true
        m.field2 = 100000
        m.field3 = 100000
        m.field280 = 100000
        m.field6 = 100000
        m.field22 = 100000
        m.field4 = text
        m.field59 = true
        m.field7 = text
        m.field16 = 100000
        m.field130 = 100000
        m.field12 = true
        m.field17 = true
        m.field13 = true
        m.field14 = true
        m.field104 = 100000
        m.field100 = 100000
        m.field101 = 100000
        m.field102 = text
        m.field103 = text
        m.field29 = 100000
        m.field30 = true
        m.field60 = 100000
        m.field271 = 100000
        m.field272 = 100000
        m.field150 = 100000
        m.field23 = 100000
        m.field24 = true
        m.field25 = 100000
        m.field78 = true
        m.field67 = 100000
        m.field68 = 100000
        m.field128 = 100000
        m.field129 = text
        m.field131 = 100000
        return m
    }

    /// ``message`` encoded.
    public static let encoded: [UInt8] = try! message.serializedBytes()

    /// What every server's handler does: `field1 = "OK"`, `field2 = 100`.
    public static func answer(_ request: Bench_BenchmarkMessage) -> Bench_BenchmarkMessage {
        var reply = request
        reply.field1 = "OK"
        reply.field2 = 100
        return reply
    }

    /// Stops the process when the message does not encode to 581 bytes: every figure would
    /// then measure another workload.
    public static func checkEncodedSize() {
        let text = Array(Self.text.utf8)
        precondition(text.count == 54, "the workload string is \(text.count) bytes, not 54")
        precondition(
            encoded.count == encodedSize,
            "BenchmarkMessage encodes to \(encoded.count) bytes, not \(encodedSize)")
    }
}
