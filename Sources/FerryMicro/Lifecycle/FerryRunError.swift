/// Why a type whose `run()` owns its background work (``FerryClient``, an etcd registry) cannot
/// run. A lifecycle error, not a per-call one: calls fail with ``FerryStatus``.
///
/// It prints as `code: "message"`.
public struct FerryRunError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Wrapped: Hashable, Sendable {
            case alreadyRunning
            case stopped
        }

        private let wrapped: Wrapped

        private init(_ wrapped: Wrapped) {
            self.wrapped = wrapped
        }

        /// `run()` was called while an earlier call of it is still running.
        public static let alreadyRunning = Code(.alreadyRunning)
        /// `run()` was called after the value stopped (its `run()` returned, or it was closed
        /// before it ran): a stopped value does not start again.
        public static let stopped = Code(.stopped)

        public var description: String {
            switch wrapped {
            case .alreadyRunning: "already running"
            case .stopped: "stopped"
            }
        }
    }

    /// What went wrong.
    public var code: Code
    /// What was being run and why it could not.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \"\(message)\"" }
}
