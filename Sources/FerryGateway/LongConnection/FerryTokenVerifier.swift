import Ferry

/// Turns the token an outside client sends in its auth handshake into a user ID. Throw (a
/// ``FerryStatus`` such as `.unauthorized`, or any error, which becomes 401) to refuse it; the
/// session is then closed.
public protocol FerryTokenVerifier: Sendable {
    /// The user ID the token proves, or a thrown refusal.
    func userID(for token: String) async throws -> String
}

/// For development only: the token is the user name. Anyone can be anyone; never use it where
/// strangers can connect. User names are 1 to 64 letters, digits, `-`, `_` or `.`.
public struct FerryDevelopmentTokenVerifier: FerryTokenVerifier {
    /// Creates the verifier.
    public init() {}

    /// The token itself, when it is a valid user name.
    public func userID(for token: String) async throws -> String {
        guard (1...64).contains(token.utf8.count),
            token.utf8.allSatisfy({ byte in
                (byte >= 0x30 && byte <= 0x39) || (byte | 0x20 >= 0x61 && byte | 0x20 <= 0x7A) || byte == 0x2D || byte == 0x5F || byte == 0x2E
            })
        else {
            throw FerryStatus.unauthorized("a development token is a user name: 1 to 64 letters, digits, '-', '_' or '.'")
        }
        return token
    }
}
