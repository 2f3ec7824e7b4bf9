/// Reads big-endian fields at fixed offsets of a buffer. Decoders check the
/// buffer's length once, before reading; the preconditions here only turn a
/// decoder bug into a trap instead of an out-of-bounds read.
struct ByteReader {
    let buffer: UnsafeRawBufferPointer

    init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

    var count: Int { buffer.count }

    @inline(__always)
    private func check(_ offset: Int, _ size: Int) {
        precondition(offset >= 0 && size >= 0 && offset <= buffer.count - size, "read past the end of a wire object")
    }

    func u8(at offset: Int) -> UInt8 {
        check(offset, 1)
        return buffer[offset]
    }

    func u16(at offset: Int) -> UInt16 {
        check(offset, 2)
        return UInt16(bigEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    func u32(at offset: Int) -> UInt32 {
        check(offset, 4)
        return UInt32(bigEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    func u64(at offset: Int) -> UInt64 {
        check(offset, 8)
        return UInt64(bigEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    func fixed<T: FixedBytes>(at offset: Int, as type: T.Type = T.self) -> T {
        check(offset, T.byteCount)
        return T(copying: UnsafeRawBufferPointer(rebasing: buffer[offset...]))
    }

    /// The 32 bytes at `offset` as a key (they never sit in a plain value).
    func secretKey(at offset: Int) -> SecretKey {
        // A 32-byte slice always makes a key.
        try! SecretKey(bytes: slice(offset, count: SecretKey.byteCount))
    }

    func slice(_ offset: Int, count: Int) -> UnsafeRawBufferPointer {
        check(offset, count)
        return UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + count)])
    }

    /// Offset of the first non-zero byte in `offset ..< offset + count`, or nil.
    func firstNonZero(_ offset: Int, count: Int) -> Int? {
        let bytes = slice(offset, count: count)
        guard let i = bytes.firstIndex(where: { $0 != 0 }) else { return nil }
        return offset + i
    }
}

extension Array where Element == UInt8 {
    /// Runs a typed-throwing decoder over the array's bytes.
    func withDecoding<R>(_ body: (UnsafeRawBufferPointer) throws(MicropayError) -> R) throws(MicropayError) -> R {
        // Array.withUnsafeBytes rethrows untyped errors: carry the typed one out in a Result.
        let result = withUnsafeBytes { buffer in
            Result { () throws(MicropayError) -> R in try body(buffer) }
        }
        return try result.get()
    }
}
