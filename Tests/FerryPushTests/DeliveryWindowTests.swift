@testable import FerryPush
import Testing

@Suite("The delivery window")
struct DeliveryWindowTests {
    func window(next: UInt64 = 1, known: UInt64 = 10, size: Int = 3) -> DeliveryWindow {
        DeliveryWindow(epoch: "e", next: next, known: known, window: size, resendAfter: .seconds(10))
    }

    @Test("sends in order up to the window, then waits for acks")
    func windowBound() {
        var window = window()
        #expect(window.nextAction(now: .zero) == .read(after: 0, limit: 3))
        for offset in UInt64(1)...3 { _ = window.sent(offset, at: .zero) }
        #expect(window.nextAction(now: .seconds(1)) == .wait(deadline: .seconds(10)))
        #expect((try? window.acknowledge(epoch: "e", through: 2).get()) != nil)
        #expect(window.nextAction(now: .seconds(1)) == .read(after: 3, limit: 2))
    }

    @Test("nothing stored beyond what was sent: waits without a deadline once all is acked")
    func idle() {
        var window = window(known: 1)
        _ = window.sent(1, at: .zero)
        _ = window.acknowledge(epoch: "e", through: 1)
        #expect(window.nextAction(now: .seconds(1)) == .wait(deadline: nil))
        window.stored(through: 2)
        #expect(window.nextAction(now: .seconds(1)) == .read(after: 1, limit: 3))
    }

    @Test("an unacknowledged message past its time sends everything from it again")
    func goBackN() {
        var window = window(known: 2)
        _ = window.sent(1, at: .zero)
        _ = window.sent(2, at: .seconds(1))
        _ = window.acknowledge(epoch: "e", through: 1)
        #expect(window.nextAction(now: .seconds(10)) == .wait(deadline: .seconds(11)))
        #expect(window.nextAction(now: .seconds(11)) == .read(after: 1, limit: 3))
        #expect(window.resends == 1)
        #expect((try? window.acknowledge(epoch: "e", through: 2).get()) != nil, "a late ack for a message sent before the resend counts")
    }

    @Test("acks for another epoch or for offsets never sent are refused; old acks are harmless")
    func badAcks() {
        var window = window()
        _ = window.sent(1, at: .zero)
        #expect(throws: DeliveryWindow.AckRefusal.notSent(2)) { try window.acknowledge(epoch: "e", through: 2).get() }
        #expect(throws: DeliveryWindow.AckRefusal.otherEpoch("x")) { try window.acknowledge(epoch: "x", through: 1).get() }
        #expect((try? window.acknowledge(epoch: "e", through: 1).get()) != nil)
        #expect((try? window.acknowledge(epoch: "e", through: 0).get()) != nil)
    }

    @Test("a gap in the mailbox is skipped and its size told with the next message")
    func gap() {
        var window = window()
        window.read(lost: 4, lastOffset: 10, firstReturned: 5)
        #expect(window.nextAction(now: .zero) == .read(after: 4, limit: 3))
        #expect(window.sent(5, at: .zero) == 4)
        #expect(window.sent(6, at: .zero) == 0, "told once")
    }
}
