import Foundation
import Testing
@testable import FerryCore

@Suite("Form URL coding")
struct FormURLCodingTests {
    enum Color: String, Codable, Equatable { case red, darkBlue = "dark blue" }
    enum Level: Int, Codable, Equatable { case low = 1, high = 9 }

    struct Everything: Codable, Equatable {
        var name: String
        var flag: Bool
        var i: Int, i8: Int8, i16: Int16, i32: Int32, i64: Int64
        var u: UInt, u8: UInt8, u16: UInt16, u32: UInt32, u64: UInt64
        var d: Double, f: Float
        var color: Color, level: Level
        var link: URL
        var nick: String?
        var tags: [String]
        var levels: [Level]
    }

    struct Text: Codable, Equatable { var v: String }
    struct Flag: Codable, Equatable { var b: Bool }
    struct Small: Codable { var v: UInt8 }
    struct Whole: Codable { var v: Int }
    struct Single: Codable { var v: Float }
    struct Real: Codable { var v: Double }
    struct Optionals: Codable, Equatable { var a: Int?, b: String?, c: Color?, t: [String]? }
    struct Lists: Codable, Equatable { var tag: [String], n: [Int] }
    struct Required: Codable { var id: Int, color: Color }
    struct Inner: Codable { var x: Int? }
    struct Outer: Codable { var a: Int, inner: Inner }
    struct WithDictionary: Codable { var d: [String: Int] }
    struct WithRealKeys: Codable { var d: [Double: String] }  // encodes as an unkeyed list
    struct Grid: Codable { var v: [[Int]] }
    struct Gaps: Encodable { var v: [String?] }

    enum Keys: String, CodingKey { case x, y }

    /// Writes `y` before `x`, and an explicit nil.
    struct Manual: Encodable {
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode("2", forKey: .y)
            try container.encodeNil(forKey: .x)
            try container.encode("1", forKey: .x)
        }
    }

    let encoder = FormURLEncoder()
    let decoder = FormURLDecoder()

    // MARK: Round trips and leaf values

    @Test("every supported leaf type encodes in key order and round-trips")
    func everything() throws {
        let value = Everything(
            name: "Ann Lee", flag: true, i: -1, i8: -128, i16: 300, i32: -70000, i64: .max,
            u: 7, u8: 255, u16: 65535, u32: 1, u64: .max, d: 1.5e20, f: 0.25,
            color: .darkBlue, level: .high, link: try #require(URL(string: "https://x.io/a?b=c")),
            nick: nil, tags: ["a", "b c"], levels: [.low, .high])
        let text = try encoder.encode(value)
        #expect(text == "name=Ann%20Lee&flag=true&i=-1&i8=-128&i16=300&i32=-70000&i64=9223372036854775807"
            + "&u=7&u8=255&u16=65535&u32=1&u64=18446744073709551615&d=1.5e%2B20&f=0.25"
            + "&color=dark%20blue&level=9&link=https%3A%2F%2Fx.io%2Fa%3Fb%3Dc&tags=a&tags=b%20c&levels=1&levels=9")
        #expect(try decoder.decode(Everything.self, from: text) == value)
    }

    @Test("key order follows the order keys are encoded, and encodeNil omits the key")
    func keyOrder() throws {
        #expect(try encoder.encode(Manual()) == "y=2&x=1")
    }

    @Test("doubles round-trip exactly")
    func doubleRoundTrip() throws {
        let value = Real(v: 0.1 + 0.2)
        #expect(try decoder.decode(Real.self, from: encoder.encode(value)).v == value.v)
        #expect(try decoder.decode(Real.self, from: "v=-0.125").v == -0.125)
        #expect(try decoder.decode(Single.self, from: "v=3").v == 3)
    }

    @Test("Bool encodes as true/false and decodes from true/false/1/0")
    func bools() throws {
        #expect(try encoder.encode(Flag(b: false)) == "b=false")
        #expect(try decoder.decode(Flag.self, from: "b=true").b)
        #expect(try decoder.decode(Flag.self, from: "b=1").b)
        #expect(try !decoder.decode(Flag.self, from: "b=false").b)
        #expect(try !decoder.decode(Flag.self, from: "b=0").b)
        let error = try #require(decodingError { _ = try decoder.decode(Flag.self, from: "b=yes") })
        #expect(error.kind == "typeMismatch" && error.path == ["b"])
    }

    // MARK: Escaping and parsing

    @Test("only A-Z a-z 0-9 * - . _ stay unescaped; the rest is upper-case %XX of UTF-8")
    func escaping() throws {
        #expect(try encoder.encode(Text(v: "AZaz09*-._ ~+&=/é😀"))
            == "v=AZaz09*-._%20%7E%2B%26%3D%2F%C3%A9%F0%9F%98%80")
        #expect(try encoder.encode(["a b": "c"]) == "a%20b=c")
    }

    @Test("decoding unescapes %XX in either case and reads + as a space")
    func unescaping() throws {
        #expect(try decoder.decode(Text.self, from: "v=a+b%20c%2B%e2%82%AC").v == "a b c+€")
        #expect(try decoder.decode(Text.self, from: "v+x=1&v=2").v == "2")
    }

    @Test("empty segments are skipped, a pair without = is empty, the first = splits")
    func pairs() throws {
        #expect(try decoder.decode(Text.self, from: "&&v=x&&").v == "x")
        #expect(try decoder.decode(Text.self, from: "v").v == "")
        #expect(try decoder.decode(Text.self, from: "v=").v == "")
        #expect(try decoder.decode(Text.self, from: "v=a=b").v == "a=b")
        #expect(try decoder.decode(Text.self, from: "other=1&v=2").v == "2")
    }

    @Test("malformed escapes and invalid UTF-8 throw dataCorrupted",
          arguments: ["v=%G1", "v=%", "v=%4", "v=abc%", "%zz=1", "v=%FF", "v=%+1"])
    func malformedEscapes(text: String) throws {
        let error = try #require(decodingError { _ = try decoder.decode(Text.self, from: text) })
        #expect(error.kind == "dataCorrupted")
    }

    // MARK: Optionals and arrays

    @Test("nil optionals are omitted and absent keys decode as nil")
    func optionals() throws {
        #expect(try encoder.encode(Optionals()) == "")
        #expect(try decoder.decode(Optionals.self, from: "") == Optionals())
        #expect(try decoder.decode(Optionals.self, from: "a=3&c=red&t=x") == Optionals(a: 3, c: .red, t: ["x"]))
        #expect(try decoder.decode(Optionals.self, from: "b=") == Optionals(b: ""))
    }

    @Test("arrays use repeated keys; empty arrays write nothing and absent keys decode as []")
    func arrays() throws {
        #expect(try encoder.encode(Lists(tag: ["a", "b"], n: [1])) == "tag=a&tag=b&n=1")
        #expect(try encoder.encode(Lists(tag: [], n: [])) == "")
        #expect(try decoder.decode(Lists.self, from: "tag=a&n=1&tag=b") == Lists(tag: ["a", "b"], n: [1]))
        #expect(try decoder.decode(Lists.self, from: "") == Lists(tag: [], n: []))
    }

    @Test("a bad array element reports its index in the path")
    func arrayElementError() throws {
        let error = try #require(decodingError { _ = try decoder.decode(Lists.self, from: "n=1&n=x") })
        #expect(error.kind == "typeMismatch" && error.path == ["n", "Index 1"])
    }

    @Test("nil array elements and arrays of arrays throw")
    func unsupportedArrays() throws {
        #expect(throws: EncodingError.self) { try encoder.encode(Gaps(v: ["a", nil])) }
        #expect(throws: EncodingError.self) { try encoder.encode(Grid(v: [[1]])) }
        #expect(throws: DecodingError.self) { try decoder.decode(Grid.self, from: "v=1") }
    }

    // MARK: Missing and repeated values

    @Test("missing non-optional values throw keyNotFound")
    func missing() throws {
        let id = try #require(decodingError { _ = try decoder.decode(Required.self, from: "color=red") })
        #expect(id.kind == "keyNotFound" && id.key == "id")
        let color = try #require(decodingError { _ = try decoder.decode(Required.self, from: "id=1") })
        #expect(color.kind == "keyNotFound" && color.key == "color" && color.path.isEmpty)
    }

    @Test("a repeated key for a single value throws dataCorrupted")
    func repeatedScalar() throws {
        let error = try #require(decodingError { _ = try decoder.decode(Required.self, from: "id=1&id=2&color=red") })
        #expect(error.kind == "dataCorrupted" && error.path == ["id"])
    }

    @Test("an unknown raw value throws with the key path")
    func unknownRawValue() throws {
        let error = try #require(decodingError { _ = try decoder.decode(Required.self, from: "id=1&color=pink") })
        #expect(error.kind == "dataCorrupted" && error.path == ["color"])
    }

    // MARK: Numbers

    @Test("integers out of range throw dataCorrupted", arguments: ["300", "-1", "99999999999999999999"])
    func integerOutOfRange(text: String) throws {
        let error = try #require(decodingError { _ = try decoder.decode(Small.self, from: "v=\(text)") })
        #expect(error.kind == "dataCorrupted" && error.path == ["v"])
    }

    @Test("integers that do not parse throw typeMismatch", arguments: ["abc", "", "1.5", "+", "1e3", " 1"])
    func integerNotANumber(text: String) throws {
        let error = try #require(decodingError { _ = try decoder.decode(Small.self, from: "v=\(text)") })
        #expect(error.kind == "typeMismatch" && error.path == ["v"])
    }

    @Test("signed integers accept a sign")
    func signs() throws {
        #expect(try decoder.decode(Whole.self, from: "v=%2B42").v == 42)
        #expect(try decoder.decode(Whole.self, from: "v=-42").v == -42)
    }

    @Test("floating-point text that does not parse, overflows or is not finite throws")
    func floatingPointErrors() throws {
        let text = try #require(decodingError { _ = try decoder.decode(Real.self, from: "v=1.2.3") })
        #expect(text.kind == "typeMismatch" && text.path == ["v"])
        let overflow = try #require(decodingError { _ = try decoder.decode(Single.self, from: "v=1e39") })
        #expect(overflow.kind == "dataCorrupted" && overflow.path == ["v"])
        #expect(throws: DecodingError.self) { try decoder.decode(Real.self, from: "v=nan") }
    }

    @Test("non-finite numbers cannot be encoded")
    func nonFinite() {
        #expect(throws: EncodingError.self) { try encoder.encode(Real(v: .infinity)) }
        #expect(throws: EncodingError.self) { try encoder.encode(Single(v: .nan)) }
    }

    // MARK: Unsupported shapes

    @Test("a top-level value that is not keyed throws")
    func topLevel() {
        #expect(throws: EncodingError.self) { try encoder.encode("x") }
        #expect(throws: EncodingError.self) { try encoder.encode(1) }
        #expect(throws: EncodingError.self) { try encoder.encode([Text(v: "a")]) }
        #expect(throws: EncodingError.self) { try encoder.encode([Int]()) }
        #expect(throws: EncodingError.self) { try encoder.encode(Color.red) }
        #expect(throws: DecodingError.self) { try decoder.decode(String.self, from: "a=1") }
        #expect(throws: DecodingError.self) { try decoder.decode([String].self, from: "a=1") }
        #expect(throws: DecodingError.self) { try decoder.decode(Color.self, from: "a=1") }
    }

    @Test("nested structs and dictionaries throw instead of dropping data")
    func nested() throws {
        do {
            _ = try encoder.encode(Outer(a: 1, inner: Inner(x: 2)))
            Issue.record("expected an error")
        } catch let EncodingError.invalidValue(value, context) {
            #expect(value is Inner)
            #expect(context.codingPath.map(\.stringValue) == ["inner"])
        }
        #expect(throws: EncodingError.self) { try encoder.encode(Outer(a: 1, inner: Inner(x: nil))) }
        #expect(throws: EncodingError.self) { try encoder.encode(WithDictionary(d: ["a": 1])) }
        #expect(throws: EncodingError.self) { try encoder.encode(WithDictionary(d: [:])) }
        #expect(throws: EncodingError.self) { try encoder.encode(WithRealKeys(d: [1: "a"])) }
        #expect(throws: DecodingError.self) { try decoder.decode(Outer.self, from: "a=1&inner=2") }
        #expect(throws: DecodingError.self) { try decoder.decode(WithDictionary.self, from: "d=1") }
        #expect(throws: DecodingError.self) { try decoder.decode(WithRealKeys.self, from: "d=1&d=a") }
    }
}

/// The `DecodingError` `body` throws, or `nil` if it throws nothing or something else.
private func decodingError(_ body: () throws -> Void) -> DecodingError? {
    do { try body() } catch let error as DecodingError { return error } catch {}
    return nil
}

private extension DecodingError {
    var kind: String {
        switch self {
        case .typeMismatch: "typeMismatch"
        case .valueNotFound: "valueNotFound"
        case .keyNotFound: "keyNotFound"
        case .dataCorrupted: "dataCorrupted"
        @unknown default: "unknown"
        }
    }

    var path: [String] {
        switch self {
        case .typeMismatch(_, let context), .valueNotFound(_, let context),
             .keyNotFound(_, let context), .dataCorrupted(let context):
            context.codingPath.map(\.stringValue)
        @unknown default: []
        }
    }

    var key: String? {
        if case .keyNotFound(let key, _) = self { key.stringValue } else { nil }
    }
}
