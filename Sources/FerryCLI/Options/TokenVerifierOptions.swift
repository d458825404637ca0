import ArgumentParser
import Ferry
import FerryGateway
import Foundation

/// How `ferry gateway` turns the token a raw-socket or WebSocket client sends in its auth
/// handshake into a user ID. One choice at a time; more kinds of verifier (signed tokens) join
/// `--dev-auth` here.
struct TokenVerifierOptions: ParsableArguments {
    @Flag(help: "Development only: a client's token is its user name, so anyone can connect as anyone.")
    var devAuth = false

    /// Whether any verifier was chosen.
    var isChosen: Bool { devAuth }

    /// The chosen verifier, or nil when none was.
    var verifier: (any FerryTokenVerifier)? {
        devAuth ? FerryDevelopmentTokenVerifier() : nil
    }

    /// A warning to print on standard error before the gateway starts, or nil.
    var warning: String? {
        guard devAuth else { return nil }
        return """
            ************************************************************************
            WARNING: ferry gateway --dev-auth is for DEVELOPMENT ONLY.
            A client's token is taken as its user name: anyone who can reach the
            socket or WebSocket listener can connect as any user. Never expose it.
            ************************************************************************
            """
    }
}

/// The verifier of a gateway whose only listener is HTTP, where no client sends a token: it
/// refuses every token.
struct RefusingTokenVerifier: FerryTokenVerifier {
    func userID(for token: String) async throws -> String {
        throw FerryStatus.unauthorized("this gateway has no token verifier")
    }
}
