import FerryEtcd
import FerryTestSupport
import Foundation
import Testing

extension RealEtcdTests {
    @Suite("etcd client against a real etcd")
    struct EtcdClientTests {
        @Test("put, range by key and by prefix, delete")
        func keyValue() async throws {
            let etcd = try EtcdProcess()
            defer { etcd.remove() }
            try await etcd.start()
            let client = FerryEtcdClient(endpoints: [etcd.endpoint])
            try await client.put("/t/a", value: Array("1".utf8))
            try await client.put("/t/b", value: Array("2".utf8))
            try await client.put("/u/c", value: Array("3".utf8))
            let one = try await client.range("/t/a")
            #expect(one.values.map(\.key) == ["/t/a"] && one.values.first?.value == Array("1".utf8))
            let prefixed = try await client.range("/t/", prefix: true)
            #expect(prefixed.values.map(\.key) == ["/t/a", "/t/b"])
            #expect(prefixed.revision >= 3)
            #expect(try await client.delete("/t/", prefix: true) == 2)
            #expect(try await client.range("/t/", prefix: true).values.isEmpty)
            #expect(try await client.range("/u/c").values.count == 1)
        }

        @Test("a key on a lease lives while the lease is kept alive and goes when it expires or is revoked")
        func leases() async throws {
            let etcd = try EtcdProcess()
            defer { etcd.remove() }
            try await etcd.start()
            let client = FerryEtcdClient(endpoints: [etcd.endpoint])
            // The lease's TTL runs on etcd's own clock, which a test cannot move: renewing it
            // takes real time. Renewed every second, a five-second lease outlives its TTL even
            // when a busy machine delays a renewal by a few seconds.
            let lease = try await client.grantLease(ttl: 5)
            try await client.put("/lease/key", value: [1], lease: lease.id)
            for _ in 0..<7 {
                try await Task.sleep(for: .seconds(1))
                #expect(try await client.keepAlive(lease.id) > 0)
            }
            #expect(try await client.range("/lease/key").values.count == 1, "kept alive past its TTL")
            // Stop renewing: the key disappears within about the TTL.
            #expect(await eventually(timeout: .seconds(20)) { (try? await client.range("/lease/key").values.isEmpty) == true })
            await #expect(throws: FerryEtcdError.self) { try await client.keepAlive(lease.id) }

            let second = try await client.grantLease(ttl: 60)
            try await client.put("/lease/other", value: [2], lease: second.id)
            try await client.revoke(second.id)
            #expect(try await client.range("/lease/other").values.isEmpty)
        }

        @Test("a watch sees puts and deletes under its prefix, and can resume from a revision")
        func watch() async throws {
            let etcd = try EtcdProcess()
            defer { etcd.remove() }
            try await etcd.start()
            let client = FerryEtcdClient(endpoints: [etcd.endpoint])
            let start = try await client.range("/w/", prefix: true).revision
            let stream = client.watch(prefix: "/w/", fromRevision: start + 1)
            try await client.put("/w/x", value: Array("hello".utf8))
            try await client.put("/other", value: [0])
            try await client.delete("/w/x")
            var seen: [FerryEtcdClient.Event] = []
            for try await batch in stream {
                seen += batch.events
                if seen.count >= 2 { break }
            }
            #expect(seen.map(\.kind) == [.put, .delete])
            #expect(seen.map(\.keyValue.key) == ["/w/x", "/w/x"])
            #expect(seen.first?.keyValue.value == Array("hello".utf8))
        }

        @Test("requests fail over to a live endpoint, and say which endpoints were tried when none answers")
        func failover() async throws {
            let etcd = try EtcdProcess()
            defer { etcd.remove() }
            try await etcd.start()
            let deadPort = try EtcdProcess.freePort()
            let client = FerryEtcdClient(endpoints: ["http://127.0.0.1:\(deadPort)", etcd.endpoint], requestTimeout: .seconds(2))
            try await client.put("/f/key", value: [7])
            #expect(try await client.range("/f/key").values.first?.value == [7])
            etcd.stop()
            do {
                _ = try await client.range("/f/key")
                Issue.record("etcd is down; the read should fail")
            } catch let error as FerryEtcdError {
                guard case .unreachable(let failures) = error else { Issue.record("unexpected \(error)"); return }
                #expect(failures.count == 2)
                #expect(failures.contains { $0.contains("\(deadPort)") })
            }
        }
    }
}
