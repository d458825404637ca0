import Ferry
import NIOCore

/// Passes pushes accepted here to the other gateways that hold their users.
struct ClusterForwarding: Sendable {
    let presence: Presence
    let links: GatewayLinks

    /// Marks a call from another gateway, which is not forwarded again.
    static let forwardedKey = "X-Ferry-Forwarded"

    /// The other gateways that hold any of `users`, with the users each holds.
    func gateways(holding users: [String]) async -> [FerryAddress: [String]] {
        var holders: [FerryAddress: [String]] = [:]
        for user in Set(users) {
            for address in await presence.otherGateways(of: user) { holders[address, default: []].append(user) }
        }
        return holders
    }

    /// Pushes to the users' sessions on other gateways; returns how many were written there.
    func forwardPush(to users: [String], route: String, body: ByteBuffer, codec: FerryCodecID, timeout: Duration) async -> Int {
        var written = 0
        for (address, held) in await gateways(holding: users) {
            var meta: FerryMeta = [Self.forwardedKey: "1", FerryGateway.MetaKey.pushRoute: route]
            for user in held { meta.add(FerryGateway.MetaKey.user, user) }
            do {
                let session = try await links.session(to: address)
                written += try await session.call(
                    FerryGateway.InnerRoute.push, body, as: Int.self, options: FerryCallOptions(timeout: timeout, meta: meta, codec: codec))
            } catch {
                presence.logger.warning("push not forwarded", metadata: ["gateway": "\(address)", "error": "\(error)"])
            }
        }
        return written
    }

    /// Tells the other gateways holding the users that their messages were stored.
    func notifyStored(_ stored: [FerryGateway.Stored], timeout: Duration) async {
        for (address, held) in await gateways(holding: stored.map(\.user)) {
            let theirs = stored.filter { held.contains($0.user) }
            do {
                let session = try await links.session(to: address)
                try await session.call(
                    FerryGateway.InnerRoute.notify, theirs, as: Void.self,
                    options: FerryCallOptions(timeout: timeout, meta: [Self.forwardedKey: "1"]))
            } catch {
                presence.logger.warning("stored pushes not announced", metadata: ["gateway": "\(address)", "error": "\(error)"])
            }
        }
    }
}
