import Ferry
import Testing

@Suite("Accept hook admission")
struct AcceptHookTests {
    @Test("calls sent while a slow accept hook runs wait, then are all handled once it passes")
    func heldUntilAdmitted() async throws {
        let hookDone = Recorder<String>()
        let handled = Recorder<String>()
        let configuration = FerryPeer.Configuration(hooks: .init(onAccept: { _ in
            try await Task.sleep(for: .milliseconds(300))
            hookDone.append("done")
        }))
        let (server, listener) = try await makeServer(configuration) { router in
            router.call("/record") { (text: String, _: FerryContext) in
                handled.append(text)
                return hookDone.count
            }
        }
        let client = FerryPeer(logger: quietLogger())
        let session = try await client.dial(listener.address)
        let hookCounts = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<5 {
                group.addTask {
                    try await Task.sleep(for: .milliseconds(index * 5))
                    return try await session.call("/record", "call \(index)", as: Int.self)
                }
            }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        // Every handler saw the hook finished: nothing ran before admission.
        #expect(hookCounts == [1, 1, 1, 1, 1])
        #expect(handled.all.sorted() == (0..<5).map { "call \($0)" })
        await client.close()
        await server.close()
    }
}
