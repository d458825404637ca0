import Foundation

/// Encodes an `Encodable` struct as `application/x-www-form-urlencoded` text.
///
/// Each property becomes `key=value`, in the order the value encodes its keys. Arrays repeat
/// the key (`tag=a&tag=b`); `nil` optionals and empty arrays write nothing. Values may be
/// `String`, `Bool`, any integer, `Double`, `Float`, `URL`, or any type that encodes one of
/// those through a single-value container (such as a raw-value enum). A top-level value that is
/// not keyed, nested structs and dictionaries, arrays of arrays, `nil` inside an array and
/// non-finite numbers all throw `EncodingError.invalidValue`.
///
/// Everything except `A-Z a-z 0-9 * - . _` is percent-encoded as UTF-8 with upper-case hex;
/// a space becomes `%20`.
internal struct FormURLEncoder {
    func encode<T: Encodable>(_ value: T) throws -> String {
        let sink = FormSink()
        try sink.run(value, with: FormFieldEncoder(sink: sink, codingPath: [], field: nil))
        return sink.pairs.map { formEscape($0.key) + "=" + formEscape($0.value) }.joined(separator: "&")
    }
}

/// Decodes a `Decodable` struct from `application/x-www-form-urlencoded` text.
///
/// `%XX` escapes are decoded as UTF-8 and `+` means a space; a malformed escape or invalid
/// UTF-8 throws `DecodingError.dataCorrupted`. Pairs are split on `&` (empty segments are
/// skipped) and a pair without `=` has an empty value. A repeated key fills an array; a scalar
/// property must have exactly one value. `Bool` accepts `true`, `false`, `1` and `0`.
///
/// An absent key decodes as `nil` for an optional and as `[]` for a non-optional array: the
/// array decodes from the key's (empty) list of values like any other, which keeps absent and
/// empty arrays symmetric with the encoder. Other absent non-optional values throw `keyNotFound`.
internal struct FormURLDecoder {
    func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        var fields: [String: [String]] = [:]
        for segment in text.split(separator: "&") {
            let parts = segment.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = try formUnescape(parts[0], at: [])
            fields[key, default: []].append(parts.count > 1 ? try formUnescape(parts[1], at: [FormKey(stringValue: key)]) : "")
        }
        return try T(from: FormRootDecoder(fields: fields))
    }
}

// MARK: - Encoding

/// Collects the pairs written so far and the first structural problem. Encoders can't throw
/// when a container is requested, so a problem is recorded there and thrown by `run` once the
/// offending value's `encode(to:)` returns, naming that value.
private final class FormSink {
    var pairs: [(key: String, value: String)] = []
    var problem: (path: [any CodingKey], message: String)?

    func note(_ message: String, at path: [any CodingKey]) { if problem == nil { problem = (path, message) } }

    func run<T: Encodable>(_ value: T, with encoder: FormFieldEncoder) throws {
        try value.encode(to: encoder)
        if let problem {
            throw EncodingError.invalidValue(value, .init(codingPath: problem.path, debugDescription: problem.message))
        }
    }

    /// Writes a scalar as one pair; anything else encodes itself into `target`.
    func put<T: Encodable>(_ value: T, into target: FormFieldEncoder) throws {
        if value is any FormDictionary {
            throw EncodingError.invalidValue(value, .init(codingPath: target.codingPath, debugDescription: nestedMessage))
        }
        guard let text = try formText(value, at: target.codingPath) else { return try run(value, with: target) }
        pairs.append((target.field ?? "", text))
    }
}

/// The encoder, and single-value container, for the top-level value (`field == nil`) or for
/// the value under one form key.
private struct FormFieldEncoder: Encoder, SingleValueEncodingContainer {
    let sink: FormSink
    let codingPath: [any CodingKey]
    let field: String?
    var inArray = false
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        if field != nil { sink.note(nestedMessage, at: codingPath) }
        return KeyedEncodingContainer(FormKeyedEncoding<Key>(sink: sink, codingPath: codingPath))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        if field == nil { sink.note(topLevelMessage, at: codingPath) }
        if inArray { sink.note(nestedArrayMessage, at: codingPath) }
        return FormUnkeyedEncoding(encoder: self)
    }

    func singleValueContainer() -> any SingleValueEncodingContainer {
        if field == nil { sink.note(topLevelMessage, at: codingPath) }
        return self
    }

    func encodeNil() throws {
        guard inArray else { return }  // a nil property: omit the key
        let context = EncodingError.Context(codingPath: codingPath, debugDescription: nilElementMessage)
        throw EncodingError.invalidValue(Optional<Any>.none as Any, context)
    }

    func encode<T: Encodable>(_ value: T) throws { try sink.put(value, into: self) }
}

private struct FormKeyedEncoding<Key: CodingKey>: KeyedEncodingContainerProtocol {
    let sink: FormSink
    let codingPath: [any CodingKey]

    /// `nil` is written by leaving the key out.
    mutating func encodeNil(forKey key: Key) {}
    // This generic method also serves every scalar overload of the protocol.
    mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { try sink.put(value, into: field(key)) }
    mutating func nestedContainer<N: CodingKey>(keyedBy keyType: N.Type, forKey key: Key) -> KeyedEncodingContainer<N> {
        field(key).container(keyedBy: N.self)
    }
    mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer { field(key).unkeyedContainer() }
    mutating func superEncoder() -> any Encoder { field(FormKey.superKey) }
    mutating func superEncoder(forKey key: Key) -> any Encoder { field(key) }

    private func field(_ key: any CodingKey) -> FormFieldEncoder {
        FormFieldEncoder(sink: sink, codingPath: codingPath + [key], field: key.stringValue)
    }
}

/// Writes each element as another pair under the same key.
private struct FormUnkeyedEncoding: UnkeyedEncodingContainer {
    let encoder: FormFieldEncoder
    var count = 0
    var codingPath: [any CodingKey] { encoder.codingPath }

    // Omitting a nil element would shift the ones after it, so it is refused.
    mutating func encodeNil() throws { try nextElement().encodeNil() }
    mutating func encode<T: Encodable>(_ value: T) throws { try encoder.sink.put(value, into: nextElement()) }
    mutating func nestedContainer<N: CodingKey>(keyedBy keyType: N.Type) -> KeyedEncodingContainer<N> {
        nextElement().container(keyedBy: N.self)
    }
    mutating func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer { nextElement().unkeyedContainer() }
    mutating func superEncoder() -> any Encoder { nextElement() }

    private mutating func nextElement() -> FormFieldEncoder {
        defer { count += 1 }
        return FormFieldEncoder(sink: encoder.sink, codingPath: codingPath + [FormKey(intValue: count)],
                                field: encoder.field, inArray: true)
    }
}

/// The text of a scalar value, or `nil` if `value` is not one of the scalar types.
private func formText<T: Encodable>(_ value: T, at path: [any CodingKey]) throws -> String? {
    switch value {
    case let text as String: return text
    case let flag as Bool: return flag ? "true" : "false"
    case let number as any FixedWidthInteger: return "\(number)"
    case let number as any BinaryFloatingPoint:
        guard number.isFinite else {
            throw EncodingError.invalidValue(value, .init(codingPath: path, debugDescription: "\(number) has no form representation"))
        }
        return "\(number)"
    // URL's own Codable form is keyed, so handle it here (as JSONEncoder does).
    case let url as URL: return url.absoluteString
    default: return nil
    }
}

// MARK: - Decoding

private struct FormRootDecoder: Decoder {
    let fields: [String: [String]]
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(FormKeyedDecoding<Key>(fields: fields))
    }
    func unkeyedContainer() throws -> any UnkeyedDecodingContainer { throw notKeyed([Any].self) }
    func singleValueContainer() throws -> any SingleValueDecodingContainer { throw notKeyed(Any.self) }

    private func notKeyed(_ type: Any.Type) -> DecodingError {
        .typeMismatch(type, .init(codingPath: [], debugDescription: topLevelMessage))
    }
}

private struct FormKeyedDecoding<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let fields: [String: [String]]
    var codingPath: [any CodingKey] { [] }
    var allKeys: [Key] { fields.keys.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { fields[key.stringValue] != nil }
    func decodeNil(forKey key: Key) -> Bool { !contains(key) }
    // This generic method also serves every scalar overload of the protocol.
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try field(key).decode(T.self) }
    func nestedContainer<N: CodingKey>(keyedBy type: N.Type, forKey key: Key) throws -> KeyedDecodingContainer<N> {
        try field(key).container(keyedBy: N.self)
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { try field(key).unkeyedContainer() }
    func superDecoder() -> any Decoder { field(FormKey.superKey) }
    func superDecoder(forKey key: Key) -> any Decoder { field(key) }

    private func field(_ key: any CodingKey) -> FormFieldDecoder {
        FormFieldDecoder(codingPath: [key], values: fields[key.stringValue] ?? [])
    }
}

/// The decoder, and single-value container, for the values under one key (or one element).
private struct FormFieldDecoder: Decoder, SingleValueDecodingContainer {
    let codingPath: [any CodingKey]
    let values: [String]
    var inArray = false
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        throw DecodingError.typeMismatch([String: Any].self, .init(codingPath: codingPath, debugDescription: nestedMessage))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard !inArray else {
            throw DecodingError.typeMismatch([Any].self, .init(codingPath: codingPath, debugDescription: nestedArrayMessage))
        }
        return FormUnkeyedDecoding(codingPath: codingPath, values: values)
    }

    func singleValueContainer() -> any SingleValueDecodingContainer { self }
    func decodeNil() -> Bool { values.isEmpty }

    func decode<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self is any FormDictionary.Type {
            throw DecodingError.typeMismatch(T.self, .init(codingPath: codingPath, debugDescription: nestedMessage))
        }
        let scalar = try formScalar(T.self, at: codingPath) {
            if values.count == 1 { return values[0] }
            guard values.isEmpty else {
                let message = "Expected one value, found \(values.count)"
                throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: message))
            }
            let key = codingPath[codingPath.count - 1]  // the path always ends with this value's key
            let message = "No value for \"\(key.stringValue)\""
            throw DecodingError.keyNotFound(key, .init(codingPath: codingPath.dropLast(), debugDescription: message))
        }
        return try scalar ?? T(from: self)
    }
}

private struct FormUnkeyedDecoding: UnkeyedDecodingContainer {
    let codingPath: [any CodingKey]
    let values: [String]
    var currentIndex = 0
    var count: Int? { values.count }
    var isAtEnd: Bool { currentIndex >= values.count }

    /// Form values are never `nil`.
    mutating func decodeNil() -> Bool { false }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try nextElement(T.self).decode(T.self) }
    mutating func nestedContainer<N: CodingKey>(keyedBy type: N.Type) throws -> KeyedDecodingContainer<N> {
        try nextElement([String: Any].self).container(keyedBy: N.self)
    }
    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try nextElement([Any].self).unkeyedContainer() }
    mutating func superDecoder() throws -> any Decoder { try nextElement(Any.self) }

    private mutating func nextElement(_ type: Any.Type) throws -> FormFieldDecoder {
        let path = codingPath + [FormKey(intValue: currentIndex)]
        guard !isAtEnd else {
            throw DecodingError.valueNotFound(type, .init(codingPath: path, debugDescription: "No more values"))
        }
        defer { currentIndex += 1 }
        return FormFieldDecoder(codingPath: path, values: [values[currentIndex]], inArray: true)
    }
}

/// Parses a scalar `T` from the text `read` supplies, or returns `nil` (without calling `read`)
/// if `T` is not a scalar type.
private func formScalar<T>(_ type: T.Type, at path: [any CodingKey], read: () throws -> String) throws -> T? {
    func mismatch(_ text: String) -> DecodingError {
        .typeMismatch(T.self, .init(codingPath: path, debugDescription: "Expected \(T.self), found \"\(text)\""))
    }
    func outOfRange(_ text: String) -> DecodingError {
        .dataCorrupted(.init(codingPath: path, debugDescription: "\"\(text)\" is out of range for \(T.self)"))
    }
    if T.self == String.self { return try read() as? T }
    if T.self == Bool.self {
        switch try read() {
        case "true", "1": return true as? T
        case "false", "0": return false as? T
        case let text: throw mismatch(text)
        }
    }
    if let integer = T.self as? any FixedWidthInteger.Type {
        let text = try read()
        if let value = integer.init(text) { return value as? T }
        // A well-formed integer that doesn't parse must be out of range for this width.
        let digits = text.hasPrefix("-") || text.hasPrefix("+") ? text.utf8.dropFirst() : text.utf8[...]
        let wellFormed = !digits.isEmpty && digits.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }
        throw wellFormed ? outOfRange(text) : mismatch(text)
    }
    if let float = T.self as? any (BinaryFloatingPoint & LosslessStringConvertible).Type {
        let text = try read()
        guard let value = float.init(text) else { throw mismatch(text) }
        // Too large a literal parses as infinity; the encoder never writes non-finite values.
        guard value.isFinite else { throw outOfRange(text) }
        return value as? T
    }
    if T.self == URL.self {
        let text = try read()
        guard let url = URL(string: text) else { throw mismatch(text) }
        return url as? T
    }
    return nil
}

// MARK: - Shared

/// Marks dictionaries: keys other than `String`/`Int` encode as an unkeyed list that would pass for an array.
private protocol FormDictionary {}
extension Dictionary: FormDictionary {}

private let topLevelMessage = "Form data must encode a keyed value (a struct) at the top level"
private let nestedMessage = "Nested structs and dictionaries are not supported in form data"
private let nestedArrayMessage = "Arrays of arrays are not supported in form data"
private let nilElementMessage = "nil cannot be an array element in form data"
private let hexDigits = Array("0123456789ABCDEF".utf8)
private let unreservedBytes = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-._".utf8)

private struct FormKey: CodingKey {
    var stringValue: String
    var intValue: Int? = nil
    static let superKey = FormKey(stringValue: "super")

    init(stringValue: String) { self.stringValue = stringValue }
    init(intValue: Int) { (stringValue, self.intValue) = ("Index \(intValue)", intValue) }
}

private func formEscape(_ text: String) -> String {
    var bytes: [UInt8] = []
    for byte in text.utf8 {
        if unreservedBytes.contains(byte) { bytes.append(byte); continue }
        bytes += [UInt8(ascii: "%"), hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0xF)]]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Decodes `%XX` escapes and `+`; `path` names the key when `text` is a value.
private func formUnescape(_ text: Substring, at path: [any CodingKey]) throws -> String {
    let lowerHex = Array("0123456789abcdef".utf8)
    func hexValue(_ byte: UInt8) -> UInt8? { (hexDigits.firstIndex(of: byte) ?? lowerHex.firstIndex(of: byte)).map(UInt8.init) }
    let input = Array(text.utf8)
    var bytes: [UInt8] = []
    var index = 0
    while index < input.count {
        switch input[index] {
        case UInt8(ascii: "+"):
            bytes.append(UInt8(ascii: " "))
        case UInt8(ascii: "%"):
            guard index + 2 < input.count, let high = hexValue(input[index + 1]), let low = hexValue(input[index + 2]) else {
                throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "Malformed percent escape in \"\(text)\""))
            }
            bytes.append(high << 4 | low)
            index += 2
        case let byte:
            bytes.append(byte)
        }
        index += 1
    }
    guard let decoded = String(validating: bytes, as: UTF8.self) else {
        throw DecodingError.dataCorrupted(.init(codingPath: path, debugDescription: "\"\(text)\" does not decode to UTF-8 text"))
    }
    return decoded
}
