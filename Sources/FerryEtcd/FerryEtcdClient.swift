import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import Synchronization

/// A small etcd v3 client over etcd's JSON gateway (`/v3/kv/*`, `/v3/lease/*`, `/v3/watch`).
///
/// Give it several endpoints: a request that cannot reach one tries the next, starting from the
/// last one that answered. When none answers, ``FerryEtcdError/unreachable(_:)`` says which were
/// tried and why.
///
/// ```swift
/// let etcd = FerryEtcdClient(endpoints: ["http://127.0.0.1:2379"])
/// let lease = try await etcd.grantLease(ttl: 10)
/// try await etcd.put("/ferry/services/echo/127.0.0.1:9090", value: json, lease: lease.id)
/// ```
public final class FerryEtcdClient: Sendable {
    /// The endpoints, e.g. `http://127.0.0.1:2379`.
    public let endpoints: [String]
    private let http: HTTPClient
    private let preferred = Mutex(0)
    private let requestTimeout: TimeAmount

    /// The HTTP client every etcd client shares unless given another: it lives as long as the
    /// process (so nothing needs shutting down), and allows many connections per endpoint
    /// because each watch holds one open.
    static let sharedHTTPClient: HTTPClient = {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 256)
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// Creates a client for `endpoints`; requests give up on one endpoint after `requestTimeout`.
    /// Pass `httpClient` to use your own (you shut it down); by default a process-wide one is used.
    public init(endpoints: [String], requestTimeout: Duration = .seconds(5), httpClient: HTTPClient? = nil) {
        precondition(!endpoints.isEmpty, "an etcd client needs at least one endpoint")
        self.endpoints = endpoints.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.http = httpClient ?? Self.sharedHTTPClient
        self.requestTimeout = TimeAmount(requestTimeout)
    }

    // MARK: Key-value

    /// A stored key and value.
    public struct KeyValue: Sendable, Equatable {
        /// The key.
        public var key: String
        /// The value bytes.
        public var value: [UInt8]
        /// The revision of the last change to this key.
        public var modRevision: Int64
    }

    /// Writes `value` at `key`, attached to `lease` when given (0: none). Returns the revision.
    @discardableResult
    public func put(_ key: String, value: [UInt8], lease: Int64 = 0) async throws -> Int64 {
        var body: [String: Any] = ["key": Self.base64(key), "value": Data(value).base64EncodedString()]
        if lease != 0 { body["lease"] = String(lease) }
        let reply = try await post("/v3/kv/put", body)
        return Self.int64(reply["header"], "revision") ?? 0
    }

    /// Reads `key`, or every key starting with it when `prefix` is true. Returns the values and
    /// the store's revision at the time of the read.
    public func range(_ key: String, prefix: Bool = false) async throws -> (values: [KeyValue], revision: Int64) {
        var body: [String: Any] = ["key": Self.base64(key)]
        if prefix { body["range_end"] = Self.base64(Self.prefixEnd(key)) }
        let reply = try await post("/v3/kv/range", body)
        let values = (reply["kvs"] as? [[String: Any]] ?? []).compactMap(Self.keyValue)
        return (values, Self.int64(reply["header"], "revision") ?? 0)
    }

    /// Deletes `key`, or every key starting with it when `prefix` is true. Returns how many.
    @discardableResult
    public func delete(_ key: String, prefix: Bool = false) async throws -> Int {
        var body: [String: Any] = ["key": Self.base64(key)]
        if prefix { body["range_end"] = Self.base64(Self.prefixEnd(key)) }
        let reply = try await post("/v3/kv/deleterange", body)
        return Int(Self.int64(reply, "deleted") ?? 0)
    }

    // MARK: Leases

    /// A granted lease.
    public struct Lease: Sendable, Equatable {
        /// The lease id.
        public var id: Int64
        /// Its time to live in seconds.
        public var ttl: Int64
    }

    /// Grants a lease of `ttl` seconds.
    public func grantLease(ttl: Int64) async throws -> Lease {
        let reply = try await post("/v3/lease/grant", ["TTL": String(ttl)])
        guard let id = Self.int64(reply, "ID"), id != 0 else {
            throw FerryEtcdError.badResponse("lease grant without an ID: \(reply)")
        }
        return Lease(id: id, ttl: Self.int64(reply, "TTL") ?? ttl)
    }

    /// Renews `lease` once; returns its new time to live. Throws ``FerryEtcdError/leaseLost(_:)``
    /// when etcd no longer knows the lease (it expired, or etcd lost it).
    @discardableResult
    public func keepAlive(_ lease: Int64) async throws -> Int64 {
        let reply = try await post("/v3/lease/keepalive", ["ID": String(lease)])
        let result = reply["result"] as? [String: Any] ?? reply
        let ttl = Self.int64(result, "TTL") ?? 0
        guard ttl > 0 else { throw FerryEtcdError.leaseLost(lease) }
        return ttl
    }

    /// Revokes `lease`: every key attached to it is deleted at once.
    public func revoke(_ lease: Int64) async throws {
        _ = try await post("/v3/lease/revoke", ["ID": String(lease)])
    }

    // MARK: Watch

    /// One change seen by a watch.
    public struct Event: Sendable, Equatable {
        /// What happened to the key.
        public enum Kind: Sendable, Equatable {
            /// The key was written.
            case put
            /// The key was deleted (or its lease expired).
            case delete
        }
        /// What happened.
        public var kind: Kind
        /// The key and, for a put, the new value.
        public var keyValue: KeyValue
    }

    /// Watches every key starting with `prefix` from `revision` (0: from now). Each element is
    /// one batch of events with the revision it brings the store to. The sequence ends with an
    /// error when the connection to etcd breaks; resume from the last revision seen + 1.
    ///
    /// The watch runs in the task that iterates it: its first `next()` opens the watch stream,
    /// and ending the iteration (or cancelling that task) closes it. Nothing runs in between.
    public func watch(prefix: String, fromRevision revision: Int64 = 0) -> Watch {
        Watch(client: self, prefix: prefix, revision: revision)
    }

    /// The changes under a key prefix, in batches: see ``FerryEtcdClient/watch(prefix:fromRevision:)``.
    public struct Watch: AsyncSequence, Sendable {
        /// One batch of events, and the store revision after them.
        public typealias Element = (events: [Event], revision: Int64)
        /// A broken connection or an error reported by etcd.
        public typealias Failure = any Error

        let client: FerryEtcdClient
        let prefix: String
        let revision: Int64

        /// Opens the watch on its first `next()`.
        public func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(watch: self)
        }

        /// Iterates a ``FerryEtcdClient/Watch``.
        public struct AsyncIterator: AsyncIteratorProtocol {
            /// A broken connection or an error reported by etcd.
            public typealias Failure = any Error

            private let watch: Watch
            /// The watch response's body once the stream is open.
            private var body: HTTPClientResponse.Body.AsyncIterator?
            /// Bytes of a message not complete yet.
            private var pending: [UInt8] = []
            /// Batches parsed and not handed out yet.
            private var ready: [Element] = []
            private var finished = false

            init(watch: Watch) {
                self.watch = watch
            }

            /// The next batch; throws when the stream breaks, then returns nil.
            public mutating func next() async throws -> Element? {
                guard !finished else { return nil }
                do {
                    return try await nextBatch()
                } catch {
                    finished = true
                    body = nil
                    throw error
                }
            }

            private mutating func nextBatch() async throws -> Element? {
                if body == nil {
                    body = try await watch.client.openWatch(prefix: watch.prefix, revision: watch.revision)
                }
                while ready.isEmpty {
                    guard let chunk = try await body?.next() else { throw FerryEtcdError.watchEnded }
                    pending.append(contentsOf: chunk.readableBytesView)
                    // The gateway streams one JSON object per message; split complete objects off.
                    while let end = FerryEtcdClient.endOfFirstJSONObject(pending) {
                        let object = Array(pending[..<end])
                        pending.removeFirst(end)
                        if let batch = try FerryEtcdClient.watchBatch(from: object) { ready.append(batch) }
                    }
                }
                return ready.removeFirst()
            }
        }
    }

    /// Sends the watch request and returns the streaming body.
    private func openWatch(prefix: String, revision: Int64) async throws -> HTTPClientResponse.Body.AsyncIterator {
        var create: [String: Any] = ["key": Self.base64(prefix), "range_end": Self.base64(Self.prefixEnd(prefix))]
        if revision > 0 { create["start_revision"] = String(revision) }
        let endpoint = endpoints[preferred.withLock { $0 } % endpoints.count]
        var request = HTTPClientRequest(url: endpoint + "/v3/watch")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: ["create_request": create])))
        let response = try await http.execute(request, timeout: .hours(24 * 365))
        guard response.status == .ok else { throw FerryEtcdError.badResponse("watch answered \(response.status)") }
        return response.body.makeAsyncIterator()
    }

    /// The batch of events in one watch message; nil for a message without events (the
    /// watch's creation, progress notices).
    private static func watchBatch(from object: [UInt8]) throws -> Watch.Element? {
        guard let message = try JSONSerialization.jsonObject(with: Data(object)) as? [String: Any] else { return nil }
        if let error = message["error"] { throw FerryEtcdError.badResponse("watch error: \(error)") }
        guard let result = message["result"] as? [String: Any] else { return nil }
        if (result["canceled"] as? Bool) == true {
            throw FerryEtcdError.badResponse("watch canceled: \(result["cancel_reason"] ?? "compacted")")
        }
        let revision = int64(result["header"], "revision") ?? 0
        let events = (result["events"] as? [[String: Any]] ?? []).compactMap { event -> Event? in
            guard let kv = (event["kv"] as? [String: Any]).flatMap(keyValue) else { return nil }
            return Event(kind: (event["type"] as? String) == "DELETE" ? .delete : .put, keyValue: kv)
        }
        return events.isEmpty ? nil : (events, revision)
    }

    // MARK: Transport

    /// POSTs `body` to `path` on the preferred endpoint, failing over to the others.
    private func post(_ path: String, _ body: [String: Any]) async throws -> [String: Any] {
        let payload = try JSONSerialization.data(withJSONObject: body)
        let start = preferred.withLock { $0 }
        var failures: [String] = []
        for offset in 0..<endpoints.count {
            let index = (start + offset) % endpoints.count
            var request = HTTPClientRequest(url: endpoints[index] + path)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: payload))
            let response: HTTPClientResponse
            let bytes: ByteBuffer
            do {
                response = try await http.execute(request, deadline: .now() + requestTimeout)
                bytes = try await response.body.collect(upTo: 16 << 20)
            } catch {
                failures.append("\(endpoints[index]): \(error)")
                continue
            }
            preferred.withLock { $0 = index }
            let object = (try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView))) as? [String: Any] ?? [:]
            guard response.status == .ok else {
                if let message = object["message"] as? String ?? object["error"] as? String,
                    message.contains("lease not found")
                {
                    throw FerryEtcdError.leaseLost(Self.int64(body, "ID") ?? Self.int64(body, "lease") ?? 0)
                }
                throw FerryEtcdError.badResponse("\(path) answered \(response.status): \(String(buffer: bytes).prefix(200))")
            }
            return object
        }
        throw FerryEtcdError.unreachable(failures)
    }

    // MARK: Encoding helpers

    private static func base64(_ text: String) -> String { Data(text.utf8).base64EncodedString() }

    /// The smallest key greater than every key with `prefix`: etcd's range end for a prefix.
    static func prefixEnd(_ prefix: String) -> String {
        var bytes = Array(prefix.utf8)
        while let last = bytes.last {
            if last < 0xFF {
                bytes[bytes.count - 1] = last + 1
                return String(decoding: bytes, as: UTF8.self)
            }
            bytes.removeLast()
        }
        return "\0"
    }

    private static func keyValue(_ object: [String: Any]) -> KeyValue? {
        guard let key = (object["key"] as? String).flatMap({ Data(base64Encoded: $0) }) else { return nil }
        let value = (object["value"] as? String).flatMap { Data(base64Encoded: $0) } ?? Data()
        return KeyValue(key: String(decoding: key, as: UTF8.self), value: Array(value), modRevision: int64(object, "mod_revision") ?? 0)
    }

    /// etcd's gateway writes 64-bit integers as JSON strings.
    private static func int64(_ object: Any?, _ key: String) -> Int64? {
        guard let object = object as? [String: Any], let value = object[key] else { return nil }
        if let text = value as? String { return Int64(text) }
        if let number = value as? NSNumber { return number.int64Value }
        return nil
    }

    /// The length of the first complete top-level JSON object in `bytes`, if there is one.
    static func endOfFirstJSONObject(_ bytes: [UInt8]) -> Int? {
        var depth = 0
        var inString = false
        var escaped = false
        var started = false
        for (index, byte) in bytes.enumerated() {
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"):
                depth += 1
                started = true
            case UInt8(ascii: "}"):
                depth -= 1
                if started && depth == 0 { return index + 1 }
            default: break
            }
        }
        return nil
    }
}

/// Why an etcd request failed.
public enum FerryEtcdError: Error, Sendable, CustomStringConvertible {
    /// No endpoint answered; one line per endpoint tried.
    case unreachable([String])
    /// etcd answered something this client did not expect.
    case badResponse(String)
    /// The lease is gone (expired, revoked, or lost by etcd).
    case leaseLost(Int64)
    /// A watch stream ended; resume it from the last revision seen.
    case watchEnded

    /// A readable form, for logs and error messages.
    public var description: String {
        switch self {
        case .unreachable(let failures): "etcd unreachable: " + failures.joined(separator: "; ")
        case .badResponse(let text): "unexpected etcd response: \(text)"
        case .leaseLost(let id): "etcd lease \(id) is gone"
        case .watchEnded: "the etcd watch stream ended"
        }
    }
}
