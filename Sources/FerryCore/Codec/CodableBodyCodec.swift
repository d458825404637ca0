import NIOCore

/// The part shared by codecs that work through `Codable` (json, form): the run-time check that
/// a value is `Encodable` / `Decodable`, and the wrapping of their errors.
protocol CodableBodyCodec: FerryCodec {
    func encodeCodable(_ value: any Encodable, into buffer: inout ByteBuffer) throws
    func decodeCodable<Value: Decodable>(_ type: Value.Type, from buffer: ByteBuffer) throws -> Value
}

extension CodableBodyCodec {
    func encodeThroughCodable<Value>(_ value: Value, into buffer: inout ByteBuffer) throws {
        guard let encodable = value as? any Encodable else {
            throw FerryCodecError.unsupportedType(String(describing: Value.self), codec: name)
        }
        do {
            try encodeCodable(encodable, into: &buffer)
        } catch {
            throw FerryCodecError.encodingFailed(codec: name, reason: "\(error)")
        }
    }

    func decodeThroughCodable<Value>(_ type: Value.Type, from buffer: ByteBuffer) throws -> Value {
        guard let decodable = Value.self as? any Decodable.Type else {
            throw FerryCodecError.unsupportedType(String(describing: Value.self), codec: name)
        }
        do {
            return try decodeCodable(decodable, from: buffer) as! Value
        } catch {
            throw FerryCodecError.invalidBody(codec: name, reason: "\(error)")
        }
    }
}
