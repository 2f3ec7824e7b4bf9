import MicropayCore

/// A customer's hash chain without the whole chain: words at every
/// `spacing`-th index down from the seed `w_n` are kept, so any word is at most
/// `spacing - 1 ≈ √n` steps from a checkpoint.
public struct PaywordChain: Sendable {
    public let chainID: Bytes12
    public let length: UInt32
    public let spacing: UInt32
    /// checkpoints[k] = w_{length - k × spacing}, for every such index ≥ 1.
    public let checkpoints: [Bytes32]

    public static func spacing(for length: UInt32) -> UInt32 {
        var s = UInt32(Double(length).squareRoot())
        while UInt64(s) * UInt64(s) < UInt64(length) { s += 1 }
        return max(s, 1)
    }

    /// Walks the chain once from its seed, keeping checkpoints; returns the root `w_0`.
    public static func build(seed: Bytes32, chainID: Bytes12, length: UInt32) -> (chain: PaywordChain, root: Bytes32) {
        precondition(length >= 1)
        let spacing = spacing(for: length)
        var checkpoints: [Bytes32] = [seed]
        var index = length
        var word = seed
        while index > 0 {
            let next = index >= spacing ? index - spacing : 0
            word = HashChain.walk(chainID: chainID, from: index, word: word, to: next)
            index = next
            if index > 0 { checkpoints.append(word) }
        }
        return (PaywordChain(chainID: chainID, length: length, spacing: spacing, checkpoints: checkpoints), word)
    }

    init(chainID: Bytes12, length: UInt32, spacing: UInt32, checkpoints: [Bytes32]) {
        self.chainID = chainID
        self.length = length
        self.spacing = spacing
        self.checkpoints = checkpoints
    }

    /// `w_index` for 1 ≤ index ≤ length, in fewer than `spacing` steps.
    public func word(at index: UInt32) -> Bytes32 {
        precondition(index >= 1 && index <= length)
        let k = (length - index) / spacing
        let from = length - k * spacing
        return HashChain.walk(chainID: chainID, from: from, word: checkpoints[Int(k)], to: index)
    }

    /// The checkpoints as one blob for the wallet file.
    var serializedCheckpoints: [UInt8] { checkpoints.flatMap(\.bytes) }

    init?(chainID: Bytes12, length: UInt32, serialized: [UInt8]) {
        let spacing = Self.spacing(for: length)
        let expected = Int((length - 1) / spacing) + 1
        guard serialized.count == 32 * expected else { return nil }
        let checkpoints = (0..<expected).map { Bytes32(serialized[(32 * $0)..<(32 * $0 + 32)])! }
        self.init(chainID: chainID, length: length, spacing: spacing, checkpoints: checkpoints)
    }
}
