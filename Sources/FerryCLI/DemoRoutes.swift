import Ferry
import Foundation
import NIOCore

/// Arguments of `/math/add`.
struct AddArguments: Codable, Sendable {
    var a: Double
    var b: Double
}

/// The routes of the demo server, also served by `ferry serve`.
enum DemoRoutes {
    /// The status code `/fail` answers with.
    static let failureCode: FerryStatus.Code = 1234

    static func install(on router: FerryRouter) {
        // Replies with the same body and codec, and copies the request meta into the reply meta.
        router.addRoute(.call, "/echo") { message, _ in
            FerryResponse(meta: message.meta, bodyCodec: message.bodyCodec, body: message.body)
        }
        router.call("/math/add") { (args: AddArguments, _) in
            let sum = args.a + args.b
            return sum.rounded() == sum && abs(sum) < 1e15 ? AnyNumber.integer(Int64(sum)) : .real(sum)
        }
        router.call("/fail") { (_: Void, _) -> Void in
            throw FerryStatus(failureCode, "this route always fails", cause: "demo")
        }
        router.call("/slow") { (milliseconds: Int, _) -> String in
            try await Task.sleep(for: .milliseconds(min(max(milliseconds, 0), 60_000)))
            return "slept \(milliseconds)ms"
        }
        router.call("/process") { (_: Void, _) in
            Int(ProcessInfo.processInfo.processIdentifier)
        }
        router.push("/chat/say") { (text: String, context) in
            context.logger.notice("chat", metadata: ["from": "\(context.session.id)", "text": "\(text)"])
        }
    }
}

/// A JSON number that prints as an integer when it is one (`3`, not `3.0`).
enum AnyNumber: Encodable, Sendable {
    case integer(Int64)
    case real(Double)

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .integer(let value): try container.encode(value)
        case .real(let value): try container.encode(value)
        }
    }
}
