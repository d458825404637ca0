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

    // The first pair is kept inline and the rest in an array: a message with one pair of meta
    // (a call's timeout, the commonest case) costs no allocation for it. Pairs are stored as a
    // struct, not as `Element` tuples: copying an optional tuple goes through the runtime's
    // generic value witnesses, and every copy of a message copies its meta.
    fileprivate struct Pair: Sendable {
        var key: String
        var value: String

        var element: Element { (key: key, value: value) }
    }
    private var first: Pair?
    private var rest: [Pair] = []

    /// Creates empty metadata.
    public init() {}

    /// Creates metadata from pairs, in order.
    public init(dictionaryLiteral elements: (String, String)...) {
        for (key, value) in elements { add(key, value) }
    }

    private init(_ pairs: some Sequence<Element>) {
        for pair in pairs { add(pair.key, pair.value) }
    }

    /// The number of pairs.
    public var count: Int { first == nil ? 0 : 1 + rest.count }
    /// Whether there are no pairs.
    public var isEmpty: Bool { first == nil }

    /// The first value for `key`; setting replaces every value of `key` (nil removes them).
    public subscript(key: String) -> String? {
        get {
            // Looked up on every inbound call (its timeout, the accepted codec): no iterator,
            // no copy of the pairs.
            guard let first else { return nil }
            if first.key == key { return first.value }
            for pair in rest where pair.key == key { return pair.value }
            return nil
        }
        set {
            if let newValue { set(key, newValue) } else { remove(key) }
        }
    }

    /// Every value of `key`, in order.
    public func values(for key: String) -> [String] {
        filter { $0.key == key }.map(\.value)
    }

    /// Appends a pair, keeping any earlier values of `key`.
    public mutating func add(_ key: String, _ value: String) {
        if first == nil {
            first = Pair(key: key, value: value)
        } else {
            rest.append(Pair(key: key, value: value))
        }
    }

    /// Replaces every value of `key` with one value, at the position of the first one.
    public mutating func set(_ key: String, _ value: String) {
        var pairs = Array(self)
        guard let index = pairs.firstIndex(where: { $0.key == key }) else {
            add(key, value)
            return
        }
        pairs[index].value = value
        var next = index + 1
        while next < pairs.count {
            if pairs[next].key == key { pairs.remove(at: next) } else { next += 1 }
        }
        self = FerryMeta(pairs)
    }

    /// Removes every value of `key`.
    public mutating func remove(_ key: String) {
        guard contains(where: { $0.key == key }) else { return }
        self = FerryMeta(filter { $0.key != key })
    }

    /// Iterates the pairs in order.
    public func makeIterator() -> Iterator {
        Iterator(first: first, rest: rest.makeIterator())
    }

    /// Iterates the pairs of a ``FerryMeta`` in order.
    public struct Iterator: IteratorProtocol {
        fileprivate var first: Pair?
        fileprivate var rest: IndexingIterator<[Pair]>

        /// The next pair, or nil after the last.
        public mutating func next() -> Element? {
            if let pair = first {
                first = nil
                return pair.element
            }
            return rest.next()?.element
        }
    }

    /// Whether both hold the same pairs in the same order.
    public static func == (lhs: FerryMeta, rhs: FerryMeta) -> Bool {
        lhs.count == rhs.count && lhs.elementsEqual(rhs) { $0.key == $1.key && $0.value == $1.value }
    }

    /// Hashes the pairs in order.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(count)
        for pair in self {
            hasher.combine(pair.key)
            hasher.combine(pair.value)
        }
    }

    /// A readable form, for logs and error messages.
    public var description: String {
        "[" + map { "\($0.key): \($0.value)" }.joined(separator: ", ") + "]"
    }
}
