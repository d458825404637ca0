import ArgumentParser
import Ferry
import Foundation
import NIOCore

/// How `ferry call` prints what happened.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    /// Readable lines.
    case text
    /// One JSON object, for scripts.
    case json
}

/// What one `ferry call` ended with: a reply, a failure status, or a push sent; and which node
/// answered. Printed as readable lines or as one JSON object.
///
/// In JSON, fields that do not apply are left out: `body`, `bodyEncoding`, `codec` and
/// `costMilliseconds` exist only for a reply, `pushed` only for a push. `bodyEncoding` is
/// `utf8` when `body` is the body's text, `base64` when the body is not valid UTF-8.
struct CallReport: Encodable {
    struct Status: Encodable {
        var code: Int32
        var message: String
        var cause: String
        /// `remote`, `local` or `local, after sending`.
        var origin: String
    }

    struct MetaPair: Encodable {
        var key: String
        var value: String
    }

    struct Node: Encodable {
        var address: String
        /// The service name the node was found under, when the call named a service.
        var service: String?
    }

    var route: String
    var status: Status
    var meta: [MetaPair] = []
    var codec: String?
    var body: String?
    var bodyEncoding: String?
    var costMilliseconds: Double?
    var pushed: Bool?
    var node: Node?
    /// The status as ``FerryStatus`` prints it, for the text form.
    private var statusText: String

    private enum CodingKeys: String, CodingKey {
        case route, status, meta, codec, body, bodyEncoding, costMilliseconds, pushed, node
    }

    /// A reply, OK or not.
    init(route: String, reply: FerryReply, node: Node?) {
        self.route = route
        let status = reply.status.explained
        self.status = Status(status)
        self.statusText = status.description
        self.meta = reply.meta.map { MetaPair(key: $0.key, value: $0.value) }
        self.codec = reply.bodyCodec.description
        let bytes = reply.body.readableBytesView
        if let text = String(validating: bytes, as: UTF8.self) {
            (body, bodyEncoding) = (text, "utf8")
        } else {
            (body, bodyEncoding) = (Data(bytes).base64EncodedString(), "base64")
        }
        self.costMilliseconds = milliseconds(reply.cost)
        self.node = node
    }

    /// A call or push that failed without a reply, or a dial that failed.
    init(route: String, failure: FerryStatus, node: Node?) {
        self.route = route
        let status = failure.explained
        self.status = Status(status)
        self.statusText = status.description
        self.node = node
    }

    /// A push that was sent.
    init(route: String, pushedTo node: Node?) {
        self.route = route
        self.status = Status(FerryStatus.ok)
        self.statusText = FerryStatus.ok.description
        self.pushed = true
        self.node = node
    }

    /// The report as one line of JSON.
    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Every field is a string, a number or a Bool: encoding cannot fail.
        return String(decoding: try! encoder.encode(self), as: UTF8.self)
    }

    /// The report as readable lines; `showsNode` adds which node answered.
    func text(showsNode: Bool) -> String {
        var lines: [String] = []
        if pushed == true {
            lines.append("pushed \(route)")
        } else if codec == nil {
            lines.append("status: \(statusText)")
        } else {
            lines.append("status: \(status.code == 0 ? "OK" : statusText)")
            lines.append("meta: \(meta.isEmpty ? "(none)" : meta.map { "\($0.key)=\($0.value)" }.joined(separator: "&"))")
            lines.append("codec: \(codec ?? "")")
            if bodyEncoding == "base64", let body, let bytes = Data(base64Encoded: body) {
                lines.append("body (hex): \(bytes.map { String(format: "%02x", $0) }.joined(separator: " "))")
            } else {
                lines.append("body: \(body ?? "")")
            }
            if let costMilliseconds { lines.append("cost: \(costMilliseconds) ms") }
        }
        if showsNode, let node { lines.append("node: \(node.address)\(node.service.map { " (service \($0))" } ?? "")") }
        return lines.joined(separator: "\n")
    }
}

extension CallReport.Status {
    init(_ status: FerryStatus) {
        self.init(code: status.code.rawValue, message: status.message, cause: status.cause, origin: status.origin.description)
    }
}
