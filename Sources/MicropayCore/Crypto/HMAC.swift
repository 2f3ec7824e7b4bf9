internal import CEngine

/// One-shot HMAC-SHA-256 for keys of any length (the protocol's own keys go
/// through `MACKey`, which caches their states).
public enum HMAC {
    public static func authenticate(_ message: [UInt8], key: [UInt8]) -> Bytes32 {
        Engine.ensureInitialized()
        var out = Bytes32()
        key.withUnsafeBytes { k in
            message.withUnsafeBytes { m in
                out.withUnsafeMutableBytes { o in
                    mp_hmac(k.baseAddress, k.count, m.baseAddress, m.count, o.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        return out
    }
}
