import Ferry
import FerryMicro
import NIOCore

/// Sends the calls and pushes of outside clients that the gateway does not serve itself to the
/// service that does, found through the gateway's ``FerryClient``. The meta gains the user ID,
/// the session ID and the client's IP (values a client sent under those keys are replaced, so a
/// client cannot speak for another); the reply comes back with its status, meta and body
/// intact.
struct InwardProxy: Sendable {
    let client: FerryClient
    let users: UserDirectory
    let callTimeout: Duration

    func call(_ message: FerryMessage, _ context: FerryContext) async throws -> FerryResponse {
        let reply = try await client.callForReply(message.serviceMethod, message.body, options: options(for: message, context))
        return FerryResponse(status: reply.status, meta: reply.meta, bodyCodec: reply.bodyCodec, body: reply.body)
    }

    func push(_ message: FerryMessage, _ context: FerryContext) async throws {
        try await client.push(message.serviceMethod, message.body, options: options(for: message, context))
    }

    private func options(for message: FerryMessage, _ context: FerryContext) -> FerryCallOptions {
        var meta = message.meta
        // The caller's remaining time is re-announced by the inward call from the handler's
        // deadline; identity keys are the gateway's to set.
        for key in [FerryDeadline.metaKey, FerryGateway.MetaKey.user, FerryGateway.MetaKey.session, FerryGateway.MetaKey.realIP] {
            meta.remove(key)
        }
        let sessionID = context.session.id
        if let user = users.user(ofSessionID: sessionID) {
            meta.add(FerryGateway.MetaKey.user, user)
        }
        meta.add(FerryGateway.MetaKey.session, sessionID)
        meta.add(FerryGateway.MetaKey.realIP, Self.host(of: context.session.remoteAddress))
        return FerryCallOptions(
            timeout: context.deadline == nil ? callTimeout : nil, meta: meta, codec: message.bodyCodec)
    }

    /// The host part of a session's remote address (`HOST:PORT` or `[IPv6]:PORT`).
    static func host(of address: String) -> String {
        if case .tcp(let host, _) = FerryAddress(address) { return host }
        return address
    }
}
