import FerryTestSupport
import Testing

@Suite("Test clock")
struct TestClockTests {
    @Test("now moves only when advanced; a sleeper wakes once its deadline is reached")
    func advancing() async throws {
        let clock = TestClock()
        let start = clock.now
        #expect(clock.now == start)
        try await clock.sleep(until: start)  // a deadline already reached does not wait
        try await withThrowingTaskGroup(of: TestClock.Instant.self) { group in
            group.addTask {
                try await clock.sleep(until: start.advanced(by: .seconds(2)))
                return clock.now
            }
            #expect(await eventually { clock.sleeperCount == 1 })
            clock.advance(by: .seconds(1))
            #expect(clock.sleeperCount == 1)
            clock.advance(by: .seconds(1))
            let woke = try await group.next()
            #expect(woke == start.advanced(by: .seconds(2)))
        }
        #expect(clock.sleeperCount == 0)
    }

    @Test("a cancelled sleeper throws CancellationError and leaves the clock")
    func cancellation() async {
        let clock = TestClock()
        let sleeper = Task { try await clock.sleep(for: .seconds(1)) }
        #expect(await eventually { clock.sleeperCount == 1 })
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        #expect(clock.sleeperCount == 0)
    }
}
