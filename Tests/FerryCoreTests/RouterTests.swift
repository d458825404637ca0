import FerryTestSupport
import Logging
import NIOCore
import SwiftProtobuf
import Synchronization
import Testing

@testable import FerryCore

/// A session that only records what handlers send back through it.
final class RecordingSession: FerrySessionProtocol {
    let remoteAddress = "127.0.0.1:1"
    let codecs: FerryCodecRegistry
    let defaultCodec = FerryCodecID.json
    private let storedID = Mutex("127.0.0.1:1")
    var id: String { storedID.withLock { $0 } }
    func setID(_ newID: String) { storedID.withLock { $0 = newID } }
    nonisolated(nonsending) func call(_ serviceMethod: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws -> FerryReply {
        throw FerryStatus(.connectionClosed, "not connected")
    }
    nonisolated(nonsending) func push(_ serviceMethod: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws {}
    func close() async {}

    init(codecs: FerryCodecRegistry = .standard) { self.codecs = codecs }
}

private struct Add: Codable, Sendable {
    var a: Int
    var b: Int
}

/// Records the order middleware layers run in.
private struct Tracing: FerryMiddleware {
    let name: String
    let trail: Trail
    func handle(_ message: FerryMessage, context: FerryContext, next: FerryHandler) async throws -> FerryResponse {
        trail.append("\(name)>")
        var response = try await next(message, context)
        trail.append("<\(name)")
        response.meta.add("via", name)
        return response
    }
}

final class Trail: Sendable {
    private let steps = Mutex<[String]>([])
    func append(_ step: String) { steps.withLock { $0.append(step) } }
    var all: [String] { steps.withLock { $0 } }
}

@Suite("Router")
struct RouterTests {
    let session = RecordingSession()

    private func call(_ router: FerryRouter, _ route: String, body: String, codec: FerryCodecID = .json, meta: FerryMeta = [:]) async -> FerryMessage {
        let message = FerryMessage(type: .call, seq: 7, serviceMethod: route, meta: meta, bodyCodec: codec, body: ByteBuffer(string: body), filters: [.gzip])
        let context = FerryContext(session: session, message: message, logger: Logger(label: "test"))
        return await router.freeze().reply(to: message, context: context, exposeErrorDetails: false)
    }

    @Test("a typed call decodes its arguments and encodes its reply in the request codec")
    func typedCall() async {
        let router = FerryRouter()
        router.call("/math/add") { (args: Add, _) in args.a + args.b }
        let reply = await call(router, "/math/add", body: #"{"a":1,"b":2}"#)
        #expect(reply.type == .reply && reply.seq == 7 && reply.serviceMethod.isEmpty)
        #expect(reply.filters == [.gzip])
        #expect(reply.status == .ok && reply.bodyCodec == .json && String(buffer: reply.body) == "3")
    }

    @Test("a typed protobuf route uses the session's codec under p, Ferry's own or a replacement")
    func protobufRoute() async throws {
        let router = FerryRouter()
        router.call("/echo") { (value: Google_Protobuf_StringValue, _) in
            var reply = value
            reply.value += "!"
            return reply
        }
        var request = Google_Protobuf_StringValue()
        request.value = "hi"
        var replaced = FerryCodecRegistry.standard
        replaced.register(TaggedProtobufCodec())
        for codecs in [FerryCodecRegistry.standard, replaced] {
            let session = RecordingSession(codecs: codecs)
            let message = FerryMessage(type: .call, seq: 7, serviceMethod: "/echo", bodyCodec: .protobuf, body: try codecs.encode(request, codec: .protobuf))
            let context = FerryContext(session: session, message: message, logger: Logger(label: "test"))
            let reply = await router.freeze().reply(to: message, context: context, exposeErrorDetails: false)
            #expect(reply.status == .ok && reply.bodyCodec == .protobuf)
            #expect(reply.body == (try codecs.encode(Google_Protobuf_StringValue("hi!"), codec: .protobuf)))
        }
        // A body the session's codec refuses is a bad message.
        let session = RecordingSession(codecs: replaced)
        let untagged = FerryMessage(type: .call, seq: 8, serviceMethod: "/echo", bodyCodec: .protobuf, body: try FerryCodecRegistry.standard.encode(request, codec: .protobuf))
        let refused = await router.freeze().reply(to: untagged, context: FerryContext(session: session, message: untagged, logger: Logger(label: "test")), exposeErrorDetails: false)
        #expect(refused.status.code == .badMessage)
    }

    @Test("reply codec: the handler's choice, then X-Accept-Body-Codec, then the request codec")
    func replyCodecPriority() async {
        let router = FerryRouter()
        router.call("/plain") { (text: String, _) in text }
        router.call("/chosen") { (text: String, context) in
            context.replyCodec = .plain
            return text
        }
        let accepted = await call(router, "/plain", body: "\"hi\"", meta: [FerryCallOptions.acceptCodecMetaKey: "115"])
        #expect(accepted.bodyCodec == .plain && String(buffer: accepted.body) == "hi")
        let chosen = await call(router, "/chosen", body: "\"hi\"", meta: [FerryCallOptions.acceptCodecMetaKey: "106"])
        #expect(chosen.bodyCodec == .plain && String(buffer: chosen.body) == "hi")
        let unknownAccept = await call(router, "/plain", body: "\"hi\"", meta: [FerryCallOptions.acceptCodecMetaKey: "250"])
        #expect(unknownAccept.bodyCodec == .json && String(buffer: unknownAccept.body) == "\"hi\"")
    }

    @Test("framework statuses: 404 unknown route, 400 empty route or bad body, 500 without leaking, user statuses as thrown")
    func statuses() async {
        struct Secret: Error {}
        let router = FerryRouter()
        router.call("/add") { (args: Add, _) in args.a + args.b }
        router.call("/boom") { (_: Void, _) -> Int in throw Secret() }
        router.call("/deny") { (_: Void, _) -> Int in throw FerryStatus(code: 1403, message: "no", cause: "why") }
        #expect(await call(router, "/nope", body: "").status.code == .notFound)
        #expect(await call(router, "", body: "").status.code == .badMessage)
        #expect(await call(router, "/add", body: "{").status.code == .badMessage)
        #expect(await call(router, "/add", body: "{}", codec: FerryCodecID("z")).status.code == .badMessage)
        let boom = await call(router, "/boom", body: "")
        #expect(boom.status.code == .internalServerError && boom.status.cause.isEmpty)
        #expect(boom.body.readableBytes == 0 && boom.bodyCodec == .none)
        #expect(await call(router, "/deny", body: "").status == FerryStatus(code: 1403, message: "no", cause: "why"))
    }

    @Test("groups join prefixes and run middleware as an onion, router middleware outer-most")
    func groupsAndMiddleware() async {
        let trail = Trail()
        let router = FerryRouter()
        router.use(Tracing(name: "router", trail: trail))
        let api = router.group("/api/", middleware: [Tracing(name: "api", trail: trail)])
        let v1 = api.group("v1", middleware: [Tracing(name: "v1", trail: trail)])
        v1.call("/echo") { (text: String, _) in
            trail.append("handler")
            return text
        }
        let reply = await call(router, "/api/v1/echo", body: "\"x\"")
        #expect(reply.status == .ok)
        #expect(trail.all == ["router>", "api>", "v1>", "handler", "<v1", "<api", "<router"])
        #expect(reply.meta.values(for: "via") == ["v1", "api", "router"])
        #expect(router.routes == [FerryRoute(kind: .call, path: "/api/v1/echo")])
    }

    @Test("middleware can answer without calling the handler")
    func shortCircuit() async {
        let router = FerryRouter()
        router.use(FerryMiddlewareFunction { message, context, next in
            guard message.meta["token"] == "secret" else { throw FerryStatus(.unauthorized, "Unauthorized") }
            return try await next(message, context)
        })
        router.call("/private") { (_: Void, _) in "data" }
        #expect(await call(router, "/private", body: "").status.code == .unauthorized)
        #expect(await call(router, "/private", body: "", meta: ["token": "secret"]).status == .ok)
    }

    @Test("catch-all handlers receive unknown calls and pushes with the raw body")
    func catchAll() async {
        let router = FerryRouter()
        let pushed = Trail()
        router.unknownCall { message, _ in
            FerryResponse(bodyCodec: message.bodyCodec, body: ByteBuffer(string: "proxied \(message.serviceMethod) \(String(buffer: message.body))"))
        }
        router.unknownPush { message, _ in pushed.append(message.serviceMethod) }
        let reply = await call(router, "/any/thing", body: "raw")
        #expect(String(buffer: reply.body) == "proxied /any/thing raw")
        let push = FerryMessage(type: .push, seq: 1, serviceMethod: "/some/push", bodyCodec: .plain)
        let status = await router.freeze().receivePush(push, context: FerryContext(session: session, message: push, logger: Logger(label: "test")))
        #expect(status == .ok && pushed.all == ["/some/push"])
    }

    @Test("typed pushes decode their body; routes are listed sorted with their kind")
    func pushesAndListing() async {
        let router = FerryRouter()
        let got = Trail()
        router.push("/chat/say") { (text: String, _) in got.append(text) }
        router.call("/a") { (_: Void, _) in 1 }
        let push = FerryMessage(type: .push, seq: 1, serviceMethod: "/chat/say", bodyCodec: .plain, body: ByteBuffer(string: "hi"))
        #expect(await router.freeze().receivePush(push, context: FerryContext(session: session, message: push, logger: Logger(label: "t"))) == .ok)
        #expect(got.all == ["hi"])
        let unknown = FerryMessage(type: .push, seq: 2, serviceMethod: "/nope", bodyCodec: .plain)
        #expect(await router.freeze().receivePush(unknown, context: FerryContext(session: session, message: unknown, logger: Logger(label: "t"))).code == .notFound)
        #expect(router.routes.map(\.description) == ["CALL /a", "PUSH /chat/say"])
    }

    private func push(_ table: FerryRouteTable, _ route: String, body: String) async -> FerryStatus {
        let message = FerryMessage(type: .push, seq: 1, serviceMethod: route, bodyCodec: .plain, body: ByteBuffer(string: body))
        return await table.receivePush(message, context: FerryContext(session: session, message: message, logger: Logger(label: "test")))
    }

    private func call(_ table: FerryRouteTable, _ route: String, body: String) async -> FerryMessage {
        let message = FerryMessage(type: .call, seq: 7, serviceMethod: route, bodyCodec: .json, body: ByteBuffer(string: body))
        return await table.reply(to: message, context: FerryContext(session: session, message: message, logger: Logger(label: "test")), exposeErrorDetails: false)
    }

    @Test("a route is registered and matched as written: /math/add and erpc's RPC-style Hello.Say, not /Hello.Say")
    func routeNamesAsWritten() async {
        let router = FerryRouter()
        router.call("/math/add") { (args: Add, _) in args.a + args.b }
        router.call("Hello.Say") { (name: String, _) in "hello, \(name)" }
        let said = Trail()
        router.push("Chat.Say") { (text: String, _) in said.append(text) }
        #expect(router.routes.map(\.description) == ["CALL /math/add", "PUSH Chat.Say", "CALL Hello.Say"])

        #expect(String(buffer: await call(router, "/math/add", body: #"{"a":1,"b":2}"#).body) == "3")
        let hello = await call(router, "Hello.Say", body: #""ferry""#)
        #expect(hello.status == .ok && String(buffer: hello.body) == #""hello, ferry""#)
        for other in ["/Hello.Say", "Hello/Say", "hello.say", "math/add", "/math/add/", "//math/add"] {
            #expect(await call(router, other, body: "{}").status.code == .notFound, "\(other)")
        }
        let table = router.freeze()
        #expect(await push(table, "Chat.Say", body: "hi") == .ok && said.all == ["hi"])
        #expect(await push(table, "/Chat.Say", body: "hi").code == .notFound)
    }

    @Test("a group joins slash-style names with slashes and dotted names with dots")
    func groupNameStyles() async {
        let router = FerryRouter()
        let hello = router.group("Hello")
        hello.call("Say") { (_: Void, _) in "said" }
        hello.call("") { (_: Void, _) in "root" }
        router.group("pay.").group(".Alipay").call("App") { (_: Void, _) in "app" }
        router.group("/admin").call("stats") { (_: Void, _) in "stats" }
        // One slash anywhere makes the whole name slash-style, whatever the nesting.
        router.group("api").group("v1").call("/echo") { (text: String, _) in text }
        router.group("Hello").push("/bye") { (_: Void, _) in }
        #expect(
            router.routes.map(\.description) == [
                "PUSH /Hello/bye", "CALL /admin/stats", "CALL /api/v1/echo", "CALL Hello", "CALL Hello.Say", "CALL pay.Alipay.App",
            ])
        #expect(String(buffer: await call(router, "Hello.Say", body: "").body) == #""said""#)
        #expect(String(buffer: await call(router, "pay.Alipay.App", body: "").body) == #""app""#)
        #expect(await call(router, "/Hello/Say", body: "").status.code == .notFound)
    }

    @Test("the frozen table dispatches calls, pushes and catch-alls as the router did, and lists the same routes")
    func frozenTableDispatches() async {
        let router = FerryRouter()
        let trail = Trail()
        router.use(Tracing(name: "router", trail: trail))
        router.call("/math/add") { (args: Add, _) in args.a + args.b }
        router.call("Math.Double") { (value: Int, _) in value * 2 }
        router.push("/chat/say") { (text: String, _) in trail.append(text) }
        router.unknownCall { message, _ in FerryResponse(bodyCodec: .plain, body: ByteBuffer(string: "proxied \(message.serviceMethod)")) }
        let table = router.freeze()

        let sum = await call(table, "/math/add", body: #"{"a":2,"b":3}"#)
        #expect(sum.status == .ok && String(buffer: sum.body) == "5" && sum.meta.values(for: "via") == ["router"])
        #expect(String(buffer: await call(table, "Math.Double", body: "21").body) == "42")
        #expect(String(buffer: await call(table, "/elsewhere", body: "").body) == "proxied /elsewhere")
        #expect(await call(table, "", body: "").status.code == .badMessage)
        #expect(await push(table, "/chat/say", body: "hi") == .ok)
        // No catch-all for pushes: an unknown push is not found.
        #expect(await push(table, "/chat/shout", body: "hi").code == .notFound)
        #expect(trail.all == ["router>", "<router", "router>", "<router", "router>", "<router", "router>", "hi", "<router"])
        if case .synchronous? = table.handler(for: .call, path: "/math/add") {
            Issue.record("a route under middleware must be wrapped as an asynchronous handler")
        }

        #expect(table.routes == router.routes)
        #expect(table.routes.map(\.description) == ["PUSH /chat/say", "CALL /math/add", "CALL Math.Double"])
        #expect(router.freeze() === table, "freezing again hands out the same table")
        // The router still answers lookups (through its lock) once frozen.
        #expect(await call(router, "Math.Double", body: "4").status == .ok)
    }

    @Test("a frozen table keeps a synchronous route synchronous and lives on without its router")
    func tableOutlivesRouter() async throws {
        weak var released: FerryRouter?
        let table: FerryRouteTable
        do {
            let router = FerryRouter()
            router.call("Echo.Say") { (text: String, _) in text }
            table = router.freeze()
            released = router
        }
        #expect(released == nil, "the table holds no reference to the router")
        let handler = try #require(table.handler(for: .call, path: "Echo.Say"))
        guard case .synchronous = handler else {
            Issue.record("a closure without await, under no middleware, stays synchronous")
            return
        }
        #expect(String(buffer: await call(table, "Echo.Say", body: #""x""#).body) == #""x""#)
    }

    @Test("registering after freeze stops the process with a message naming the route")
    func registeringAfterFreezeIsAProgrammerError() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let router = FerryRouter()
            router.call("/early") { (_: Void, _) in 1 }
            _ = router.freeze()
            router.call("Late.Route") { (_: Void, _) in 2 }
        }
        #if DEBUG
        let message = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(message.contains("CALL Late.Route") && message.contains("register routes before the peer listens, dials or serves"), "\(message)")
        #endif
        await #expect(processExitsWith: .failure) {
            let router = FerryRouter()
            _ = router.freeze()
            router.use(FerryMiddlewareFunction { message, context, next in try await next(message, context) })
        }
        await #expect(processExitsWith: .failure) {
            let router = FerryRouter()
            let group = router.group("/late")
            _ = router.freeze()
            group.push("/note") { (_: Void, _) in }
        }
    }

    @Test("meta keeps order and repeated keys")
    func meta() {
        var meta: FerryMeta = ["a": "1", "b": "2"]
        meta.add("a", "3")
        #expect(meta["a"] == "1" && meta.values(for: "a") == ["1", "3"])
        meta.set("a", "9")
        #expect(meta.map(\.key) == ["a", "b"] && meta["a"] == "9")
        meta["b"] = nil
        #expect(meta.count == 1)

        // The first pair is kept apart from the others: edits around it keep the order.
        var edited: FerryMeta = ["x": "1", "y": "2"]
        edited.add("x", "3")
        edited.add("z", "4")
        edited.remove("x")
        #expect(edited.map(\.key) == ["y", "z"] && edited.count == 2 && edited["x"] == nil)
        edited.set("z", "5")
        #expect(edited.map(\.value) == ["2", "5"])
        edited.remove("y")
        edited.remove("z")
        #expect(edited.isEmpty && edited == FerryMeta())
        edited.add("w", "6")
        #expect(edited.map(\.key) == ["w"] && edited["w"] == "6")
    }

    @Test("meta equality and hashing follow the pairs in order")
    func metaEquality() {
        let ab: FerryMeta = ["a": "1", "b": "2"]
        var built = FerryMeta()
        built.add("a", "1")
        built.add("b", "2")
        #expect(ab == built && ab.hashValue == built.hashValue)
        #expect(ab != ["b": "2", "a": "1"])
        #expect(ab != ["a": "1", "b": "3"])
        #expect(ab != ["a": "1"])
        #expect(Set([ab, built, ["a": "1"]]).count == 2)
    }
}
