/// Ordered key/value metadata of a message. Keys may repeat; insertion order is kept on the wire.
///
/// ```swift
/// var meta: FerryMeta = ["X-Real-IP": "10.0.0.1"]
/// meta.add("tag", "a")
/// meta.add("tag", "b")
/// meta["tag"]            // "a"
/// meta.values(for: "tag") // ["a", "b"]
/// ```
public struct FerryMeta: Hashable, Sendable, ExpressibleByDictionaryLiteral, Sequence,
    CustomStringConvertible
{
    /// One key/value pair.
    public typealias Element = (key: String, value: String)

    private var keys: [String]
    private var values: [String]

    /// Creates empty metadata.
    public init() {
        keys = []
        values = []
    }

    /// Creates metadata from pairs, in order.
    public init(dictionaryLiteral elements: (String, String)...) {
        keys = elements.map(\.0)
        values = elements.map(\.1)
    }

    /// The number of pairs.
    public var count: Int { keys.count }
    /// Whether there are no pairs.
    public var isEmpty: Bool { keys.isEmpty }

    /// The first value for `key`; setting replaces every value of `key` (nil removes them).
    public subscript(key: String) -> String? {
        get {
            guard let index = keys.firstIndex(of: key) else { return nil }
            return values[index]
        }
        set {
            if let newValue { set(key, newValue) } else { remove(key) }
        }
    }

    /// Every value of `key`, in order.
    public func values(for key: String) -> [String] {
        zip(keys, values).filter { $0.0 == key }.map(\.1)
    }

    /// Appends a pair, keeping any earlier values of `key`.
    public mutating func add(_ key: String, _ value: String) {
        keys.append(key)
        values.append(value)
    }

    /// Replaces every value of `key` with one value, at the position of the first one.
    public mutating func set(_ key: String, _ value: String) {
        if let index = keys.firstIndex(of: key) {
            values[index] = value
            var next = index + 1
            while next < keys.count {
                if keys[next] == key {
                    keys.remove(at: next)
                    values.remove(at: next)
                } else {
                    next += 1
                }
            }
        } else {
            add(key, value)
        }
    }

    /// Removes every value of `key`.
    public mutating func remove(_ key: String) {
        var index = 0
        while index < keys.count {
            if keys[index] == key {
                keys.remove(at: index)
                values.remove(at: index)
            } else {
                index += 1
            }
        }
    }

    /// Iterates the pairs in order.
    public func makeIterator() -> AnyIterator<Element> {
        var index = 0
        return AnyIterator {
            guard index < keys.count else { return nil }
            defer { index += 1 }
            return (keys[index], values[index])
        }
    }

    /// A readable form, for logs and error messages.
    public var description: String {
        "[" + map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "]"
    }
}
