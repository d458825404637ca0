import ArgumentParser
import Ferry

/// erpc's WebSocket sub-protocol, as `--ws-proto` names it. Both ends must use the same one:
/// WebSocket has no negotiation of it in erpc.
enum WebSocketSubprotocolOption: String, ExpressibleByArgument, CaseIterable {
    /// One JSON object per message (erpc's default).
    case json
    /// One protobuf payload per message.
    case pb

    /// The library's name for it.
    var subprotocol: FerryWebSocketProto.Subprotocol {
        switch self {
        case .json: .json
        case .pb: .protobuf
        }
    }
}

/// Where `ferry call` dials: a ``FerryAddress``, or a `wss://` URL, which is the WebSocket
/// address of its `ws://` twin with TLS on (port 443 by default).
struct CallTarget {
    /// The address to dial.
    var address: FerryAddress
    /// Whether the address itself asks for TLS (`wss://`).
    var requiresTLS: Bool

    /// Parses what `FerryAddress` parses, and `wss://HOST[:PORT][/PATH]`; nil otherwise.
    init?(_ text: String) {
        if text.hasPrefix("wss://") {
            let rest = text.dropFirst(6)
            let authority = rest.prefix { $0 != "/" }
            let hasPort = authority.contains(":") && !authority.hasSuffix("]")
            let path = rest.dropFirst(authority.count)
            guard !authority.isEmpty, let address = FerryAddress("ws://\(authority)\(hasPort ? "" : ":443")\(path)") else { return nil }
            (self.address, requiresTLS) = (address, true)
        } else {
            guard let address = FerryAddress(text) else { return nil }
            (self.address, requiresTLS) = (address, false)
        }
    }

    /// Whether this is a WebSocket address (`ws://` or `wss://`).
    var isWebSocket: Bool {
        if case .webSocket = address { true } else { false }
    }
}

extension FerryAddress {
    /// The address as a user writes it: a WebSocket address with TLS reads `wss://`.
    func displayed(tls: Bool) -> String {
        let text = description
        guard tls, case .webSocket = self, text.hasPrefix("ws://") else { return text }
        return "wss://" + text.dropFirst(5)
    }
}
