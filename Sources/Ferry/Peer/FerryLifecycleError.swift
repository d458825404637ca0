/// Why a peer cannot do what was asked of its lifecycle.
public enum FerryLifecycleError: Error, Sendable, CustomStringConvertible {
    /// The peer is shutting down and takes no new listeners or served channels.
    case shuttingDown
    /// An accepted connection was refused at ``FerryPeer/Limits/maximumConnections``.
    case connectionLimit
    /// A graceful restart could not start its successor.
    case restartFailed(String)
    /// A listener could not be opened: the address is taken (a live listener holds the Unix
    /// socket path, or the port), the path is not a socket, or the system refused.
    case listenFailed(String)

    /// A readable form, for logs and error messages.
    public var description: String {
        switch self {
        case .shuttingDown: "the peer is shutting down"
        case .connectionLimit: "the connection limit is reached"
        case .restartFailed(let reason): "restart failed: \(reason)"
        case .listenFailed(let reason): "cannot listen: \(reason)"
        }
    }
}
