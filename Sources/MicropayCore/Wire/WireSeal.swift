/// The shape shared by Ticket, Envelope and KeyEnvelope: a clear prefix that
/// ends with a 24-byte nonce, then XChaCha20-Poly1305 ciphertext and tag with
/// the whole prefix as associated data, so no clear field can be altered.
enum WireSeal {
    static let tagByteCount = XChaCha20Poly1305.tagByteCount

    /// `prefix || seal(plaintext)`; the plaintext array is zeroed afterwards.
    static func seal(prefix: [UInt8], nonce: Bytes24, plaintext: inout [UInt8], key: SecretKey) -> [UInt8] {
        let sealed = plaintext.withUnsafeBytes { p in
            prefix.withUnsafeBytes { ad in XChaCha20Poly1305.seal(p, associatedData: ad, nonce: nonce, key: key) }
        }
        plaintext.zeroize()
        return prefix + sealed
    }

    /// Opens the part of `bytes` after the first `prefixLength` bytes
    /// (the associated data); `.authenticationFailed(kind)` if it does not verify.
    static func open(_ bytes: [UInt8], prefixLength: Int, nonce: Bytes24, key: SecretKey, kind: WireKind) throws(MicropayError) -> [UInt8] {
        precondition(bytes.count >= prefixLength + tagByteCount)
        return try bytes.withDecoding { buffer throws(MicropayError) in
            try XChaCha20Poly1305.open(
                UnsafeRawBufferPointer(rebasing: buffer[prefixLength...]),
                associatedData: UnsafeRawBufferPointer(rebasing: buffer[..<prefixLength]),
                nonce: nonce, key: key, kind: kind)
        }
    }
}
