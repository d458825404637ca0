/// Why a ``FerrySQLiteMailbox`` could not open its file, or could not serve a call.
///
/// It prints as `code: "message"`, followed by ` (cause: "…")` when SQLite reported the reason.
public struct FerrySQLiteMailboxError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Wrapped: Hashable, Sendable {
            case cannotOpen
            case unreadableFile
            case closed
            case storageFailed
        }

        private let wrapped: Wrapped

        private init(_ wrapped: Wrapped) {
            self.wrapped = wrapped
        }

        /// The file could not be opened or created (a missing directory, no permission).
        public static let cannotOpen = Code(.cannotOpen)
        /// The file is not a mailbox this version can use: not an SQLite database, damaged, or
        /// written by a newer version of the schema. Nothing in it was changed.
        public static let unreadableFile = Code(.unreadableFile)
        /// The mailbox was closed (or is closing) and takes no more calls.
        public static let closed = Code(.closed)
        /// SQLite failed while reading or writing (a full disk, an I/O error). A failed append
        /// stored none of its messages.
        public static let storageFailed = Code(.storageFailed)

        public var description: String {
            switch wrapped {
            case .cannotOpen: "cannot open"
            case .unreadableFile: "unreadable file"
            case .closed: "closed"
            case .storageFailed: "storage failed"
            }
        }
    }

    /// What went wrong.
    public var code: Code
    /// What was being done, and with which file.
    public var message: String
    /// The error SQLite reported, if any.
    public var cause: (any Error)?

    /// Creates an error.
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        let head = "\(code): \"\(message)\""
        guard let cause else { return head }
        return head + " (cause: \"\(cause)\")"
    }
}
