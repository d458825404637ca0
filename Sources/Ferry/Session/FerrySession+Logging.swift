import Logging

/// The debug line of every exchange, and the warning for slow calls.
extension FerrySession {
    /// A duration in milliseconds with microsecond precision, e.g. `1.234ms`.
    static func describe(_ duration: Duration) -> String {
        let micros = duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000
        let millis = micros / 1000
        let fraction = String(micros % 1000)
        return "\(millis).\(String(repeating: "0", count: 3 - fraction.count))\(fraction)ms"
    }

    /// Which way a logged exchange went.
    enum Exchange: String {
        case callIn = "call-in", callOut = "call-out", pushIn = "push-in", pushOut = "push-out"

        var isCall: Bool { self == .callIn || self == .callOut }
    }

    func logExchange(_ kind: Exchange, route: String, seq: Int32? = nil, cost: Duration, bodyOut: Int, bodyIn: Int, status: FerryStatus) {
        let instruments = peer.instruments
        if instruments.recordsExchanges {
            record(kind, route: route, cost: cost, bodyOut: bodyOut, bodyIn: bodyIn, status: status, in: instruments)
        }
        let slow = kind.isCall && cost > peer.configuration.slowCallThreshold
        guard slow || logsEveryExchange else { return }
        var metadata: Logger.Metadata = [
            "session": "\(id)",
            "route": "\(route)",
            "cost": "\(Self.describe(cost))",
            "body_out": "\(bodyOut)B",
            "body_in": "\(bodyIn)B",
            "status": "\(status.code)",
        ]
        if let seq { metadata["seq"] = "\(seq)" }
        if slow {
            logger.warning("\(kind.rawValue) slow", metadata: metadata)
        } else {
            logger.debug("\(kind.rawValue)", metadata: metadata)
        }
    }

    /// Counts the exchange in the peer's metrics and statistics.
    private func record(
        _ kind: Exchange, route: String, cost: Duration, bodyOut: Int, bodyIn: Int, status: FerryStatus, in instruments: PeerInstruments
    ) {
        let inbound = kind == .callIn || kind == .pushIn
        let known = !inbound || routes.handler(for: kind == .callIn ? .call : .push, path: route) != nil
        instruments.record(
            isCall: kind.isCall, inbound: inbound, route: route, known: known, status: status, duration: cost,
            bodyIn: bodyIn, bodyOut: bodyOut)
    }
}
