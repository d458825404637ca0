import Ferry
import JWTKit

/// Verifies JSON Web Tokens (RFC 7519) with jwt-kit: the signature against the keys given, the
/// expiry (`exp`, required), and the audience and issuer when configured. The user ID is the
/// subject (`sub`).
///
/// ```swift
/// let verifier = try await FerryJWTVerifier.hmacSHA256(secret: secret, audience: "chat")
/// // or, for RSA, ECDSA or EdDSA keys and key sets: FerryJWTVerifier(keys: keys)
/// ```
///
/// Any failure is refused with 401 "Unauthorized"; the cause says what was wrong (bad signature,
/// expired, wrong audience) but never echoes the token.
public struct FerryJWTVerifier: FerryTokenVerifier {
    /// The keys tokens may be signed with (HMAC, RSA, ECDSA, EdDSA; selected by `kid` when there
    /// are several).
    public let keys: JWTKeyCollection
    /// The audience a token must name in `aud` (nil: not checked).
    public let audience: String?
    /// The issuer a token must name in `iss` (nil: not checked).
    public let issuer: String?

    /// Creates a verifier.
    public init(keys: JWTKeyCollection, audience: String? = nil, issuer: String? = nil) {
        self.keys = keys
        self.audience = audience
        self.issuer = issuer
    }

    /// A verifier of tokens signed with HMAC-SHA256 and `secret`, which must be at least 32
    /// bytes long (the hash's size, as RFC 7518 requires).
    public static func hmacSHA256(secret: String, audience: String? = nil, issuer: String? = nil) async throws -> FerryJWTVerifier {
        guard secret.utf8.count >= 32 else { throw ShortSecret(length: secret.utf8.count) }
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        return FerryJWTVerifier(keys: keys, audience: audience, issuer: issuer)
    }

    /// An HMAC secret shorter than the hash it keys.
    public struct ShortSecret: Error, CustomStringConvertible {
        /// The secret's length in bytes.
        public var length: Int
        /// What is wrong.
        public var description: String { "an HS256 secret needs at least 32 bytes, this one has \(length)" }
    }

    /// The claims the gateway reads.
    struct Claims: JWTPayload {
        var sub: SubjectClaim
        var exp: ExpirationClaim
        var aud: AudienceClaim?
        var iss: IssuerClaim?

        func verify(using algorithm: some JWTAlgorithm) throws {
            try exp.verifyNotExpired()
        }
    }

    /// The token's subject, once its signature, expiry, audience and issuer check out.
    public func userID(for token: String) async throws -> String {
        let claims: Claims
        do {
            claims = try await keys.verify(token, as: Claims.self)
        } catch {
            throw FerryStatus.unauthorized("invalid token: \(Self.reason(error))")
        }
        if let audience {
            guard let aud = claims.aud, aud.value.contains(audience) else {
                throw FerryStatus.unauthorized("invalid token: not for audience \(audience)")
            }
        }
        if let issuer, claims.iss?.value != issuer {
            throw FerryStatus.unauthorized("invalid token: not from issuer \(issuer)")
        }
        guard !claims.sub.value.isEmpty else {
            throw FerryStatus.unauthorized("invalid token: no subject")
        }
        return claims.sub.value
    }

    /// What was wrong with a token, without the token.
    private static func reason(_ error: any Error) -> String {
        guard let error = error as? JWTError else { return "malformed" }
        switch error.errorType {
        case .signatureVerificationFailed: return "bad signature"
        case .claimVerificationFailure: return "expired"
        case .missingKIDHeader, .unknownKID: return "unknown key"
        default: return "malformed"
        }
    }
}
