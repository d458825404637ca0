import Ferry
import FerryEtcd
import NIOCore

/// Something `ferry call` can send a raw body through: a session or a service client.
protocol RawCaller: Sendable {
    func rawCall(_ route: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws -> FerryReply
    func rawPush(_ route: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws
}

extension FerrySession: RawCaller {
    func rawCall(_ route: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws -> FerryReply {
        try await call(route, body: body, codec: codec, options: options)
    }
    func rawPush(_ route: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws {
        try await push(route, body: body, codec: codec, options: options)
    }
}

extension FerryClient: RawCaller {
    func rawCall(_ route: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws -> FerryReply {
        var options = options
        options.codec = codec
        return try await callForReply(route, body, options: options)
    }
    func rawPush(_ route: String, body: ByteBuffer, codec: FerryCodecID, options: FerryCallOptions) async throws {
        var options = options
        options.codec = codec
        try await push(route, body, options: options)
    }
}

/// Runs `body`, then awaits `close` whether `body` returned or threw.
func closing<Result>(_ close: () async -> Void, _ body: () async throws -> Result) async throws -> Result {
    let outcome: Swift.Result<Result, any Error>
    do {
        outcome = .success(try await body())
    } catch {
        outcome = .failure(error)
    }
    await close()
    return try outcome.get()
}
