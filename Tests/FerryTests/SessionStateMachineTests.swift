@testable import Ferry
import FerryCore
import NIOCore
import Testing

@Suite("Session state machine")
struct SessionStateMachineTests {
    typealias Machine = SessionStateMachine<Connection, Int>

    static let now = NIODeadline.uptimeNanoseconds(1_000_000_000)
    static let readAt = ContinuousClock.now

    static func accepted(_ connection: Connection = Connection()) -> Machine {
        Machine(connection: connection, remoteAddress: "10.0.0.1:5000", dialled: false, canRedial: false, now: now)
    }

    static func dialled(_ connection: Connection = Connection(), canRedial: Bool = true) -> Machine {
        var machine = Machine(connection: connection, remoteAddress: "10.0.0.2:9090", dialled: true, canRedial: canRedial, now: now)
        let result1 = machine.handshakeFinished()
        #expect(result1)
        return machine
    }

    static func message(_ seq: Int32, _ type: FerryMessageType = .call) -> FerryMessage {
        FerryMessage(type: type, seq: seq, serviceMethod: "/math/add", bodyCodec: .json)
    }

    /// Makes a CALL pending on `connection`; returns how it starts.
    @discardableResult
    static func startCall(_ machine: inout Machine, seq: Int32, on connection: Connection, onLoop: Bool = true, cancelled: Bool = false) -> Machine.CallStart {
        var arm: NIODeadline?
        let call = CallTable<Int>.Call(waiter: Int(seq), deadline: now + .seconds(5), timeout: .seconds(5), connection: ObjectIdentifier(connection))
        return machine.startCall(message(seq), on: connection, call: call, onLoop: onLoop, cancelled: cancelled, arm: &arm)
    }

    @Test("an accepted session holds messages back while its accept hook runs and lets them through in order")
    func admittingHoldsMessagesBack() {
        var machine = Self.accepted()
        for seq in 1...3 {
            guard case .heldBack = machine.gate(Self.message(Int32(seq)), readAt: Self.readAt) else {
                Issue.record("message \(seq) was not held back")
                return
            }
        }
        #expect(!machine.lifecycle.isReady)
        let held = machine.admit(requiresAuth: false)
        #expect(held.map(\.message.seq) == [1, 2, 3])
        #expect(machine.lifecycle.isReady)
        guard case .pass(authenticated: true) = machine.gate(Self.message(4), readAt: Self.readAt) else {
            Issue.record("an admitted session's message did not pass")
            return
        }
    }

    @Test("more messages than the limit before the accept hook finishes close the session")
    func tooManyHeldBack() {
        var machine = Self.accepted()
        for seq in 1...Machine.heldBackLimit { _ = machine.gate(Self.message(Int32(seq)), readAt: Self.readAt) }
        guard case .tooManyHeldBack = machine.gate(Self.message(0), readAt: Self.readAt) else {
            Issue.record("the message over the limit was accepted")
            return
        }
    }

    @Test("with auth, an admitted session is not ready until the remote's credential passes")
    func authenticatingThenOpen() {
        var machine = Self.accepted()
        _ = machine.admit(requiresAuth: true)
        #expect(!machine.lifecycle.isReady)
        guard case .pass(authenticated: false) = machine.gate(Self.message(1), readAt: Self.readAt) else {
            Issue.record("an unauthenticated message passed as authenticated")
            return
        }
        let result2 = machine.authenticated()
        #expect(result2)
        #expect(machine.lifecycle.isReady)
        let result3 = machine.authenticated()
        #expect(!result3, "a second credential is not awaited")
    }

    @Test("a dialled session that loses its connection redials when it may, and closes when it may not")
    func lossRedialsOrCloses() {
        let connection = Connection()
        var redialling = Self.dialled(connection, canRedial: true)
        Self.startCall(&redialling, seq: redialling.nextSeq()!, on: connection)
        guard case .redial(let failed, _, _) = redialling.connectionLost(connection, peerDraining: false) else {
            Issue.record("no redial")
            return
        }
        #expect(failed.map(\.waiter) == [1])
        #expect(!redialling.isClosed)
        #expect(redialling.lifecycle.writableConnection == nil)
        guard case .refused(let status) = Self.startCall(&redialling, seq: 2, on: connection) else {
            Issue.record("a call on the lost connection was accepted")
            return
        }
        #expect(status.code == .connectionClosed)

        var closing = Self.dialled(connection, canRedial: false)
        guard case .closed(_, let closed) = closing.connectionLost(connection, peerDraining: false) else {
            Issue.record("not closed")
            return
        }
        #expect(closed.wasReady)
        #expect(closing.isClosed)
        let result4 = closing.nextSeq()
        #expect(result4 == nil)

        var draining = Self.dialled(connection, canRedial: true)
        guard case .closed = draining.connectionLost(connection, peerDraining: true) else {
            Issue.record("a draining peer redialled")
            return
        }
    }

    @Test("a session that loses its connection before it is ready closes without reporting a disconnect")
    func lossBeforeReady() {
        let connection = Connection()
        var machine = Self.accepted(connection)
        guard case .closed(_, let closing) = machine.connectionLost(connection, peerDraining: false) else {
            Issue.record("not closed")
            return
        }
        #expect(!closing.wasReady)
        let result5 = machine.admit(requiresAuth: false)
        #expect(result5.isEmpty)
        #expect(!machine.lifecycle.isReady)
    }

    @Test("closing by this side is final, names the connection to close, and happens once")
    func closeIsFinal() {
        let connection = Connection()
        var machine = Self.dialled(connection)
        let closing = machine.close(reason: "closed by this side")
        #expect(closing?.connectionsToClose.count == 1)
        #expect(closing?.reason == "closed by this side")
        let result6 = machine.close(reason: "again")
        #expect(result6 == nil)
        guard case .failCalls = machine.connectionLost(connection, peerDraining: false) else {
            Issue.record("a closed session redialled")
            return
        }
        #expect(machine.lifecycle.closedReason == "closed by this side")
    }

    @Test("the first close reason wins")
    func firstReasonWins() {
        let connection = Connection()
        var machine = Self.accepted(connection)
        _ = machine.admit(requiresAuth: false)
        machine.recordCloseReason("heartbeat failed")
        machine.recordCloseReason("connection lost")
        guard case .closed(_, let closing) = machine.connectionLost(connection, peerDraining: false) else {
            Issue.record("not closed")
            return
        }
        #expect(closing.reason == "heartbeat failed")
    }

    @Test("a move keeps the old connection for the calls written on it, and retires it with their last reply")
    func moveRetiresTheOldConnection() {
        let old = Connection()
        let new = Connection()
        var machine = Self.dialled(old)
        Self.startCall(&machine, seq: machine.nextSeq()!, on: old)
        let result7 = machine.beginMove(from: ObjectIdentifier(old))
        #expect(result7)
        let result8 = machine.beginMove(from: ObjectIdentifier(old))
        #expect(!result8, "one move at a time")
        #expect(machine.lifecycle.writableConnection == nil, "new calls wait for the new connection")

        var retired: Connection?
        let result9 = machine.redialConnected(new, retired: &retired)
        #expect(result9)
        #expect(retired == nil, "a call still awaits its reply on the old connection")
        let result10 = machine.redialFinished(new)
        #expect(result10 != nil)
        #expect(machine.lifecycle.writableConnection === new)

        let result11 = machine.removeCall(1, retired: &retired)
        #expect(result11?.waiter == 1)
        #expect(retired === old)
    }

    @Test("a move whose redial gives up closes the session but lets the old connection answer its calls first")
    func failedMoveKeepsTheOldConnection() {
        let old = Connection()
        var machine = Self.dialled(old)
        Self.startCall(&machine, seq: machine.nextSeq()!, on: old)
        let result12 = machine.beginMove(from: ObjectIdentifier(old))
        #expect(result12)
        let closing = machine.redialStopped(reason: "redial gave up")
        #expect(closing != nil)
        #expect(closing?.connectionsToClose.isEmpty == true, "the old connection is not closed under its call")
        #expect(machine.isClosed)
        var retired: Connection?
        let result13 = machine.removeCall(1, retired: &retired)
        #expect(result13?.waiter == 1)
        #expect(retired === old)
    }

    @Test("calls made off the loop wait in the outbox, one drain for many, and failed ones are not sent")
    func outbox() {
        let connection = Connection()
        var machine = Self.dialled(connection)
        guard case .drainOutbox = Self.startCall(&machine, seq: 1, on: connection, onLoop: false),
            case .queued = Self.startCall(&machine, seq: 2, on: connection, onLoop: false),
            case .queued = Self.startCall(&machine, seq: 3, on: connection, onLoop: false)
        else {
            Issue.record("the outbox was not drained once for three calls")
            return
        }
        var retired: Connection?
        _ = machine.removeCall(2, retired: &retired)
        let result14 = machine.takeOutbox()
        #expect(result14.map(\.message.seq) == [1, 3])
        #expect(machine.unsentCalls == 0)
        guard case .drainOutbox = Self.startCall(&machine, seq: 4, on: connection, onLoop: false) else {
            Issue.record("a new drain was not asked for")
            return
        }
    }

    @Test("a caller cancelled before its call is pending is refused with 499")
    func cancelledCall() {
        let connection = Connection()
        var machine = Self.dialled(connection)
        guard case .refused(let status) = Self.startCall(&machine, seq: 1, on: connection, cancelled: true) else {
            Issue.record("a cancelled call became pending")
            return
        }
        #expect(status.code == .cancelled)
        #expect(machine.calls.isEmpty)
    }

    @Test("a draining session is drained when idle and quiet for the quiet period")
    func drained() {
        let connection = Connection()
        var machine = Self.accepted(connection)
        _ = machine.admit(requiresAuth: false)
        machine.goAwaySent(at: Self.now)
        #expect(!machine.isDrained(quietFor: .milliseconds(250), now: Self.now + .milliseconds(100)))
        #expect(machine.isDrained(quietFor: .milliseconds(250), now: Self.now + .milliseconds(250)))
        machine.handlerStarted(replyInPlace: false)
        #expect(!machine.isDrained(quietFor: .milliseconds(250), now: Self.now + .seconds(1)))
        machine.replyHandedOver()
        #expect(!machine.isDrained(quietFor: .milliseconds(250), now: Self.now + .seconds(1)))
        machine.repliesLeft(1)
        machine.refusedWhileDraining(at: Self.now + .seconds(1))
        #expect(!machine.isDrained(quietFor: .milliseconds(250), now: Self.now + .seconds(1) + .milliseconds(100)))
        #expect(machine.isDrained(quietFor: .milliseconds(250), now: Self.now + .seconds(1) + .milliseconds(250)))
    }

    @Test("the ID is the remote address until assigned; a default ID may be adopted, an assigned one not")
    func identity() {
        var machine = Self.accepted()
        #expect(machine.identity.id == "10.0.0.1:5000")
        machine.adoptDefaultID("10.0.0.1:5000#2")
        #expect(machine.identity.id == "10.0.0.1:5000#2")
        machine.assignID("alice")
        machine.adoptDefaultID("other")
        #expect(machine.identity.id == "alice")
    }
}

extension SessionStateMachine {
    /// ``connectionLost(_:peerDraining:callsWaitForReconnect:stranded:)`` for tests with no senders waiting.
    mutating func connectionLost(_ connection: Connection, peerDraining: Bool) -> ConnectionLoss {
        var stranded = StrandedSenders()
        return connectionLost(connection, peerDraining: peerDraining, callsWaitForReconnect: true, stranded: &stranded)
    }
}
