import ArgumentParser
import Ferry
import FerryGateway
import Foundation

/// How `ferry gateway` turns the token a raw-socket or WebSocket client sends in its auth
/// handshake into a user ID: a JSON Web Token signed with HS256 (`--jwt-secret-file`), or, for
/// development, the user name itself (`--dev-auth`). One choice at a time.
struct TokenVerifierOptions: ParsableArguments {
    @Flag(help: "Development only: a client's token is its user name, so anyone can connect as anyone.")
    var devAuth = false

    @Option(help: ArgumentHelp(
        "Verify JSON Web Tokens signed with HS256 and the secret in this file (at least 32 bytes; a final newline is ignored); the user is the token's subject.",
        valueName: "path"))
    var jwtSecretFile: String?

    @Option(help: "With --jwt-secret-file: the audience (aud) a token must name.")
    var jwtAudience: String?

    @Option(help: "With --jwt-secret-file: the issuer (iss) a token must name.")
    var jwtIssuer: String?

    /// Whether any verifier was chosen.
    var isChosen: Bool { devAuth || jwtSecretFile != nil }

    func validate() throws {
        if devAuth && jwtSecretFile != nil {
            throw ValidationError("--dev-auth and --jwt-secret-file do not go together: choose one token verifier")
        }
        if jwtSecretFile == nil && (jwtAudience != nil || jwtIssuer != nil) {
            throw ValidationError("--jwt-audience and --jwt-issuer need --jwt-secret-file")
        }
        if let path = jwtSecretFile {
            let secret = try readSecret(path)
            if secret.utf8.count < 32 {
                throw ValidationError("the secret in \(path) has \(secret.utf8.count) bytes; HS256 needs at least 32")
            }
        }
    }

    /// The chosen verifier, or nil when none was.
    func verifier() async throws -> (any FerryTokenVerifier)? {
        if devAuth { return FerryDevelopmentTokenVerifier() }
        guard let path = jwtSecretFile else { return nil }
        return try await FerryJWTVerifier.hmacSHA256(secret: readSecret(path), audience: jwtAudience, issuer: jwtIssuer)
    }

    private func readSecret(_ path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ValidationError("cannot read the JWT secret file \(path)")
        }
        return text.hasSuffix("\n") ? String(text.dropLast()) : text
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
