import NIOCore

/// The optional auth handshake: AUTH_CALL from the dialling side, AUTH_REPLY from the listening side.
extension FerrySession {
    /// Dialling side: sends the credential on `channel` and waits for the AUTH_REPLY.
    func authenticate(credential: String, timeout: Duration, on channel: any Channel) async throws {
        var message = FerryMessage(type: .authCall, seq: try nextSeq(), bodyCodec: .plain, body: ByteBuffer(string: credential))
        try prepareForWrite(&message)
        let reply: FerryMessage = try await withCheckedThrowingContinuation { continuation in
            state.withLock { $0.awaitAuthReply(continuation) }
            let deadline = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) { [self] in
                failAuth(FerryStatus.timedOut("no auth reply within \(timeout)"))
            }
            channel.writeAndFlush(message).whenComplete { [self] result in
                if case .failure(let error) = result { failAuth(failure(for: error)) }
            }
            channel.closeFuture.whenComplete { [self] _ in
                deadline.cancel()
                failAuth(.connectionClosed("closed during the auth handshake"))
            }
        }
        guard reply.status.isOK else { throw AuthRefused(status: reply.status) }
    }

    /// The remote refused this side's credential (as opposed to the handshake failing).
    struct AuthRefused: Error {
        var status: FerryStatus
    }

    private func failAuth(_ status: FerryStatus) {
        state.withLock { $0.takeAuthWaiter() }?.resume(throwing: status)
    }

    /// Listening side: verifies the credential, answers AUTH_REPLY, and either lets the session
    /// in or closes it.
    func receiveAuthCall(_ message: FerryMessage, on channel: any Channel) {
        guard let verify = peer.configuration.auth?.verify else {
            // No auth configured here: accept the handshake so a dialler that insists still works.
            writeAuthReply(status: .ok, body: "", on: channel)
            return
        }
        guard case .authenticating = state.withLock({ $0.lifecycle }) else {
            writeAuthReply(status: FerryStatus.invalidOperation("already authenticated"), body: "", on: channel)
            return
        }
        // erpc diallers may send the credential with any codec (its default is JSON), so decode
        // it with the codec it names; unknown codecs and raw text fall back to the bytes as text.
        let credential = (try? codecs.decode(String.self, from: message.body, codec: message.bodyCodec)) ?? String(buffer: message.body)
        peer.tasks.start { [self] in
            do {
                let answer = try await verify(credential, self)
                guard state.withLock({ $0.authenticated() }) else { return }
                authSlot?.release()
                writeAuthReply(status: .ok, body: answer, on: channel)
                peer.sessionReady(self)
            } catch {
                let status = (error as? FerryStatus) ?? FerryStatus.unauthorized("\(error)")
                logger.info("closing session: auth refused", metadata: ["status": "\(status)"])
                recordCloseReason("auth refused: \(status)")
                writeAuthReply(status: status, body: "", on: channel, thenClose: true)
            }
        }
    }

    private func writeAuthReply(status: FerryStatus, body: String, on channel: any Channel, thenClose: Bool = false) {
        guard let seq = try? nextSeq() else { return }
        let reply = FerryMessage(type: .authReply, seq: seq, status: status, bodyCodec: body.isEmpty ? .none : .plain, body: ByteBuffer(string: body))
        channel.writeAndFlush(reply).whenComplete { _ in
            if thenClose { channel.close(promise: nil) }
        }
    }

    func refuseUnauthenticated(_ message: FerryMessage, on channel: any Channel) {
        let status = FerryStatus.unauthorized("auth message(1st) expected AUTH_CALL, received \(message.type)")
        recordCloseReason("message before auth")
        logger.info("closing session: message before auth", metadata: ["type": "\(message.type)"])
        let reply = FerryMessage(type: message.type == .call ? .reply : .authReply, seq: message.seq, status: status, filters: message.filters)
        channel.writeAndFlush(reply).whenComplete { _ in channel.close(promise: nil) }
    }

    /// Closes an accepted session that has not authenticated within `timeout`.
    func enforceAuthDeadline(_ timeout: Duration) {
        let channel = self.channel
        channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) { [self] in
            if case .authenticating = state.withLock({ $0.lifecycle }) {
                closeConnection(channel, reason: "no auth within \(timeout)")
            }
        }
    }
}
