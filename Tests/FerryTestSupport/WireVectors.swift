import FerryCore
import NIOCore

/// The normative vectors of the wire specification.
package enum WireVectors {
    package static func bytes(_ hex: String) -> [UInt8] {
        hex.split(whereSeparator: \.isWhitespace).map { UInt8($0, radix: 16)! }
    }

    package static let call = bytes("""
        00 00 00 3a 00 01 31 01 09 2f 6d 61 74 68 2f 61 64 64 00 06 63 6f 64 65 3d 30
        00 12 61 75 74 68 6f 72 3d 68 65 6e 72 79 6c 65 65 32 63 6e 6a 5b 31 2c 32 2c
        33 2c 34 2c 35 5d
        """)
    package static let reply = bytes("00 00 00 16 00 01 31 02 00 00 06 63 6f 64 65 3d 30 00 00 6a 31 35")
    package static let notFound = bytes("""
        00 00 00 2d 00 01 32 02 00 00 1f 63 6f 64 65 3d 34 30 34 26 6d 73 67 3d 4e 6f
        74 25 32 30 46 6f 75 6e 64 26 63 61 75 73 65 3d 00 00 00
        """)
    package static let push = bytes("""
        00 00 00 2e 00 01 33 03 0a 2f 6e 6f 74 65 2f 70 75 73 68 00 06 63 6f 64 65 3d 30
        00 03 6b 3d 76 6a 7b 22 6e 6f 74 65 22 3a 22 68 69 22 7d
        """)
    package static let gzipCall = bytes("""
        00 00 00 53 01 67 1f 8b 08 00 00 00 00 00 00 ff 62 34 64 e4 d4 cf 4d 2c c9 d0 4f
        4c 49 61 60 4b ce 4f 49 b5 35 60 10 4a 2c 2d c9 c8 2f b2 cd 48 cd 2b aa cc 49 4d
        35 4a ce cb 8a 36 d4 31 d2 31 d6 31 d1 31 8d 05 04 00 00 ff ff 2c a6 8c 6d 35 00
        00 00
        """)

    package static let callMessage = FerryMessage(
        type: .call, seq: 1, serviceMethod: "/math/add", meta: ["author": "henrylee2cn"],
        bodyCodec: .json, body: ByteBuffer(string: "[1,2,3,4,5]"))
    package static let replyMessage = FerryMessage(type: .reply, seq: 1, bodyCodec: .json, body: ByteBuffer(string: "15"))
    package static let notFoundMessage = FerryMessage(type: .reply, seq: 2, status: FerryStatus(.notFound, "Not Found"))
    package static let pushMessage = FerryMessage(
        type: .push, seq: 3, serviceMethod: "/note/push", meta: ["k": "v"], bodyCodec: .json,
        body: ByteBuffer(string: #"{"note":"hi"}"#))

    package static let pairs: [(FerryMessage, [UInt8])] = [
        (callMessage, call), (replyMessage, reply), (notFoundMessage, notFound), (pushMessage, push),
    ]
}
