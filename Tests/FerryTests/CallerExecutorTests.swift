@testable import Ferry
import NIOCore
import Testing

@Suite("Callers on the session's event loop")
struct CallerExecutorTests {
    @Test("a task that prefers the session's executor calls and pushes without leaving its event loop")
    func callsStayOnTheLoop() async throws {
        let notes = Recorder<String>()
        let pair = try await makePair { router in
            router.push("/note") { (text: String, _: FerryContext) in notes.append(text) }
        }
        let eventLoop = pair.session.channel.eventLoop

        let placesOnLoop = try await withTaskExecutorPreference(pair.session.taskExecutor) {
            var places = [eventLoop.inEventLoop]
            for a in 0..<20 {
                #expect(try await pair.session.call("/math/add", AddArgs(a: a, b: 1), as: Int.self) == a + 1)
                places.append(eventLoop.inEventLoop)
            }
            try await pair.session.push("/note", "from the loop")
            places.append(eventLoop.inEventLoop)
            return places
        }
        #expect(placesOnLoop.allSatisfy { $0 }, "\(placesOnLoop)")
        #expect(await eventually { notes.all == ["from the loop"] })

        // Without the preference the caller resumes on the global executor, off the loop.
        _ = try await pair.session.call("/math/add", AddArgs(a: 1, b: 1), as: Int.self)
        #expect(!eventLoop.inEventLoop)
        await pair.close()
    }

    @Test("many callers on the session's executor each get their own replies")
    func manyCallersOnTheLoop() async throws {
        let pair = try await makePair()
        let wrong = await wrongReplies(on: pair.session, callers: 200, calls: 5, executor: pair.session.taskExecutor)
        #expect(wrong == 0)
        await pair.close()
    }

    @Test("on the session's executor a call still times out with 408 and a cancelled one fails with 499")
    func deadlinesAndCancellationOnTheLoop() async throws {
        let slow = CallLifecycleTests.SlowRoute()
        let pair = try await makePair(configure: slow.register)
        defer { slow.gate.fulfil(()) }
        let session = pair.session

        let timedOut = await withTaskExecutorPreference(session.taskExecutor) {
            await statusThrown { try await session.call("/slow", (), as: Int.self, options: .timeout(.milliseconds(200))) }
        }
        #expect(timedOut?.code == .timedOut)

        let waiting = Task(executorPreference: session.taskExecutor) {
            await statusThrown { try await session.call("/slow", (), as: Int.self, options: .timeout(.seconds(30))) }
        }
        #expect(await slow.waitForStarts(2))
        waiting.cancel()
        #expect(await waiting.value?.code == .cancelled)

        // The session keeps working on and off the loop.
        #expect(try await session.call("/math/add", AddArgs(a: 2, b: 3), as: Int.self) == 5)
        await pair.close()
    }
}
