/// A consistent-hash ring: each member owns `virtualNodes` points, and a key belongs to the
/// first point at or after its hash, going round.
struct HashRing: Sendable {
    private var points: [(hash: UInt64, member: Int)] = []

    /// A ring over members `0..<members.count`, named by `members` (the names decide the points).
    init(members: [String], virtualNodes: Int) {
        points.reserveCapacity(members.count * virtualNodes)
        for (index, name) in members.enumerated() {
            for replica in 0..<virtualNodes {
                points.append((Self.hash("\(name)#\(replica)"), index))
            }
        }
        points.sort { ($0.hash, $0.member) < ($1.hash, $1.member) }
    }

    var isEmpty: Bool { points.isEmpty }

    /// Members in ring order from `key`'s position, each once, until `accept` takes one.
    func first(from key: String, where accept: (Int) -> Bool) -> Int? {
        guard !points.isEmpty else { return nil }
        let target = Self.hash(key)
        var low = 0
        var high = points.count
        while low < high {
            let middle = (low + high) / 2
            if points[middle].hash < target { low = middle + 1 } else { high = middle }
        }
        for step in 0..<points.count {
            let member = points[(low + step) % points.count].member
            if accept(member) { return member }
        }
        return nil
    }

    /// 64-bit FNV-1a with a murmur3 finaliser for spread: stable across processes and
    /// platforms, unlike `Hasher`.
    static func hash(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01b3
        }
        hash ^= hash >> 33
        hash &*= 0xff51_afd7_ed55_8ccd
        hash ^= hash >> 33
        hash &*= 0xc4ce_b9fe_1a85_ec53
        hash ^= hash >> 33
        return hash
    }
}
