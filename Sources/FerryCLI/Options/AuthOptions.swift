import ArgumentParser
import Ferry

/// The token of the auth handshake (AUTH_CALL / AUTH_REPLY): `call` sends it, `serve` accepts
/// only sessions that send it.
struct AuthOptions: ParsableArguments {
    @Option(
        name: [.customLong("token"), .customLong("auth")],
        help: ArgumentHelp("Auth handshake token: call sends it when it connects; serve refuses connections that do not send it.", valueName: "token"))
    var token: String?

    /// The dialling side's auth, or nil without a token.
    var dialling: FerryAuth? {
        token.map { token in FerryAuth(credential: { token }) }
    }

    /// The listening side's auth, or nil without a token.
    var listening: FerryAuth? {
        token.map { expected in
            FerryAuth(verify: { given, _ in
                guard Self.sameBytes(given, expected) else {
                    throw FerryStatus(.unauthorized, "Unauthorized", cause: "wrong token")
                }
                return "ok"
            })
        }
    }

    /// Compares in time that depends only on the lengths, so that a guesser learns nothing
    /// from how fast a wrong token is refused.
    private static func sameBytes(_ lhs: String, _ rhs: String) -> Bool {
        let left = Array(lhs.utf8), right = Array(rhs.utf8)
        guard left.count == right.count else { return false }
        return zip(left, right).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
