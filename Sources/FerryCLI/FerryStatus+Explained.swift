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
    ///
    /// A refused or cut WebSocket upgrade, and a TLS dial to a server without TLS, get a hint too.
    var explained: FerryStatus {
        var status = self
        status.cause = Self.remoteKind(fromCause: cause) ?? Self.hinted(cause.balancingErrnoBrackets)
        return status
    }

    /// This status as the outcome of a call over WebSocket: a server that closed with 1002
    /// (protocol error) could not read the call, which is what a sub-protocol other than the
    /// server's looks like. ``explained`` still applies after it.
    var explainedOverWebSocket: FerryStatus {
        var status = self
        if code == .connectionClosed, cause.contains("closed the WebSocket with 1002") {
            status.cause = "\(cause): the server could not read the call; check that --ws-proto matches its sub-protocol (json by default)"
        }
        return status
    }

    private static func hinted(_ cause: String) -> String {
        if cause.contains("refused the WebSocket upgrade: HTTP 404") {
            return "\(cause): no WebSocket endpoint at this path (ferry serve --ws serves /ws unless --ws-path says otherwise)"
        }
        if cause.contains("the connection closed during the WebSocket upgrade") {
            return "\(cause): the server did not answer the HTTP upgrade; if it is a raw Ferry or erpc port, call HOST:PORT without ws://"
        }
        if cause.contains("WRONG_VERSION_NUMBER") {
            return "the server does not speak TLS: call it without --tls (ws:// rather than wss://); \(cause)"
        }
        return cause
    }

    private static func remoteKind(fromCause cause: String) -> String? {
        guard let match = cause.firstMatch(of: /frame size (\d+) exceeds/), let size = UInt32(match.1) else { return nil }
        let bytes = withUnsafeBytes(of: size.bigEndian) { Array($0) }
        if bytes == Array("HTTP".utf8) {
            return "this looks like an HTTP server, not a Ferry peer: its reply starts with HTTP (if it serves Ferry over WebSocket, call ws://HOST:PORT/PATH)"
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
