/// Where a peer listens or dials: a TCP host and port (IPv4, IPv6 or a name), a Unix domain
/// socket path, or a WebSocket endpoint.
public enum FerryAddress: Hashable, Sendable, CustomStringConvertible {
    /// A TCP address. Port 0 when listening picks a free port.
    case tcp(host: String, port: Int)
    /// A Unix domain socket path.
    case unix(path: String)
    /// A WebSocket endpoint: HTTP/1.1 on `host:port`, upgraded to WebSocket on `path` (e.g.
    /// `/ws`); messages in erpc's WebSocket mixer format (``FerryPeer/WebSocket``). Port 0 when
    /// listening picks a free port. With a TLS configuration given to `listen` or `dial`, the
    /// same endpoint is `wss://`.
    case webSocket(host: String, port: Int, path: String)

    /// Parses `HOST:PORT`, `[IPv6]:PORT`, `unix:PATH` or `ws://HOST[:PORT][/PATH]` (port 80 and
    /// path `/` by default); nil when the text is none of them.
    public init?(_ text: String) {
        if text.hasPrefix("ws://") {
            let rest = text.dropFirst(5)
            let authority = rest.prefix { $0 != "/" }
            let path = rest.dropFirst(authority.count)
            guard let endpoint = FerryAddress(authority.contains(":") && !authority.hasSuffix("]") ? String(authority) : "\(authority):80"),
                case .tcp(let host, let port) = endpoint
            else { return nil }
            self = .webSocket(host: host, port: port, path: path.isEmpty ? "/" : String(path))
            return
        }
        if text.hasPrefix("unix:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { return nil }
            self = .unix(path: path)
            return
        }
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self = .tcp(host: host, port: port)
    }

    /// `HOST:PORT` (IPv6 hosts in brackets), `unix:PATH` or `ws://HOST:PORT/PATH`.
    public var description: String {
        switch self {
        case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        case .unix(let path): "unix:\(path)"
        case .webSocket(let host, let port, let path): "ws://\(FerryAddress.tcp(host: host, port: port))\(path)"
        }
    }
}

extension FerryAddress {
    /// Whether this is a Unix domain socket path.
    var isUnixDomainSocket: Bool {
        if case .unix = self { true } else { false }
    }

    /// The host of a TCP or WebSocket address.
    var host: String? {
        switch self {
        case .tcp(let host, _), .webSocket(let host, _, _): host
        case .unix: nil
        }
    }
}
