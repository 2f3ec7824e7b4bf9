import Foundation
import MicropayCore

/// A reproducible RandomSource (SplitMix64) for simulations, generated
/// batches and benchmarks: the same seed gives the same bytes. Never for keys
/// that protect real money.
public final class SeededRandom: RandomSource, @unchecked Sendable {
    private var generator: SplitMix64
    private let lock = NSLock()

    public init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    public func next() -> UInt64 {
        lock.lock(); defer { lock.unlock() }
        return generator.next()
    }

    /// Uniform in 0..<bound.
    public func below(_ bound: Int) -> Int {
        precondition(bound > 0)
        lock.lock(); defer { lock.unlock() }
        return Int.random(in: 0..<bound, using: &generator)
    }

    /// True with probability `p`.
    public func chance(_ p: Double) -> Bool {
        p > 0 && Double(next() >> 11) * 0x1p-53 < p
    }

    public func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        var offset = 0
        while offset < buffer.count {
            var word = next()
            let n = min(8, buffer.count - offset)
            withUnsafeBytes(of: &word) { buffer.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: n) }
            offset += n
        }
    }
}
