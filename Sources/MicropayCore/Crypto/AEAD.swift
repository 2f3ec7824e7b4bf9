internal import CEngine

/// XChaCha20-Poly1305-IETF (libsodium), used for Tickets, Envelopes and
/// KeyEnvelopes. Sealed output is ciphertext followed by the 16-byte tag.
public enum XChaCha20Poly1305 {
    public static let nonceByteCount = 24
    public static let tagByteCount = 16

    public static func seal(
        _ plaintext: UnsafeRawBufferPointer, associatedData: UnsafeRawBufferPointer,
        nonce: Bytes24, key: SecretKey
    ) -> [UInt8] {
        let count = plaintext.count + tagByteCount
        return [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
            seal(into: out.baseAddress!, plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), count: plaintext.count,
                 associatedData: associatedData, nonce: nonce, key: key)
            initialized = count
        }
    }

    /// `seal` in place: the first `buffer.count - tagByteCount` bytes are
    /// the plaintext, replaced by the ciphertext, and the tag goes in the
    /// last `tagByteCount` (a megabyte sealed without a second megabyte).
    public static func sealInPlace(
        _ buffer: UnsafeMutableRawBufferPointer, associatedData: UnsafeRawBufferPointer, nonce: Bytes24, key: SecretKey
    ) {
        precondition(buffer.count >= tagByteCount)
        let base = buffer.baseAddress!.assumingMemoryBound(to: UInt8.self)
        seal(into: base, base, count: buffer.count - tagByteCount, associatedData: associatedData, nonce: nonce, key: key)
    }

    /// `count` bytes at `plaintext` sealed to `out` (ciphertext, then the
    /// tag); `out` may be `plaintext`.
    private static func seal(
        into out: UnsafeMutablePointer<UInt8>, _ plaintext: UnsafePointer<UInt8>?, count: Int,
        associatedData: UnsafeRawBufferPointer, nonce: Bytes24, key: SecretKey
    ) {
        Engine.ensureInitialized()
        let status = nonce.withUnsafeBytes { n in
            mp_xchacha_seal(out, plaintext, count, associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self),
                            associatedData.count, n.baseAddress!.assumingMemoryBound(to: UInt8.self), key.pointer)
        }
        precondition(status == MP_OK, "XChaCha20-Poly1305 seal failed")
    }

    /// Opens ciphertext-then-tag; `.authenticationFailed(kind)` if it does not verify.
    public static func open(
        _ sealed: UnsafeRawBufferPointer, associatedData: UnsafeRawBufferPointer,
        nonce: Bytes24, key: SecretKey, kind: WireKind
    ) throws(MicropayError) -> [UInt8] {
        Engine.ensureInitialized()
        guard sealed.count >= tagByteCount else { throw .authenticationFailed(kind) }
        let count = sealed.count - tagByteCount
        var status = MP_OK
        let plaintext = [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
            status = nonce.withUnsafeBytes { n in
                mp_xchacha_open(out.baseAddress, sealed.baseAddress!.assumingMemoryBound(to: UInt8.self), sealed.count,
                                associatedData.baseAddress?.assumingMemoryBound(to: UInt8.self), associatedData.count,
                                n.baseAddress!.assumingMemoryBound(to: UInt8.self), key.pointer)
            }
            initialized = count
        }
        guard status == MP_OK else { throw .authenticationFailed(kind) }
        return plaintext
    }

    /// Opens many items sealed under one key, as `open` does each; nil where
    /// the tag fails. Their sealed bytes must be of one length, and their
    /// associated data too. Eight at a time on AVX2 for messages of up to 128
    /// bytes (the merchant's tickets), else one after another.
    public static func openBatch(
        _ items: [(sealed: [UInt8], associatedData: [UInt8], nonce: Bytes24)], key: SecretKey
    ) -> [[UInt8]?] {
        Engine.ensureInitialized()
        guard let first = items.first else { return [] }
        let sealedCount = first.sealed.count, adCount = first.associatedData.count
        precondition(sealedCount >= tagByteCount && items.allSatisfy {
            $0.sealed.count == sealedCount && $0.associatedData.count == adCount
        }, "openBatch: items of one length")
        let plainCount = sealedCount - tagByteCount
        // Flat copies, so that the pointers stay valid through the call.
        let sealed = items.flatMap(\.sealed), ad = items.flatMap(\.associatedData)
        let nonces = items.flatMap { $0.nonce.bytes }
        var out = [UInt8](repeating: 0, count: max(1, items.count * plainCount))
        var ok = [UInt8](repeating: 0, count: items.count)
        sealed.withUnsafeBufferPointer { s in
            ad.withUnsafeBufferPointer { a in
                nonces.withUnsafeBufferPointer { n in
                    out.withUnsafeMutableBufferPointer { o in
                        let outs = (0..<items.count).map { Optional(o.baseAddress! + $0 * plainCount) }
                        let sealeds = (0..<items.count).map { Optional(s.baseAddress! + $0 * sealedCount) }
                        let ads = (0..<items.count).map { Optional((a.baseAddress ?? s.baseAddress!) + $0 * adCount) }
                        let nonceList = (0..<items.count).map { Optional(n.baseAddress! + $0 * nonceByteCount) }
                        mp_xchacha_open_batch(items.count, outs, sealeds, plainCount, ads, adCount, nonceList,
                                              key.pointer, &ok)
                    }
                }
            }
        }
        defer { out.withUnsafeMutableBytes { Engine.zero($0) } }
        return (0..<items.count).map { ok[$0] == 1 ? Array(out[($0 * plainCount)..<(($0 + 1) * plainCount)]) : nil }
    }
}

/// AES-256-GCM with its expanded key and context kept for the key's life
/// (libsodium's precomputed state on AES-NI, else OpenSSL EVP), used for the
/// chunks of information goods.
public final class AESGCMKey: @unchecked Sendable {
    public enum Backend: Int, Sendable, CaseIterable {
        case automatic = 0
        case openSSL = 1
        case sodium = 2

        public var isAvailable: Bool {
            Engine.ensureInitialized()
            return mp_aes_gcm_backend_available(mp_aes_gcm_backend(rawValue: UInt32(rawValue))) != 0
        }
    }

    // An OpenSSL context is not safe to use from two threads at once: callers
    // share an AESGCMKey only under their own serialisation.
    let handle: OpaquePointer

    public init(_ key: SecretKey, backend: Backend = .automatic) throws(MicropayError) {
        Engine.ensureInitialized()
        guard let handle = mp_aes_gcm_key_new(key.pointer, mp_aes_gcm_backend(rawValue: UInt32(backend.rawValue))) else {
            throw .unsupportedKernel("AES-256-GCM backend \(backend)")
        }
        self.handle = handle
    }

    deinit { mp_aes_gcm_key_free(handle) }

    /// The backend actually in use.
    public var backend: Backend { Backend(rawValue: Int(mp_aes_gcm_key_backend(handle).rawValue))! }

    public func seal(_ plaintext: [UInt8], associatedData: [UInt8], nonce: [UInt8]) -> [UInt8] {
        precondition(nonce.count == 12)
        let count = plaintext.count + 16
        return [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
            let status = plaintext.withUnsafeBufferPointer { p in
                associatedData.withUnsafeBufferPointer { a in
                    nonce.withUnsafeBufferPointer { n in
                        mp_aes_gcm_seal(handle, out.baseAddress, p.baseAddress, p.count, a.baseAddress, a.count, n.baseAddress)
                    }
                }
            }
            precondition(status == MP_OK, "AES-256-GCM seal failed")
            initialized = count
        }
    }

    public func open(_ sealed: [UInt8], associatedData: [UInt8], nonce: [UInt8]) throws(MicropayError) -> [UInt8] {
        precondition(nonce.count == 12)
        guard sealed.count >= 16 else { throw .authenticationFailed(nil) }
        let count = sealed.count - 16
        var status = MP_OK
        let plaintext = [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
            status = sealed.withUnsafeBufferPointer { s in
                associatedData.withUnsafeBufferPointer { a in
                    nonce.withUnsafeBufferPointer { n in
                        mp_aes_gcm_open(handle, out.baseAddress, s.baseAddress, s.count, a.baseAddress, a.count, n.baseAddress)
                    }
                }
            }
            initialized = count
        }
        guard status == MP_OK else { throw .authenticationFailed(nil) }
        return plaintext
    }

    /// All chunks of a GoodsStream body in one engine call (PROTOCOL §8).
    func sealGoods(header: UnsafeRawBufferPointer, chunk: UInt32, content: UnsafeRawBufferPointer) -> [UInt8] {
        let chunks = mp_goods_chunk_count(UInt64(content.count), chunk)
        let count = content.count + 16 * Int(chunks)
        return [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
            let status = mp_goods_seal(handle, header.baseAddress!.assumingMemoryBound(to: UInt8.self), chunk,
                                       content.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(content.count),
                                       out.baseAddress)
            precondition(status == MP_OK, "AES-256-GCM seal failed")
            initialized = count
        }
    }

    /// The reverse of `sealGoods`; `total` is the content length.
    func openGoods(header: UnsafeRawBufferPointer, chunk: UInt32, sealed: UnsafeRawBufferPointer, total: Int) throws(MicropayError) -> [UInt8] {
        var status = MP_OK
        let content = [UInt8](unsafeUninitializedCapacity: total) { out, initialized in
            status = mp_goods_open(handle, header.baseAddress!.assumingMemoryBound(to: UInt8.self), chunk,
                                   sealed.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(total), out.baseAddress)
            initialized = total
        }
        guard status == MP_OK else { throw .authenticationFailed(.goodsStream) }
        return content
    }

    static func chunkCount(total: UInt64, chunk: UInt32) -> UInt64 {
        mp_goods_chunk_count(total, chunk)
    }
}
