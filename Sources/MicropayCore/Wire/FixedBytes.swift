/// Fixed-size byte strings stored inline (no heap), as swift-crypto stores
/// digests. Equality here is ordinary, not constant-time: compare secrets and
/// tags with `constantTimeEquals`.
public protocol FixedBytes: Hashable, Sendable, CustomStringConvertible {
    static var byteCount: Int { get }
    /// All zero bytes.
    init()
    func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R
    mutating func withUnsafeMutableBytes<R, E: Error>(
        _ body: (UnsafeMutableRawBufferPointer) throws(E) -> R
    ) throws(E) -> R
}

extension FixedBytes {
    /// Copies exactly `byteCount` bytes; nil if `bytes` has another length.
    public init?(_ bytes: some Collection<UInt8>) {
        guard bytes.count == Self.byteCount else { return nil }
        self.init()
        withUnsafeMutableBytes { dst in
            _ = dst.initializeMemory(as: UInt8.self, from: bytes)
        }
    }

    /// Copies `byteCount` bytes from the start of `buffer` (which must hold them).
    init(copying buffer: UnsafeRawBufferPointer) {
        precondition(buffer.count >= Self.byteCount)
        self.init()
        withUnsafeMutableBytes { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer.prefix(Self.byteCount)))
        }
    }

    /// Parses lower- or upper-case hex of exactly `2 * byteCount` digits.
    public init?(hex: String) {
        guard let bytes = [UInt8](hex: hex) else { return nil }
        self.init(bytes)
    }

    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }
    public var hex: String { bytes.hexString }
    public var description: String { hex }

    public static func random() -> Self {
        var value = Self()
        value.withUnsafeMutableBytes { Engine.randomBytes($0) }
        return value
    }

    /// Comparison whose time does not depend on where the bytes differ.
    public func constantTimeEquals(_ other: Self) -> Bool {
        withUnsafeBytes { a in other.withUnsafeBytes { b in Engine.constantTimeEquals(a, b) } }
    }

    public var isZero: Bool { withUnsafeBytes { $0.allSatisfy { $0 == 0 } } }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.withUnsafeBytes { a in rhs.withUnsafeBytes { b in a.elementsEqual(b) } }
    }

    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes { hasher.combine(bytes: $0) }
    }
}

/// Stamps out the storage and the two buffer accessors for each size.
/// Tuples of integers keep the value inline and trivially copyable.
public struct Bytes12: FixedBytes {
    public static var byteCount: Int { 12 }
    var storage: (UInt64, UInt32) = (0, 0)
    public init() {}
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        var copy = storage
        return try Swift.withUnsafeBytes(of: &copy) { (raw) throws(E) -> R in try body(UnsafeRawBufferPointer(rebasing: raw.prefix(12))) }
    }
    public mutating func withUnsafeMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try Swift.withUnsafeMutableBytes(of: &storage) { (raw) throws(E) -> R in try body(UnsafeMutableRawBufferPointer(rebasing: raw.prefix(12))) }
    }
}

public struct Bytes16: FixedBytes {
    public static var byteCount: Int { 16 }
    var storage: (UInt64, UInt64) = (0, 0)
    public init() {}
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        var copy = storage
        return try Swift.withUnsafeBytes(of: &copy) { (raw) throws(E) -> R in try body(raw) }
    }
    public mutating func withUnsafeMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try Swift.withUnsafeMutableBytes(of: &storage) { (raw) throws(E) -> R in try body(raw) }
    }
}

public struct Bytes24: FixedBytes {
    public static var byteCount: Int { 24 }
    var storage: (UInt64, UInt64, UInt64) = (0, 0, 0)
    public init() {}
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        var copy = storage
        return try Swift.withUnsafeBytes(of: &copy) { (raw) throws(E) -> R in try body(raw) }
    }
    public mutating func withUnsafeMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try Swift.withUnsafeMutableBytes(of: &storage) { (raw) throws(E) -> R in try body(raw) }
    }
}

public struct Bytes32: FixedBytes {
    public static var byteCount: Int { 32 }
    var storage: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    public init() {}
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        var copy = storage
        return try Swift.withUnsafeBytes(of: &copy) { (raw) throws(E) -> R in try body(raw) }
    }
    public mutating func withUnsafeMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try Swift.withUnsafeMutableBytes(of: &storage) { (raw) throws(E) -> R in try body(raw) }
    }
}

extension Array where Element == UInt8 {
    /// Parses hex (any case, even length); nil on anything else.
    public init?(hex: String) {
        let utf8 = Array<UInt8>(hex.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        var i = 0
        while i < utf8.count {
            guard let hi = nibble(utf8[i]), let lo = nibble(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        self = out
    }

    public var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var chars = [UInt8]()
        chars.reserveCapacity(count * 2)
        for byte in self {
            chars.append(digits[Int(byte >> 4)])
            chars.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: chars, as: UTF8.self)
    }
}
