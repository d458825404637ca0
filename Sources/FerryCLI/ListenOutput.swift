import FerryPush
import Foundation
import Synchronization

/// What `ferry listen` writes: each delivered message on standard output (`OFFSET  ROUTE  BODY`,
/// or one JSON object per line), and notices (where it resumes, messages lost, where to resume
/// next time) on standard error, so that standard output holds only messages.
///
/// A message's JSON object: `epoch`, `offset`, `route`, `codec`, `body`, `bodyEncoding` (`utf8`
/// when `body` is the body's text, `base64` when the body is not valid UTF-8) and `lost` (how
/// many messages before it were dropped by the mailbox's cap or time to live).
struct ListenOutput: Sendable {
    var format: OutputFormat

    private struct Line: Encodable {
        var epoch: String
        var offset: UInt64
        var route: String
        var codec: String
        var body: String
        var bodyEncoding: String
        var lost: UInt64
    }

    /// Writes one delivered message (and, in text form, the loss before it).
    func message(_ delivery: FerryDelivery) {
        let bytes = delivery.body.readableBytesView
        let text = String(validating: bytes, as: UTF8.self)
        switch format {
        case .json:
            let line = Line(
                epoch: delivery.epoch, offset: delivery.offset, route: delivery.route, codec: delivery.codec.description,
                body: text ?? Data(bytes).base64EncodedString(), bodyEncoding: text == nil ? "base64" : "utf8", lost: delivery.lost)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            // Strings and integers only: encoding cannot fail.
            printAtOnce(String(decoding: try! encoder.encode(line), as: UTF8.self))
        case .text:
            if delivery.lost > 0 { lost(delivery.lost, before: delivery.offset) }
            let body = text ?? "(hex) " + bytes.map { String(format: "%02x", $0) }.joined(separator: " ")
            printAtOnce("\(delivery.offset)  \(delivery.route)  \(body)")
        }
    }

    /// Tells that `count` messages before `offset` were dropped by the mailbox.
    func lost(_ count: UInt64, before offset: UInt64?) {
        let place = offset.map { " before offset \($0)" } ?? ""
        notice("\(count) message\(count == 1 ? "" : "s") lost\(place): the mailbox's cap or time to live dropped them")
    }

    /// Writes a line on standard error.
    func notice(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

/// Prints `line` and flushes standard output at once, so that a reader of a pipe sees each
/// message as it comes.
func printAtOnce(_ line: String) {
    print(line)
    fflush(nil)
}

/// How far `ferry listen` has got: messages printed, the last one, and whether the count was
/// reached. Shared between the delivery handler and the command.
final class ListenProgress: Sendable {
    struct State {
        var printed = 0
        var last: FerryStreamPosition?
        var lostReported: UInt64 = 0
        var toldEpochChange = false
    }

    let state = Mutex(State())
}
