import NIOCore
import Synchronization
import Testing

@testable import Ferry

@Suite("Handler execution")
struct HandlerExecutionTests {
    /// Registers `/where`: answers whether the handler runs on its connection's event loop,
    /// before and after a suspension.
    private static func registerWhere(_ router: FerryRouter) {
        router.call("/where") { (_: Void, ctx: FerryContext) async throws -> [Bool] in
            let loop = (ctx.session as! FerrySession).channel.eventLoop
            let before = loop.inEventLoop
            try await Task.sleep(for: .milliseconds(5))
            return [before, loop.inEventLoop]
        }
    }

    @Test("by default handlers run on their connection's event loop, also after they suspend")
    func eventLoopByDefault() async throws {
        let pair = try await makePair(configure: Self.registerWhere)
        #expect(try await pair.session.call("/where", (), as: [Bool].self) == [true, true])
        await pair.close()
    }

    @Test("with globalExecutor handlers run off the event loop")
    func globalExecutor() async throws {
        let pair = try await makePair(
            server: FerryPeer.Configuration(handlerExecution: .globalExecutor), configure: Self.registerWhere)
        #expect(try await pair.session.call("/where", (), as: [Bool].self) == [false, false])
        await pair.close()
    }
}

@Suite("Synchronous handlers")
struct SynchronousHandlerTests {
    /// Registers `/where-sync`, a handler without `await`: answers whether it runs on its
    /// connection's event loop and whether it runs inside a task.
    private static func registerWhere(_ router: FerryRouter) {
        router.call("/where-sync") { (_: Void, ctx: FerryContext) -> [Bool] in
            let loop = (ctx.session as! FerrySession).channel.eventLoop
            let inTask = withUnsafeCurrentTask { $0 != nil }
            return [loop.inEventLoop, inTask]
        }
    }

    /// A middleware that adds `via: name` to every reply.
    private struct Tag: FerryMiddleware {
        let name: String
        func handle(_ message: FerryMessage, context: FerryContext, next: FerryHandler) async throws -> FerryResponse {
            var response = try await next(message, context)
            response.meta.add("via", name)
            return response
        }
    }

    private struct Unexpected: Error {}

    @Test("a handler without await runs in place on its event loop, with no task")
    func inPlace() async throws {
        let pair = try await makePair(configure: Self.registerWhere)
        #expect(try await pair.session.call("/where-sync", (), as: [Bool].self) == [true, false])
        await pair.close()
    }

    @Test("with globalExecutor a handler without await still runs in a task off the event loop")
    func globalExecutor() async throws {
        let pair = try await makePair(
            server: FerryPeer.Configuration(handlerExecution: .globalExecutor), configure: Self.registerWhere)
        #expect(try await pair.session.call("/where-sync", (), as: [Bool].self) == [false, true])
        await pair.close()
    }

    @Test("middleware of the router and of groups wraps synchronous handlers")
    func middleware() async throws {
        let pair = try await makePair { router in
            router.call("/plain") { (x: Int, _: FerryContext) in x + 1 }
            router.group("/g", middleware: [Tag(name: "group")]).call("/in-group") { (x: Int, _: FerryContext) in x + 2 }
            router.use(Tag(name: "router"))
            router.call("/after-use") { (x: Int, _: FerryContext) in x + 3 }
        }
        let plain = try await pair.session.callForReply("/plain", 1)
        #expect(try plain.decode(Int.self) == 2 && plain.meta.values(for: "via") == [])
        let grouped = try await pair.session.callForReply("/g/in-group", 1)
        #expect(try grouped.decode(Int.self) == 3 && grouped.meta.values(for: "via") == ["group"])
        let wrapped = try await pair.session.callForReply("/after-use", 1)
        #expect(try wrapped.decode(Int.self) == 4 && wrapped.meta.values(for: "via") == ["router"])
        await pair.close()
    }

    @Test("errors, bad bodies and passed deadlines answer as they do for asynchronous handlers")
    func failures() async throws {
        let pair = try await makePair { router in
            router.call("/refuse") { (_: Int, _: FerryContext) -> Int in throw FerryStatus(.unauthorized, "Unauthorized", cause: "no") }
            router.call("/fail") { (_: Int, _: FerryContext) -> Int in throw Unexpected() }
            router.call("/echo") { (x: Int, _: FerryContext) in x }
        }
        #expect(try await pair.session.callForReply("/refuse", 1).status.code == .unauthorized)
        #expect(try await pair.session.callForReply("/fail", 1).status.code == .internalServerError)
        #expect(try await pair.session.callForReply("/echo", "not a number").status.code == .badMessage)
        let late = FerryCallOptions(meta: [FerryDeadline.metaKey: "0"])
        #expect(try await pair.session.callForReply("/echo", 1, options: late).status.code == .deadlineExceeded)
        #expect(try await pair.session.call("/echo", 7, as: Int.self) == 7)
        await pair.close()
    }

    @Test("a push to a handler without await is received in place")
    func push() async throws {
        final class Notes: Sendable { let list = Mutex<[String]>([]) }
        let notes = Notes()
        let pair = try await makePair { router in
            router.push("/note") { (text: String, _: FerryContext) in
                notes.list.withLock { $0.append(text) }
            }
        }
        try await pair.session.push("/note", "a")
        try await pair.session.push("/note", "b")
        let deadline = ContinuousClock.now + .seconds(5)
        while notes.list.withLock({ $0.count }) < 2, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(notes.list.withLock { $0 } == ["a", "b"])
        await pair.close()
    }
}
