/// Where a role draws its nonces, keys and identifiers. Production code uses
/// `SystemRandom` (libsodium's CSPRNG); known-answer tests script the bytes.
public protocol RandomSource: Sendable {
    func fill(_ buffer: UnsafeMutableRawBufferPointer)
}

extension RandomSource {
    public func bytes<T: FixedBytes>(_ type: T.Type = T.self) -> T {
        var value = T()
        value.withUnsafeMutableBytes { fill($0) }
        return value
    }

    public func secretKey() -> SecretKey {
        var raw = Bytes32()
        raw.withUnsafeMutableBytes { fill($0) }
        defer { raw.withUnsafeMutableBytes { Engine.zero($0) } }
        return raw.withUnsafeBytes { try! SecretKey(bytes: $0) }
    }
}

/// libsodium's CSPRNG.
public struct SystemRandom: RandomSource {
    public init() {}
    public func fill(_ buffer: UnsafeMutableRawBufferPointer) { Engine.randomBytes(buffer) }
}
