import Ferry

extension FerryStatus {
    /// This status with a cause a user can act on where the library's cause only describes the
    /// symptom, and with balanced brackets.
    ///
    /// The raw proto reads a frame's first four bytes as its big-endian size, so a remote that
    /// is not a Ferry peer shows as a frame size over the limit: `HTTP` (1213486160) from an
    /// HTTP server, a TLS record header (0x15 or 0x16, then 0x03) from a TLS server called
    /// without `--tls`. The library reports the size only as text in the cause, so this reads
    /// that text.
    var explained: FerryStatus {
        var status = self
        status.cause = Self.remoteKind(fromCause: cause) ?? cause.balancingErrnoBrackets
        return status
    }

    private static func remoteKind(fromCause cause: String) -> String? {
        guard let match = cause.firstMatch(of: /frame size (\d+) exceeds/), let size = UInt32(match.1) else { return nil }
        let bytes = withUnsafeBytes(of: size.bigEndian) { Array($0) }
        if bytes == Array("HTTP".utf8) {
            return "this looks like an HTTP server, not a Ferry peer: its reply starts with HTTP"
        }
        if bytes[0] == 0x15 || bytes[0] == 0x16, bytes[1] == 0x03 {
            return "this looks like a TLS server: call it with --tls (and --tls-ca if its certificate is not signed by a system-trusted authority)"
        }
        return nil
    }
}

extension String {
    /// This text without the stray `)` that swift-nio's `IOError` writes before its errno
    /// ("Connection refused) (errno: 111)"), when the brackets do not balance without it.
    var balancingErrnoBrackets: String {
        guard !hasBalancedBrackets else { return self }
        let repaired = replacing(") (errno: ", with: " (errno: ")
        return repaired.hasBalancedBrackets ? repaired : self
    }

    /// Whether every `(` and `[` is closed, in order, and nothing else is.
    var hasBalancedBrackets: Bool {
        var open: [Character] = []
        for character in self {
            switch character {
            case "(", "[": open.append(character)
            case ")": if open.popLast() != "(" { return false }
            case "]": if open.popLast() != "[" { return false }
            default: break
            }
        }
        return open.isEmpty
    }
}
