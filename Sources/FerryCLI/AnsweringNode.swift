import Ferry
import Synchronization

/// Which node a service call went to: the remote of the last session that wrote the call's
/// route. With retries, that is the node of the last attempt, the one whose answer the caller
/// got.
final class AnsweringNode: Sendable {
    private let route: String
    private let address = Mutex<String?>(nil)

    init(route: String) {
        self.route = route
    }

    /// The remote address of the node, once the call was written.
    var current: String? { address.withLock { $0 } }

    /// A hook for the calling peer that records where the route's CALL or PUSH is written.
    var hook: @Sendable (inout FerryMessage, FerrySession) throws -> Void {
        { [self] message, session in
            guard message.serviceMethod == route, message.type == .call || message.type == .push else { return }
            address.withLock { $0 = session.remoteAddress }
        }
    }
}
