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

    // One array of pairs: a message with one pair of meta costs one allocation, not two.
    private var pairs: [Element]

    /// Creates empty metadata.
    public init() {
        pairs = []
    }

    /// Creates metadata from pairs, in order.
    public init(dictionaryLiteral elements: (String, String)...) {
        pairs = elements.map { (key: $0.0, value: $0.1) }
    }

    /// The number of pairs.
    public var count: Int { pairs.count }
    /// Whether there are no pairs.
    public var isEmpty: Bool { pairs.isEmpty }

    /// The first value for `key`; setting replaces every value of `key` (nil removes them).
    public subscript(key: String) -> String? {
        get {
            for pair in pairs where pair.key == key { return pair.value }
            return nil
        }
        set {
            if let newValue { set(key, newValue) } else { remove(key) }
        }
    }

    /// Every value of `key`, in order.
    public func values(for key: String) -> [String] {
        pairs.filter { $0.key == key }.map(\.value)
    }

    /// Appends a pair, keeping any earlier values of `key`.
    public mutating func add(_ key: String, _ value: String) {
        pairs.append((key: key, value: value))
    }

    /// Replaces every value of `key` with one value, at the position of the first one.
    public mutating func set(_ key: String, _ value: String) {
        guard let index = pairs.firstIndex(where: { $0.key == key }) else {
            add(key, value)
            return
        }
        pairs[index].value = value
        var next = index + 1
        while next < pairs.count {
            if pairs[next].key == key { pairs.remove(at: next) } else { next += 1 }
        }
    }

    /// Removes every value of `key`.
    public mutating func remove(_ key: String) {
        pairs.removeAll { $0.key == key }
    }

    /// Iterates the pairs in order.
    public func makeIterator() -> IndexingIterator<[Element]> {
        pairs.makeIterator()
    }

    /// Whether both hold the same pairs in the same order.
    public static func == (lhs: FerryMeta, rhs: FerryMeta) -> Bool {
        lhs.pairs.elementsEqual(rhs.pairs) { $0.key == $1.key && $0.value == $1.value }
    }

    /// Hashes the pairs in order.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(pairs.count)
        for pair in pairs {
            hasher.combine(pair.key)
            hasher.combine(pair.value)
        }
    }

    /// A readable form, for logs and error messages.
    public var description: String {
        "[" + map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "]"
    }
}
