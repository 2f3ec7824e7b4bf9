/// The 16 bytes every wire object starts with (PROTOCOL.md §2).
///
/// Decoders check, in this order, stopping at the first failure:
/// 1. `.empty` for zero bytes;
/// 2. the kind: `.unknownKind` for a byte outside §7, `.unexpectedKind` for
///    another object's kind (so a misrouted object is named for what it is);
/// 3. the length: `.wrongLength(kind, expected:, actual:)`;
/// 4. version, suite, flags: `.unsupportedVersion`, `.unsupportedSuite`, `.nonZeroFlags`;
/// 5. then the object's own fields (zero fields, counts, codes), in offset order.
///
/// The length comes before version/suite/flags because the kind alone fixes
/// the layout: a cut-short object is reported as cut short even when the cut
/// fell inside the header. For a variable-length kind, `expected` is the
/// length that the fields read so far imply; when the object is cut before
/// those fields, it is the shortest length an object of that kind can have.
public struct WireHeader: Sendable, Equatable {
    public static let byteCount = 16
    public static let version: UInt8 = 1
    public static let suite: UInt8 = 1

    public var kind: WireKind
    public var bankID: UInt32
    /// The ticket serial; the customer (request); the batch id (deposit,
    /// receipt); the merchant's item number (goods stream).
    public var id: UInt64

    public init(kind: WireKind, bankID: UInt32, id: UInt64) {
        self.kind = kind
        self.bankID = bankID
        self.id = id
    }

    func encode(into writer: inout ByteWriter) {
        writer.u8(kind.rawValue)
        writer.u8(Self.version)
        writer.u8(Self.suite)
        writer.u8(0)
        writer.u32(bankID)
        writer.u64(id)
    }

    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: Self.byteCount)
        encode(into: &writer)
        return writer.bytes
    }

    /// The kind named by the first byte: `.empty` or `.unknownKind` if there is none.
    public static func kind(of buffer: UnsafeRawBufferPointer) throws(MicropayError) -> WireKind {
        guard let first = buffer.first else { throw .empty }
        guard let kind = WireKind(rawValue: first) else { throw .unknownKind(first) }
        return kind
    }

    public static func kind(of bytes: [UInt8]) throws(MicropayError) -> WireKind {
        guard let first = bytes.first else { throw .empty }
        guard let kind = WireKind(rawValue: first) else { throw .unknownKind(first) }
        return kind
    }

    /// Validates what a header alone can tell: the kind, the exact size for
    /// a fixed-size kind (for the others, only that the header is complete),
    /// version, suite and flags.
    public init(decoding buffer: UnsafeRawBufferPointer, as kind: WireKind) throws(MicropayError) {
        self = try Self.decode(buffer, as: kind) { reader throws(MicropayError) in
            kind.fixedSize ?? max(Self.byteCount, reader.count)
        }
    }

    /// The full check sequence above. `expectedLength` runs after the kind
    /// check, with a reader over the whole buffer, and gives the length the
    /// object must have (it may read fields it has checked are present, and
    /// may throw a more precise error of its own).
    static func decode(
        _ buffer: UnsafeRawBufferPointer, as kind: WireKind,
        expectedLength: (ByteReader) throws(MicropayError) -> Int
    ) throws(MicropayError) -> WireHeader {
        let found = try Self.kind(of: buffer)
        guard found == kind else { throw .unexpectedKind(expected: kind, found: found) }
        let reader = ByteReader(buffer)
        let expected = try expectedLength(reader)
        guard buffer.count == expected else { throw .wrongLength(kind, expected: expected, actual: buffer.count) }
        precondition(expected >= byteCount)
        return try validated(reader, kind: kind)
    }

    /// Fixed-size kinds: the length is the one of §7.
    static func decode(_ buffer: UnsafeRawBufferPointer, as kind: WireKind, length: Int) throws(MicropayError) -> WireHeader {
        try decode(buffer, as: kind) { _ throws(MicropayError) in length }
    }

    /// Version, suite and flags of a buffer whose kind and length are checked.
    static func validated(_ reader: ByteReader, kind: WireKind) throws(MicropayError) -> WireHeader {
        let version = reader.u8(at: 1)
        guard version == Self.version else { throw .unsupportedVersion(kind, version) }
        let suite = reader.u8(at: 2)
        guard suite == Self.suite else { throw .unsupportedSuite(kind, suite) }
        let flags = reader.u8(at: 3)
        guard flags == 0 else { throw .nonZeroFlags(kind, flags) }
        return WireHeader(kind: kind, bankID: reader.u32(at: 4), id: reader.u64(at: 8))
    }
}
