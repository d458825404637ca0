import Ferry
import Foundation
import Logging
import NIOCore
import Testing

@Suite("Observability")
struct ObservabilityTests {
    /// Whether `text` looks like a cost, e.g. `0.412ms`.
    static func isCost(_ text: String?) -> Bool {
        guard let text else { return false }
        return text.range(of: #"^[0-9]+\.[0-9]{3}ms$"#, options: .regularExpression) != nil
    }

    @Test("one call logs call-out on the client and call-in on the server at debug, with route, cost and status")
    func debugLines() async throws {
        let clientLogs = LogStore()
        let serverLogs = LogStore()
        // How long the call takes is not the subject here: a busy machine must not turn the debug
        // lines into slow-call warnings.
        let patient = FerryPeer.Configuration(slowCallThreshold: .seconds(3600))
        let pair = try await makePair(
            server: patient, client: patient,
            serverLogger: serverLogs.logger(label: "server", level: .debug),
            clientLogger: clientLogs.logger(label: "client", level: .debug))
        #expect(try await pair.session.call("/math/add", AddArgs(a: 1, b: 2), as: Int.self) == 3)

        let callOut = await clientLogs.waitFor { $0.message == "call-out" }
        let out = try #require(callOut, "client lines: \(clientLogs.all)")
        #expect(out.level == .debug)
        #expect(out.metadata["route"] == "/math/add")
        #expect(out.metadata["status"] == "0")
        #expect(Self.isCost(out.metadata["cost"]), "cost: \(String(describing: out.metadata["cost"]))")
        #expect(out.metadata["remote"] == pair.session.remoteAddress)
        #expect(out.metadata["session"] == pair.session.id)
        #expect(out.metadata["seq"] != nil && Int32(out.metadata["seq"] ?? "") != nil, "the seq is metadata, not text")
        #expect(out.message == "call-out", "route, seq and session are metadata, not in the message")

        let callIn = await serverLogs.waitFor { $0.message == "call-in" }
        let inbound = try #require(callIn, "server lines: \(serverLogs.all)")
        #expect(inbound.level == .debug)
        #expect(inbound.metadata["route"] == "/math/add")
        #expect(inbound.metadata["seq"] == out.metadata["seq"], "the server logs the seq the client sent")
        #expect(inbound.metadata["session"] != nil)
        #expect(inbound.metadata["status"] == "0")
        #expect(Self.isCost(inbound.metadata["cost"]), "cost: \(String(describing: inbound.metadata["cost"]))")

        // A failing call logs its status code.
        _ = try await pair.session.callForReply("/no/such/route", ())
        let failed = await clientLogs.waitFor { $0.message == "call-out" && $0.metadata["route"] == "/no/such/route" }
        #expect(failed?.metadata["status"] == "404")
        #expect(!clientLogs.all.contains { $0.level >= .warning && $0.message.contains("slow") }, "a call under the threshold is not slow")
        await pair.close()
    }

    @Test("a call slower than the slow-call threshold is logged at warning with \"slow\", on both sides")
    func slowCallWarning() async throws {
        let clientLogs = LogStore()
        let serverLogs = LogStore()
        let threshold = FerryPeer.Configuration(slowCallThreshold: .milliseconds(50))
        let pair = try await makePair(
            server: threshold, client: threshold,
            // Info level: the warning must appear even when debug lines are off.
            serverLogger: serverLogs.logger(label: "server", level: .info),
            clientLogger: clientLogs.logger(label: "client", level: .info)
        ) { router in
            router.call("/sleepy") { (_: Void, _: FerryContext) -> Int in
                try await Task.sleep(for: .milliseconds(200))
                return 1
            }
        }
        #expect(try await pair.session.call("/sleepy", (), as: Int.self) == 1)

        let clientSlow = await clientLogs.waitFor { $0.level == .warning && $0.message.contains("slow") }
        #expect(clientSlow?.metadata["route"] == "/sleepy", "client lines: \(clientLogs.all)")
        let serverSlow = await serverLogs.waitFor { $0.level == .warning && $0.message.contains("slow") }
        #expect(serverSlow?.metadata["route"] == "/sleepy", "server lines: \(serverLogs.all)")
        #expect(clientSlow?.metadata["status"] == "0")
        #expect(serverSlow.map { Self.isCost($0.metadata["cost"]) } == true)
        await pair.close()
    }

    @Test("a reply's cost is positive and bounded by the wall-clock time of the call")
    func replyCost() async throws {
        let pair = try await makePair()
        let start = ContinuousClock.now
        let reply = try await pair.session.callForReply("/math/add", AddArgs(a: 5, b: 6))
        let elapsed = start.duration(to: .now)
        #expect(try reply.decode(Int.self) == 11)
        #expect(reply.cost > .zero)
        #expect(reply.cost <= elapsed)
        await pair.close()
    }
}
