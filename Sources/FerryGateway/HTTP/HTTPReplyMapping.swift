import Ferry
import FerryMicro
import Foundation
import NIOCore

/// How a Ferry status becomes an HTTP status, as erpc's gateway maps it: a code below 200 is
/// 500, a code from 200 to 599 is itself, a code of 600 or more is 299 (the Ferry status is in the
/// JSON body). The gateway's own failures are told apart: no service serves the route (404), the
/// call's time ran out here (504).
enum HTTPReplyMapping {
    /// The HTTP status for a call that ended with `status`.
    static func httpStatus(for status: FerryStatus) -> Int {
        if status.isOK { return 200 }
        if status.origin != .remote {
            if status.code == .dialFailed && status.message == FerryStatus.noEndpoint().message { return 404 }
            if status.code == .timedOut { return 504 }
        }
        let code = Int(status.code.rawValue)
        switch code {
        case ..<200: return 500
        case 200...599: return code
        default: return 299
        }
    }

    /// The JSON body of a failed call: `{"code":404,"message":"Not Found","cause":"/x/y"}`.
    static func errorBody(for status: FerryStatus) -> ByteBuffer {
        let body = ErrorBody(code: status.code.rawValue, message: status.message, cause: status.cause)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        // Three plain fields always encode.
        return ByteBuffer(bytes: (try? encoder.encode(body)) ?? Data())
    }

    private struct ErrorBody: Encodable {
        var code: Int32
        var message: String
        var cause: String
    }
}
