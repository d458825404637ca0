import Foundation

/// How the durable mailboxes store times: whole milliseconds since 1970.
package enum StoredTime {
    package static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
    }

    package static func date(_ milliseconds: Int64) -> Date {
        Date(timeIntervalSince1970: Double(milliseconds) / 1000)
    }

    /// The time before which messages have expired, at `now`, in milliseconds.
    package static func expiry(_ limits: FerryMailboxLimits, at now: Date) -> Int64 {
        let (seconds, attoseconds) = limits.timeToLive.components
        let timeToLive = Double(seconds) * 1000 + Double(attoseconds) / 1e15
        let expiry = (Double(milliseconds(now)) - timeToLive).rounded(.down)
        guard expiry > Double(Int64.min), expiry < Double(Int64.max) else { return expiry < 0 ? Int64.min : Int64.max }
        return Int64(expiry)
    }
}
