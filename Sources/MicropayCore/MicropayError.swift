/// Every failure of the core layer: decoding, authentication, keys, engine.
/// Equatable so tests can expect an exact case, with the detail that a user
/// needs to find the fault (which object, which field, which offset).
public enum MicropayError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Zero bytes where an object was expected.
    case empty
    /// The first byte is none of the kinds of PROTOCOL.md §7.
    case unknownKind(UInt8)
    /// A valid kind, but not the one this decoder reads.
    case unexpectedKind(expected: WireKind, found: WireKind)
    /// The object's length is not the one its layout gives.
    case wrongLength(WireKind, expected: Int, actual: Int)
    case unsupportedVersion(WireKind, UInt8)
    case unsupportedSuite(WireKind, UInt8)
    case nonZeroFlags(WireKind, UInt8)
    /// A field named `zero` (or padding) that is not zero, at this byte offset.
    case nonZeroField(WireKind, offset: Int)
    /// A field whose value the protocol forbids (e.g. chunk = 0, a result code > 12).
    case invalidField(WireKind, field: String, reason: String)
    /// An AEAD tag or MAC that did not verify (nil: not tied to a wire kind).
    case authenticationFailed(WireKind?)
    case invalidKeyLength(Int)
    case invalidHex
    /// A kernel or backend this CPU does not run.
    case unsupportedKernel(String)
    /// A batch verifier's thread count outside 1...BatchVerifier.maxThreads.
    case threadCount(Int)
    /// A u64 amount computation overflowed.
    case amountOverflow

    public var description: String {
        switch self {
        case .empty: "empty object"
        case .unknownKind(let k): "unknown kind 0x\(String(k, radix: 16))"
        case .unexpectedKind(let e, let f): "expected a \(e), found a \(f)"
        case .wrongLength(let k, let e, let a): "\(k) must be \(e) bytes, got \(a)"
        case .unsupportedVersion(let k, let v): "\(k): unsupported version \(v)"
        case .unsupportedSuite(let k, let s): "\(k): unsupported suite \(s)"
        case .nonZeroFlags(let k, let f): "\(k): flags must be 0, got \(f)"
        case .nonZeroField(let k, let o): "\(k): non-zero reserved field at offset \(o)"
        case .invalidField(let k, let f, let r): "\(k): invalid \(f): \(r)"
        case .authenticationFailed(let k): "\(k.map { "\($0)" } ?? "data") failed authentication"
        case .invalidKeyLength(let n): "a key is 32 bytes, got \(n)"
        case .invalidHex: "not hexadecimal"
        case .unsupportedKernel(let name): "\(name) does not run on this CPU"
        case .threadCount(let n): "\(n) threads: a batch verifier takes 1 to \(BatchVerifier.maxThreads)"
        case .amountOverflow: "amount overflows 64 bits"
        }
    }
}
