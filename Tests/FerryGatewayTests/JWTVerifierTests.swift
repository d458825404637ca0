import Ferry
import FerryGateway
import FerryTestSupport
import Foundation
import JWTKit
import Testing

/// The claims a token issuer signs.
private struct IssuedClaims: JWTPayload {
    var sub: SubjectClaim
    var exp: ExpirationClaim
    var aud: AudienceClaim?
    var iss: IssuerClaim?

    func verify(using algorithm: some JWTAlgorithm) throws {}
}

/// Signs tokens with HMAC-SHA256 and `secret`.
private let secret = "a secret of at least thirty-two bytes"
private let otherSecret = "another secret of thirty-two bytes or more"

private func token(
    secret: String = secret, subject: String = "ivy", expires: Date = Date(timeIntervalSinceNow: 3600),
    audience: String? = nil, issuer: String? = nil
) async throws -> String {
    let keys = JWTKeyCollection()
    await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
    let claims = IssuedClaims(
        sub: SubjectClaim(value: subject), exp: ExpirationClaim(value: expires),
        aud: audience.map { AudienceClaim(value: [$0]) }, iss: issuer.map { IssuerClaim(value: $0) })
    return try await keys.sign(claims)
}

@Suite("JWT tokens")
struct JWTVerifierTests {
    @Test("a valid token's subject is the user ID")
    func validToken() async throws {
        let verifier = try await FerryJWTVerifier.hmacSHA256(secret: secret, audience: "chat", issuer: "auth")
        let user = try await verifier.userID(for: token(audience: "chat", issuer: "auth"))
        #expect(user == "ivy")
    }

    @Test(
        "tokens that must be refused are refused with 401 and a reason that does not echo the token",
        arguments: ["expired", "bad signature", "wrong audience", "wrong issuer", "malformed"])
    func refused(case name: String) async throws {
        let verifier = try await FerryJWTVerifier.hmacSHA256(secret: secret, audience: "chat", issuer: "auth")
        let bad: String
        switch name {
        case "expired": bad = try await token(expires: Date(timeIntervalSinceNow: -60), audience: "chat", issuer: "auth")
        case "bad signature": bad = try await token(secret: otherSecret, audience: "chat", issuer: "auth")
        case "wrong audience": bad = try await token(audience: "billing", issuer: "auth")
        case "wrong issuer": bad = try await token(audience: "chat", issuer: "someone")
        default: bad = "not.a.jwt"
        }
        let status = await #expect(throws: FerryStatus.self) { _ = try await verifier.userID(for: bad) }
        #expect(status?.code == .unauthorized)
        #expect(status.map { !$0.cause.contains(bad) } == true, "\(String(describing: status))")
    }

    @Test("a secret shorter than 32 bytes is refused when the verifier is made")
    func shortSecret() async throws {
        await #expect(throws: FerryJWTVerifier.ShortSecret.self) { _ = try await FerryJWTVerifier.hmacSHA256(secret: "short") }
    }

    @Test("through the gateway: a client with a JWT becomes the token's subject")
    func gatewayWithJWT() async throws {
        let verifier = try await FerryJWTVerifier.hmacSHA256(secret: secret)
        let signed = try await token(subject: "jules")
        try await withGateway(allListeners(), verifier: verifier) { gateway, addresses, _ in
            let client = clientPeer(token: signed)
            let session = try await client.dial(try #require(addresses.webSocket))
            let meta: [String: [String]] = try await session.call("/echo/meta", ())
            #expect(meta["X-Ferry-User"] == ["jules"])
            #expect(gateway.sessions(of: "jules").count == 1)
            await client.close()
        }
    }
}
