import NIOCore
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
