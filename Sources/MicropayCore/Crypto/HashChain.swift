internal import CEngine

/// PayWord-style hash chains of PROTOCOL.md §5:
/// `w_{i-1} = step(i, w_i)`, `step(i, w) = SHA-256("MPC1" || chain_id || u32 i || w)`.
public enum HashChain {
    /// Longest chain a ticket may carry.
    public static let maxLength: UInt32 = 65536
    /// Most steps one payment may make the merchant hash.
    public static let maxGap: UInt32 = 4096

    public static func step(chainID: Bytes12, index: UInt32, word: Bytes32) -> Bytes32 {
        Engine.ensureInitialized()
        var out = Bytes32()
        chainID.withUnsafeBytes { c in
            word.withUnsafeBytes { w in
                out.withUnsafeMutableBytes { o in
                    mp_chain_step(c.baseAddress!.assumingMemoryBound(to: UInt8.self), index,
                                  w.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                  o.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        return out
    }

    /// From `(index, word)` down to `target ≤ index`: returns `w_target`.
    public static func walk(chainID: Bytes12, from index: UInt32, word: Bytes32, to target: UInt32) -> Bytes32 {
        precondition(target <= index, "a chain walks downwards only")
        Engine.ensureInitialized()
        var out = word
        chainID.withUnsafeBytes { c in
            out.withUnsafeMutableBytes { o in
                let p = o.baseAddress!.assumingMemoryBound(to: UInt8.self)
                _ = mp_chain_walk(c.baseAddress!.assumingMemoryBound(to: UInt8.self), index, p, target, p)
            }
        }
        return out
    }

    /// The wallet's seed `w_n = HMAC(wallet_secret, "MPW1" || chain_id)`.
    public static func seed(walletSecret: SecretKey, chainID: Bytes12) -> Bytes32 {
        Engine.ensureInitialized()
        var message = [UInt8]("MPW1".utf8)
        message += chainID.bytes
        var out = Bytes32()
        walletSecret.withUnsafeBytes { k in
            message.withUnsafeBytes { m in
                out.withUnsafeMutableBytes { o in
                    mp_hmac(k.baseAddress, k.count, m.baseAddress, m.count, o.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        return out
    }

    /// Whether `word` at `index` hashes down to `lastWord` at `last` (constant-time compare).
    public static func verify(chainID: Bytes12, index: UInt32, word: Bytes32, last: UInt32, lastWord: Bytes32) -> Bool {
        guard index > last else { return false }
        return walk(chainID: chainID, from: index, word: word, to: last).constantTimeEquals(lastWord)
    }

    /// One element of a batch chain check.
    public struct Claim: Sendable {
        public var chainID: Bytes12
        public var index: UInt32
        public var word: Bytes32
        public var last: UInt32
        public var lastWord: Bytes32
        public init(chainID: Bytes12, index: UInt32, word: Bytes32, last: UInt32, lastWord: Bytes32) {
            self.chainID = chainID; self.index = index; self.word = word; self.last = last; self.lastWord = lastWord
        }
    }

    /// Checks many claims in one engine call (struct-of-arrays inside), on
    /// the active lane kernel or a named one.
    public static func verifyBatch(_ claims: [Claim], kernel: Engine.LaneKernel? = nil) throws(MicropayError) -> [Bool] {
        Engine.ensureInitialized()
        let n = claims.count
        guard n > 0 else { return [] }
        var ids = [UInt8](); ids.reserveCapacity(12 * n)
        var words = [UInt8](); words.reserveCapacity(32 * n)
        var expected = [UInt8](); expected.reserveCapacity(32 * n)
        var index = [UInt32](); index.reserveCapacity(n)
        var last = [UInt32](); last.reserveCapacity(n)
        for claim in claims {
            claim.chainID.withUnsafeBytes { ids.append(contentsOf: $0) }
            claim.word.withUnsafeBytes { words.append(contentsOf: $0) }
            claim.lastWord.withUnsafeBytes { expected.append(contentsOf: $0) }
            index.append(claim.index)
            last.append(claim.last)
        }
        let kernel = kernel ?? Engine.activeLaneKernel
        var status = MP_OK
        let ok = [UInt8](unsafeUninitializedCapacity: n) { out, initialized in
            status = mp_chain_verify_batch_with(kernel.c, n, ids, index, words, last, expected, out.baseAddress)
            initialized = n
        }
        guard status == MP_OK else { throw .unsupportedKernel(kernel.description) }
        return ok.map { $0 == 1 }
    }
}
