import Ferry
import Foundation

/// The body codecs HTTP in speaks, by media type: `Content-Type` picks the request body's
/// codec, `Accept` the reply's.
enum HTTPMediaType {
    /// The codec of a request body with this `Content-Type`; nil when Ferry has none for it.
    /// Parameters (`; charset=utf-8`) are ignored.
    static func codec(contentType: String) -> FerryCodecID? {
        // The usual spellings first, without taking the header apart.
        switch contentType {
        case "application/json", "application/json; charset=utf-8": return .json
        case "application/x-protobuf", "application/protobuf": return .protobuf
        case "text/plain", "text/plain; charset=utf-8": return .plain
        case "application/x-www-form-urlencoded": return .form
        default: break
        }
        switch essence(of: contentType) {
        case "application/json", "text/json": return .json
        case let type where type.hasSuffix("+json"): return .json
        case "application/x-protobuf", "application/protobuf", "application/vnd.google.protobuf": return .protobuf
        case "text/plain": return .plain
        case "application/x-www-form-urlencoded": return .form
        default: return nil
        }
    }

    /// The reply codec an `Accept` header asks for: the first listed type with a codec, in the
    /// order given (quality values are not weighed). nil when it names none (`*/*`, absent).
    static func codec(accept: String) -> FerryCodecID? {
        for type in accept.split(separator: ",") {
            if let codec = codec(contentType: String(type)) { return codec }
        }
        return nil
    }

    /// The `Content-Type` of a reply body in `codec`.
    static func contentType(of codec: FerryCodecID) -> String {
        switch codec {
        case .json: "application/json"
        case .protobuf: "application/x-protobuf"
        case .plain: "text/plain; charset=utf-8"
        case .form: "application/x-www-form-urlencoded"
        default: "application/octet-stream"
        }
    }

    /// `type/subtype` in lower case, without parameters or spaces.
    private static func essence(of mediaType: String) -> String {
        let type = mediaType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return type.trimmingCharacters(in: .whitespaces).lowercased()
    }
}
