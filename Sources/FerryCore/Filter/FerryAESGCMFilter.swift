import Crypto
import NIOCore

extension FerryFilterID {
    /// `a`: AES-GCM authenticated encryption (``FerryAESGCMFilter``). Neither of the ids erpc's
    /// own examples use (`g` gzip, `m` md5).
    public static let aesGCM = FerryFilterID("a")
}

/// The AES-GCM transfer filter (`a`): encrypts and authenticates every frame with a key both
/// peers are configured with, through swift-crypto.
///
/// Each frame becomes a fresh random 12-byte nonce, the ciphertext, then the 16-byte tag
/// (swift-crypto's `AES.GCM.SealedBox.combined` layout). A frame that was sealed under another
/// key, or with any byte changed, fails to open with ``FerryFilterError/corrupt(filter:reason:)``
/// and the receiver closes the session, as for any frame a filter refuses.
///
/// ```swift
/// let key = SymmetricKey(data: secret)          // 16, 24 or 32 bytes, from configuration
/// var filters = FerryFilterRegistry.standard
/// filters.register(try FerryAESGCMFilter(key: key))
/// let peer = FerryPeer(configuration: .init(filters: filters))   // on both sides
/// // Compressed first (the last id is applied first), then encrypted; the reply does the same.
/// let sum: Int = try await session.call("/math/add", args, options: FerryCallOptions(filters: [.aesGCM, .gzip]))
/// ```
///
/// erpc's own secure plugin encrypts bodies with AES in ECB mode, which neither hides repeated
/// blocks nor detects tampering; this filter is not compatible with it and does not try to be.
/// What it does not do: it does not stop a captured frame from being replayed, and random nonces
/// bound how much one key may seal (rotate keys well before 2³² frames, as NIST SP 800-38D
/// advises). Where those matter, or where peers have no shared key, use TLS.
public struct FerryAESGCMFilter: FerryTransferFilter {
    /// A key that is not 128, 192 or 256 bits long.
    public struct InvalidKeySize: Error, Sendable, Hashable, CustomStringConvertible {
        /// The size of the key that was refused, in bits.
        public var bitCount: Int

        /// A readable form, for logs and error messages.
        public var description: String { "an AES-GCM key has 128, 192 or 256 bits, not \(bitCount)" }
    }

    /// Random nonce, then ciphertext, then tag.
    private static let nonceSize = 12
    private static let tagSize = 16

    /// A `SymmetricKey` that may be shared between concurrency domains. swift-crypto does not
    /// declare the key `Sendable` (its API mirrors CryptoKit's), but the key is an immutable
    /// value: nothing writes its storage after it is made, so reading it from many threads is
    /// safe.
    private struct SharedKey: @unchecked Sendable {
        let key: SymmetricKey
    }

    private let shared: SharedKey

    /// The id written on the wire.
    public let id: FerryFilterID

    /// Creates the filter with a 128-, 192- or 256-bit `key`. A peer that holds two keys at once
    /// (while rotating them, say) registers a filter per key under different `id`s.
    public init(key: SymmetricKey, id: FerryFilterID = .aesGCM) throws {
        guard [128, 192, 256].contains(key.bitCount) else { throw InvalidKeySize(bitCount: key.bitCount) }
        self.shared = SharedKey(key: key)
        self.id = id
    }

    /// Transforms outgoing bytes.
    public func encode(_ buffer: ByteBuffer, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        let sealed: AES.GCM.SealedBox
        do {
            sealed = try buffer.withUnsafeReadableBytes { try AES.GCM.seal($0, using: shared.key) }
        } catch {
            throw FerryFilterError.corrupt(filter: id, reason: "encryption failed: \(error)")
        }
        // A 12-byte nonce (the default) always has a combined form.
        let combined = sealed.combined!
        var output = allocator.buffer(capacity: combined.count)
        combined.withUnsafeBytes { _ = output.writeBytes($0) }
        return output
    }

    /// Undoes the transformation, refusing to produce more than `maximumSize` bytes.
    public func decode(_ buffer: ByteBuffer, maximumSize: Int, allocator: ByteBufferAllocator) throws -> ByteBuffer {
        let overhead = Self.nonceSize + Self.tagSize
        guard buffer.readableBytes >= overhead else {
            throw FerryFilterError.corrupt(filter: id, reason: "frame of \(buffer.readableBytes) bytes, shorter than a nonce and a tag (\(overhead))")
        }
        guard buffer.readableBytes - overhead <= maximumSize else {
            throw FerryFilterError.tooLarge(filter: id, limit: maximumSize)
        }
        do {
            let plaintext = try buffer.withUnsafeReadableBytes { try AES.GCM.open(AES.GCM.SealedBox(combined: $0), using: shared.key) }
            var output = allocator.buffer(capacity: plaintext.count)
            plaintext.withUnsafeBytes { _ = output.writeBytes($0) }
            return output
        } catch {
            throw FerryFilterError.corrupt(filter: id, reason: "authentication failed: a wrong key or a changed frame")
        }
    }
}
