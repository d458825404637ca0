import PostgresNIO

/// Why a ``FerryPostgresMailbox`` could not serve a call.
///
/// It prints as `code: "message"`, followed by ` (cause: "…")` when PostgreSQL or the
/// connection reported the reason. The cause names the server's error code and message, never
/// the statement's values.
public struct FerryPostgresMailboxError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Wrapped: Hashable, Sendable {
            case invalidInput
            case timedOut
            case unavailable
            case incompatibleSchema
            case closed
            case storageFailed
        }

        private let wrapped: Wrapped

        private init(_ wrapped: Wrapped) {
            self.wrapped = wrapped
        }

        /// The call was refused before reaching the database: a user name or route holds a NUL
        /// character (PostgreSQL text cannot), or a user name is longer than
        /// ``FerryPostgresMailbox/maximumUserNameLength``. Nothing was stored.
        public static let invalidInput = Code(.invalidInput)
        /// The database did not answer within ``FerryPostgresMailbox/Configuration/timeout``
        /// (no connection could be made, or a statement took too long). An append that timed out
        /// may or may not have been stored.
        public static let timedOut = Code(.timedOut)
        /// The connection to the database failed or was lost during the call. An append that
        /// failed so may have been stored if its commit had been sent.
        public static let unavailable = Code(.unavailable)
        /// The database holds mailbox tables of a newer schema version than this one reads.
        public static let incompatibleSchema = Code(.incompatibleSchema)
        /// The mailbox was closed (or is closing) and takes no more calls.
        public static let closed = Code(.closed)
        /// PostgreSQL reported an error for a statement (a full disk, missing permissions).
        /// A failed append stored none of its messages.
        public static let storageFailed = Code(.storageFailed)

        /// The code in words, as the error prints it.
        public var description: String {
            switch wrapped {
            case .invalidInput: "invalid input"
            case .timedOut: "timed out"
            case .unavailable: "database unavailable"
            case .incompatibleSchema: "incompatible schema"
            case .closed: "closed"
            case .storageFailed: "storage failed"
            }
        }
    }

    /// What went wrong.
    public var code: Code
    /// What was being done, and with which database.
    public var message: String
    /// The error PostgresNIO reported, if any.
    public var cause: (any Error)?

    /// Creates an error.
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    /// `code: "message"`, and the cause's summary if there is one.
    public var description: String {
        let head = "\(code): \"\(message)\""
        guard let cause else { return head }
        return head + " (cause: \"\(Self.summary(of: cause))\")"
    }

    /// The cause as a short text: PostgresNIO hides the details of its errors from
    /// `description`; this shows the server's error code and message, or the connection's
    /// failure, and leaves out the statement and its values.
    static func summary(of error: any Error) -> String {
        switch error {
        case let transaction as PostgresTransactionError:
            if let cause = transaction.closureError ?? transaction.beginError ?? transaction.commitError {
                return summary(of: cause)
            }
            return "transaction failed"
        case let psql as PSQLError:
            var parts = ["\(psql.code)"]
            if let state = psql.serverInfo?[.sqlState] { parts.append(state) }
            if let message = psql.serverInfo?[.message] { parts.append(message) }
            if let underlying = psql.underlying { parts.append(summary(of: underlying)) }
            return parts.joined(separator: ": ")
        default:
            return "\(error)"
        }
    }

    /// The code for an error PostgresNIO reported: lost or refused connections are
    /// ``Code/unavailable``, the rest ``Code/storageFailed``.
    static func code(for error: any Error) -> Code {
        switch error {
        case let transaction as PostgresTransactionError:
            guard let cause = transaction.closureError ?? transaction.beginError ?? transaction.commitError else { return .storageFailed }
            return code(for: cause)
        case let psql as PSQLError:
            switch psql.code {
            case .connectionError, .serverClosedConnection, .clientClosedConnection, .uncleanShutdown, .poolClosed,
                .sslUnsupported, .failedToAddSSLHandler:
                return .unavailable
            case .server:
                // Class 08: connection exceptions; 57P01-03: the server is shutting down or starting.
                let state = psql.serverInfo?[.sqlState] ?? ""
                return state.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(state) ? .unavailable : .storageFailed
            default:
                return .storageFailed
            }
        default:
            return .storageFailed
        }
    }
}
