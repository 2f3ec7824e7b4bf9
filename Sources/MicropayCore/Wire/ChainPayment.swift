/// A PayWord-style payment (PROTOCOL.md §5, kind 0x01, 52 bytes): revealing
/// `w_i` pays for units up to `i`. Not MAC'd: the word is its own proof.
public struct ChainPayment: Sendable, Equatable, Hashable {
    public static let byteCount = 52

    public var bankID: UInt32
    public var serial: UInt64
    /// `i`, from 1.
    public var index: UInt32
    /// `w_i`.
    public var word: Bytes32

    public init(bankID: UInt32, serial: UInt64, index: UInt32, word: Bytes32) {
        self.bankID = bankID
        self.serial = serial
        self.index = index
        self.word = word
    }

    public init(decoding buffer: UnsafeRawBufferPointer) throws(MicropayError) {
        let header = try WireHeader.decode(buffer, as: .chainPayment, length: Self.byteCount)
        let reader = ByteReader(buffer)
        self.init(bankID: header.bankID, serial: header.id, index: reader.u32(at: 16), word: reader.fixed(at: 20))
    }

    public init(decoding bytes: [UInt8]) throws(MicropayError) {
        self = try bytes.withDecoding { buffer throws(MicropayError) in try Self(decoding: buffer) }
    }

    func encode(into writer: inout ByteWriter) {
        WireHeader(kind: .chainPayment, bankID: bankID, id: serial).encode(into: &writer)
        writer.u32(index)
        writer.append(word)
    }

    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: Self.byteCount)
        encode(into: &writer)
        return writer.bytes
    }
}
