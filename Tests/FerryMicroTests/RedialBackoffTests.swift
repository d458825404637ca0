@testable import Ferry
import FerryTestSupport
import Testing

/// The redial backoff's jitter, drawn from an injected generator so that exact sequences can be
/// checked. (It tests `Ferry`'s `FerryPeer.Redial`; the waiting itself is the session's.)
@Suite("Redial backoff")
struct RedialBackoffTests {
    let policy = FerryPeer.Redial(baseDelay: .milliseconds(100), maximumDelay: .seconds(10))
    /// The ceiling before attempts 0, 1, …: the base delay doubled each time, up to the maximum.
    let ceilings: [Duration] = [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000].map { .milliseconds($0) }

    /// The delays before attempts `0..<count` drawn from `generator`.
    func delays(_ count: Int, _ generator: inout SeededRandomNumberGenerator) -> [Duration] {
        (0..<count).map { policy.delay(beforeAttempt: $0, using: &generator) }
    }

    @Test("the same seed gives the same delays, another seed others")
    func sequence() {
        var first = SeededRandomNumberGenerator(seed: 19)
        var second = SeededRandomNumberGenerator(seed: 19)
        var other = SeededRandomNumberGenerator(seed: 20)
        let delays = delays(10, &first)
        #expect(self.delays(10, &second) == delays)
        #expect(self.delays(10, &other) != delays)
    }

    @Test("every delay is full jitter under its attempt's ceiling: it spans zero to the ceiling, never beyond")
    func bounds() {
        var generator = SeededRandomNumberGenerator(seed: 7)
        let cases: [(attempt: Int, ceiling: Duration)] = Array(zip(0..., ceilings)) + [(200, .seconds(10))]
        for (attempt, ceiling) in cases {
            let draws = (0..<2000).map { _ in policy.delay(beforeAttempt: attempt, using: &generator) }
            let lowest = draws.min()!
            let highest = draws.max()!
            #expect(lowest >= .zero && highest <= ceiling, "attempt \(attempt): \(lowest)...\(highest) outside 0...\(ceiling)")
            // 2000 uniform draws reach within 1 % of both ends (a miss has odds of e^-20).
            #expect(lowest <= ceiling / 100 && highest >= ceiling * 99 / 100, "attempt \(attempt): \(lowest)...\(highest) under \(ceiling)")
        }
    }

    @Test("the default draws from the system generator, within the same ceilings")
    func systemGenerator() {
        for (attempt, ceiling) in ceilings.enumerated() {
            let delay = policy.delay(beforeAttempt: attempt)
            #expect(delay >= .zero && delay <= ceiling)
        }
    }
}
