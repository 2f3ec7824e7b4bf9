import MicropayCore

/// A customer's hash chain without the whole chain: words at every
/// `spacing`-th index down from the seed `w_n` are kept, so any word is at most
/// `spacing - 1 ≈ √n` steps from a checkpoint.
///
/// The checkpoints are the chain's unrevealed words, as secret as the seed:
/// they live in one heap buffer that is zeroed when the last copy of the
/// chain goes.
public struct PaywordChain: Sendable {
    public let chainID: Bytes12
    public let length: UInt32
    public let spacing: UInt32
    /// Word k is w_{length - k × spacing}, for every such index ≥ 1.
    private let words: SecretWords

    public static func spacing(for length: UInt32) -> UInt32 {
        var s = UInt32(Double(length).squareRoot())
        while UInt64(s) * UInt64(s) < UInt64(length) { s += 1 }
        return max(s, 1)
    }

    /// How many checkpoints a chain of `length` keeps.
    static func checkpointCount(for length: UInt32) -> Int { Int((length - 1) / spacing(for: length)) + 1 }

    /// Walks the chain once from its seed, keeping checkpoints; returns the root `w_0`.
    public static func build(seed: Bytes32, chainID: Bytes12, length: UInt32) -> (chain: PaywordChain, root: Bytes32) {
        precondition(length >= 1)
        let spacing = spacing(for: length)
        let words = SecretWords(count: checkpointCount(for: length))
        words[0] = seed
        var index = length
        var word = seed
        var k = 0
        while index > 0 {
            let next = index >= spacing ? index - spacing : 0
            word = HashChain.walk(chainID: chainID, from: index, word: word, to: next)
            index = next
            if index > 0 {
                k += 1
                words[k] = word
            }
        }
        return (PaywordChain(chainID: chainID, length: length, spacing: spacing, words: words), word)
    }

    private init(chainID: Bytes12, length: UInt32, spacing: UInt32, words: SecretWords) {
        self.chainID = chainID
        self.length = length
        self.spacing = spacing
        self.words = words
    }

    /// `w_index` for 1 ≤ index ≤ length, in fewer than `spacing` steps.
    public func word(at index: UInt32) -> Bytes32 {
        precondition(index >= 1 && index <= length)
        let k = (length - index) / spacing
        let from = length - k * spacing
        return HashChain.walk(chainID: chainID, from: from, word: words[Int(k)], to: index)
    }

    /// Checkpoint `k` (tests).
    func checkpoint(_ k: Int) -> Bytes32 { words[k] }
    var checkpointCount: Int { words.count }

    /// Runs `body` over the checkpoints as one blob, as the wallet file keeps
    /// them; the bytes are valid only during the call.
    func withSerializedCheckpoints<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(words.buffer))
    }

    /// A chain from the wallet file's blob; nil if its length does not fit the chain.
    init?(chainID: Bytes12, length: UInt32, serialized: UnsafeRawBufferPointer) {
        let count = Self.checkpointCount(for: length)
        guard length >= 1, serialized.count == 32 * count else { return nil }
        let words = SecretWords(count: count)
        words.buffer.copyMemory(from: serialized)
        self.init(chainID: chainID, length: length, spacing: Self.spacing(for: length), words: words)
    }
}

/// `count` 32-byte words in one heap buffer, zeroed when dropped.
private final class SecretWords: @unchecked Sendable {
    let buffer: UnsafeMutableRawBufferPointer
    let count: Int

    init(count: Int) {
        self.count = count
        buffer = .allocate(byteCount: 32 * count, alignment: 16)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
    }

    deinit {
        Engine.zero(buffer)
        buffer.deallocate()
    }

    // Written only while the chain is built or read in, before it is shared.
    subscript(k: Int) -> Bytes32 {
        get { Bytes32(UnsafeRawBufferPointer(rebasing: buffer[(32 * k)..<(32 * k + 32)]))! }
        set { newValue.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[(32 * k)..<(32 * k + 32)]).copyMemory(from: $0) } }
    }
}
