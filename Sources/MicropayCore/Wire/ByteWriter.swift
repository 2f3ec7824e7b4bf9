/// Appends big-endian integers and raw bytes to one array whose capacity is
/// reserved up front: every wire object has a size known before it is built.
struct ByteWriter {
    private(set) var bytes: [UInt8]

    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    var count: Int { bytes.count }

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u16(_ value: UInt16) { withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ value: UInt64) { withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) } }

    mutating func append(_ value: some FixedBytes) { value.withUnsafeBytes { bytes.append(contentsOf: $0) } }
    mutating func append(_ buffer: UnsafeRawBufferPointer) { bytes.append(contentsOf: buffer) }
    mutating func append(_ array: [UInt8]) { bytes.append(contentsOf: array) }
    mutating func append(_ key: SecretKey) { key.withUnsafeBytes { bytes.append(contentsOf: $0) } }

    /// `count` zero bytes (a `zero` field or padding).
    mutating func zeros(_ count: Int) { bytes.append(contentsOf: repeatElement(0, count: count)) }

    /// Appends `MAC128(key, label, everything written so far)`.
    mutating func appendMAC(_ key: MACKey, label: MACLabel) {
        let tag = bytes.withUnsafeBytes { key.mac128(label: label, $0) }
        append(tag)
    }
}

extension Array where Element == UInt8 {
    /// Overwrites the bytes (for plaintexts that held a secret) before they are freed.
    mutating func zeroize() {
        withUnsafeMutableBytes { Engine.zero($0) }
    }
}
