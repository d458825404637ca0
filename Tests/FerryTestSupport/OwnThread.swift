import Foundation

/// Runs blocking work (a child process to its end, a wait for one) on a thread of its own.
///
/// Swift's concurrency runs every test on a few cooperative threads, one per core: a test that
/// blocks one of them for seconds (openssl making keys, initdb) stalls every other test's
/// awaits, whose deadlines then pass for no fault of their own.
public func onOwnThread<Value: Sendable>(_ body: @escaping @Sendable () throws -> Value) async throws -> Value {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.start()
    }
}
