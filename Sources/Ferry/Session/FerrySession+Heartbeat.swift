import NIOCore

/// erpc's heartbeat: answering the remote's, and sending this side's when the connection is quiet.
extension FerrySession {
    /// Answers an inbound `/heartbeat`; returns the period the remote announced, if any.
    func answerHeartbeat(_ message: FerryMessage, on channel: any Channel) -> Duration? {
        let text = message.meta[FerryPeer.Heartbeat.periodMetaKey] ?? ""
        guard text.isEmpty || (Int(text).map { $0 >= 0 } ?? false) else {
            if message.type == .call {
                writeReply(errorReply(to: message, FerryStatus.invalidHeartbeatRate(text)), on: channel)
            }
            return nil
        }
        if message.type == .call {
            writeReply(FerryMessage(type: .reply, seq: message.seq, bodyCodec: message.bodyCodec, filters: message.filters), on: channel)
        }
        guard let seconds = Int(text), seconds > 0 else { return nil }
        return .seconds(Int64(seconds))
    }

    /// Sends a heartbeat because the connection has been quiet for the ping interval.
    func sendHeartbeat() {
        guard let interval = peer.configuration.heartbeat.pingInterval else { return }
        let seconds = max(1, Int((Double(interval.components.seconds) + Double(interval.components.attoseconds) / 1e18).rounded(.up)))
        let options = FerryCallOptions(timeout: interval, meta: [FerryPeer.Heartbeat.periodMetaKey: String(seconds)], codec: defaultCodec)
        let withCall = peer.configuration.heartbeat.pingWithCall
        peer.tasks.start { [self] in
            do {
                if withCall {
                    let reply = try await call(FerryPeer.Heartbeat.route, body: ByteBuffer(), codec: defaultCodec, options: options)
                    guard reply.status.isOK else { throw reply.status }
                } else {
                    try await push(FerryPeer.Heartbeat.route, body: ByteBuffer(), codec: defaultCodec, options: options)
                }
            } catch {
                guard case .open(let channel) = state.withLock({ $0.lifecycle }) else { return }
                logger.info("closing session: heartbeat failed", metadata: ["error": "\(error)"])
                closeConnection(channel, reason: "heartbeat failed: \(error)")
            }
        }
    }
}
