import ArgumentParser
import Ferry
import FerryGateway
import Foundation
import Logging
import NIOCore

struct PushCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "push",
        abstract: "Push a message to users at least once, through a gateway's inner listener.",
        discussion: """
            Examples, with ferry gateway --inner 127.0.0.1:5030 --data ./data:
              ferry push 127.0.0.1:5030 '{"text":"hi"}' --user alice
              ferry push 127.0.0.1:5030 '"hello"' --user alice --user bob --route /news
              ferry push 127.0.0.1:5030 -d @message.json --user alice
              ferry push 127.0.0.1:5030 'plain text' --codec plain --user alice
            Calls /gateway/send, which returns once the message is stored in the gateway's mailbox \
            for every user, online or not, and prints where: stored for USER at EPOCH:OFFSET. \
            Clients receive it in order with ferry listen (or FerryPushReceiver, or ferry.js). \
            Exits 1 when the gateway refuses (405: it keeps no mailbox), 2 when it cannot be reached.
            """
    )

    @Argument(help: "The gateway's inner listener (its --inner address): HOST:PORT or unix:PATH.")
    var address: String

    @Argument(help: "The message, sent as is: JSON by default (a string needs its quotes, '\"hi\"'); or give it with -d.")
    var message: String?

    @Option(
        name: [.customShort("d"), .customLong("data")],
        help: ArgumentHelp("The message: TEXT as is, @FILE from a file, @- from standard input.", valueName: "body"))
    var data: String?

    @Option(help: ArgumentHelp("A user to push to; repeat for more.", valueName: "name"))
    var user: [String] = []

    @Option(help: "The route the users' clients receive the message on.")
    var route: String = "/chat/msg"

    @Option(help: "The message's codec: json (checked before it is sent), plain, or any codec ferry call takes.")
    var codec: String = "json"

    // Unconditional, so that `--timeout -1s` reaches the check below instead of reading as a flag.
    @Option(parsing: .unconditional, help: "How long to wait for the gateway to store it, e.g. 5s.")
    var timeout: String = "5s"

    @Option(help: "Output: text (a line per user) or json (the gateway's reply, an array of {user, epoch, offset}).")
    var output: OutputFormat = .text

    @OptionGroup var logging: LoggingOptions

    func validate() throws {
        guard let target = FerryAddress(address), !Self.isWebSocket(target) else {
            throw ValidationError("address must be the gateway's inner listener, HOST:PORT or unix:PATH, got \(address)")
        }
        if user.isEmpty { throw ValidationError("name at least one user: --user NAME (repeatable)") }
        if user.contains(where: \.isEmpty) { throw ValidationError("--user needs a name") }
        if !route.hasPrefix("/") { throw ValidationError("--route must start with /, got \(route)") }
        if message != nil && data != nil { throw ValidationError("give the message as an argument or with -d, not both") }
        if message == nil && data == nil { throw ValidationError("give the message as an argument, or with -d") }
        if let path = data?.bodyFilePath, path != "-", !FileManager.default.isReadableFile(atPath: path) {
            throw ValidationError("-d @\(path): no readable file at \(path)")
        }
        _ = try codecID()
        _ = try durationOption(timeout, named: "--timeout")
    }

    func run() async throws {
        logging.bootstrap()
        let body: ByteBuffer
        do {
            body = try readBody(message: message, data: data)
            try checkJSON(body)
        } catch let failure as CallFailure {
            FileHandle.standardError.write(Data("Error: \(failure)\n".utf8))
            throw ExitCode(2)
        }
        var options = FerryCallOptions(timeout: try durationOption(timeout, named: "--timeout"), codec: try codecID())
        // The reply is JSON whatever the message's codec (a plain reply could not hold it).
        options.acceptCodec = .json
        for name in user { options.meta.add(FerryGateway.MetaKey.user, name) }
        options.meta.add(FerryGateway.MetaKey.pushRoute, route)
        let peer = FerryPeer(configuration: .init(dialTimeout: options.timeout ?? .seconds(5)), logger: Logger(label: "ferry.push"))
        try await closing(peer.close) {
            let session: FerrySession
            do {
                session = try await peer.dial(FerryAddress(address)!)
            } catch let status as FerryStatus {
                FileHandle.standardError.write(Data("Error: dial failed: \(status.explained)\n".utf8))
                throw ExitCode(2)
            }
            try await closing(session.close) {
                let reply: FerryReply
                do {
                    reply = try await session.call(FerryGateway.InnerRoute.send, body: body, codec: options.codec ?? .json, options: options)
                } catch let status as FerryStatus {
                    try refuse(status)
                }
                guard reply.status.code == .ok else { try refuse(reply.status) }
                report(try reply.decode([FerryGateway.Stored].self))
            }
        }
    }

    /// Prints where each user's copy was stored.
    private func report(_ stored: [FerryGateway.Stored]) {
        guard output == .text else {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            // Strings and integers only: encoding cannot fail.
            print(String(decoding: try! encoder.encode(stored), as: UTF8.self))
            return
        }
        for record in stored {
            print("stored for \(record.user) at \(record.epoch):\(record.offset)")
        }
    }

    /// Explains a refusal on standard error and exits 1.
    private func refuse(_ status: FerryStatus) throws -> Never {
        let explained = status.explained
        var lines = ["Error: \(FerryGateway.InnerRoute.send) failed: \(explained)"]
        switch status.code {
        case .messageTypeNotAllowed:
            lines.append("The gateway keeps no mailbox, so at-least-once pushes are off: start it with --data DIR (or --memory-mailbox).")
        case .notFound:
            lines.append("\(address) does not serve \(FerryGateway.InnerRoute.send): is it a gateway's --inner address?")
        case .unauthorized:
            lines.append("\(address) asks for a token: is it the gateway's socket listener? Push to its --inner address.")
        default:
            break
        }
        FileHandle.standardError.write(Data((lines.joined(separator: "\n") + "\n").utf8))
        throw ExitCode.failure
    }

    /// Refuses a JSON message that is not JSON, which its clients could not decode.
    private func checkJSON(_ body: ByteBuffer) throws {
        guard try codecID() == .json else { return }
        guard (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView), options: .fragmentsAllowed)) != nil else {
            throw CallFailure("the message is not JSON: quote a string ('\"hello\"'), or send text with --codec plain")
        }
    }

    private func codecID() throws -> FerryCodecID {
        try resolveCodecOption(codec)
    }

    private static func isWebSocket(_ address: FerryAddress) -> Bool {
        if case .webSocket = address { true } else { false }
    }
}

/// The codec a `--codec` option names: a codec's name (json, plain, protobuf, form) or a
/// single character id.
func resolveCodecOption(_ text: String) throws -> FerryCodecID {
    if let codec = FerryCodecRegistry.standard.codec(named: text) { return codec.id }
    if text.unicodeScalars.count == 1, let scalar = text.unicodeScalars.first, scalar.isASCII {
        return FerryCodecID(scalar)
    }
    throw ValidationError("unknown codec \(text)")
}

/// A body given as an argument, or with `-d` (text, `@FILE`, or `@-` for standard input).
func readBody(message: String?, data: String?) throws -> ByteBuffer {
    guard let data else { return ByteBuffer(string: message ?? "") }
    guard let path = data.bodyFilePath else { return ByteBuffer(string: data) }
    if path == "-" { return ByteBuffer(bytes: try FileHandle.standardInput.readToEnd() ?? Data()) }
    do {
        return ByteBuffer(bytes: try Data(contentsOf: URL(fileURLWithPath: path)))
    } catch {
        throw CallFailure("-d @\(path): cannot read \(path): \(error.localizedDescription)")
    }
}

extension String {
    /// The path of a curl-style `@path` body (`-` for standard input), nil for a literal body.
    var bodyFilePath: String? {
        hasPrefix("@") ? String(dropFirst()) : nil
    }
}
