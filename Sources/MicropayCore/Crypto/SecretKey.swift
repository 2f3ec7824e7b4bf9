internal import CEngine

/// A 32-byte secret (a master key, K_C, K_M, K_CM, a subkey, a wallet
/// secret, a goods key). Its bytes live in one heap buffer that is zeroed
/// when the last reference goes, and are never copied into plain values.
public final class SecretKey: Sendable, Equatable {
    public static let byteCount = 32

    // Written only in init, then read-only: safe to share.
    nonisolated(unsafe) private let storage: UnsafeMutableRawBufferPointer

    private init(uninitialized: ()) {
        storage = .allocate(byteCount: Self.byteCount, alignment: 16)
    }

    deinit {
        Engine.zero(storage)
        storage.deallocate()
    }

    /// A fresh key from libsodium's CSPRNG.
    public static func random() -> SecretKey {
        let key = SecretKey(uninitialized: ())
        Engine.randomBytes(key.storage)
        return key
    }

    /// Copies 32 bytes; throws `.invalidKeyLength` for any other length.
    public convenience init(bytes: UnsafeRawBufferPointer) throws(MicropayError) {
        guard bytes.count == Self.byteCount else { throw .invalidKeyLength(bytes.count) }
        self.init(uninitialized: ())
        storage.copyMemory(from: bytes)
    }

    public convenience init(bytes: [UInt8]) throws(MicropayError) {
        guard bytes.count == Self.byteCount else { throw .invalidKeyLength(bytes.count) }
        self.init(uninitialized: ())
        bytes.withUnsafeBytes { storage.copyMemory(from: $0) }
    }

    /// Parses 64 hex digits.
    public convenience init(hex: String) throws(MicropayError) {
        guard let bytes = [UInt8](hex: hex) else { throw .invalidHex }
        try self.init(bytes: bytes)
    }

    /// Fills a fresh key by calling `body` with its 32 bytes.
    static func generate(_ body: (UnsafeMutablePointer<UInt8>) -> Void) -> SecretKey {
        let key = SecretKey(uninitialized: ())
        body(key.storage.baseAddress!.assumingMemoryBound(to: UInt8.self))
        return key
    }

    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(storage))
    }

    var pointer: UnsafePointer<UInt8> {
        UnsafePointer(storage.baseAddress!.assumingMemoryBound(to: UInt8.self))
    }

    /// The key's bytes as hex, for key files and vectors. Handle with care.
    public var hexExposingSecret: String { Array(UnsafeRawBufferPointer(storage)).hexString }

    /// enc(K) = HMAC(K, "MPE1"): the XChaCha20-Poly1305 key.
    public var encryptionSubkey: SecretKey { subkey(label: "MPE1") }
    /// mac(K) = HMAC(K, "MPM1"): the key for MAC128.
    public var macSubkey: SecretKey { subkey(label: "MPM1") }

    func subkey(label: StaticString) -> SecretKey {
        precondition(label.utf8CodeUnitCount == 4)
        Engine.ensureInitialized()
        return .generate { out in
            label.withUTF8Buffer { l in
                l.withMemoryRebound(to: CChar.self) { mp_derive_subkey(pointer, $0.baseAddress!, out) }
            }
        }
    }

    /// Constant-time.
    public static func == (lhs: SecretKey, rhs: SecretKey) -> Bool {
        Engine.constantTimeEquals(UnsafeRawBufferPointer(lhs.storage), UnsafeRawBufferPointer(rhs.storage))
    }
}
