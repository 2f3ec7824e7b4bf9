/// Tang's MAC'd payment order (PROTOCOL.md §6, kind 0x02, 76 bytes).
///
/// Two tags: `bankTag` under mac(K_C), which only the customer and the bank
/// can make (so the merchant, who knows K_CM, cannot forge orders the bank
/// pays), and `tag` under mac(K_CM), which the merchant checks and which
/// covers `bankTag`. The exact bytes are kept: they are what the tags cover
/// and what the merchant stores to recognise a retried order.
public struct PaymentOrder: Sendable, Equatable, Hashable {
    public static let byteCount = 76
    /// `bank_tag` covers bytes 0..44, `tag` bytes 0..60.
    static let bankTagOffset = 44
    static let tagOffset = 60

    public let bankID: UInt32
    public let serial: UInt64
    public let seq: UInt32
    /// Total paid on this ticket, this order included.
    public let cumulative: UInt64
    /// What was bought: a goods stream's `item`, or a merchant's item id.
    public let item: Bytes16
    public let bankTag: Bytes16
    public let tag: Bytes16
    /// The 76 wire bytes.
    public let bytes: [UInt8]

    private init(reader: ByteReader, header: WireHeader) {
        bankID = header.bankID
        serial = header.id
        seq = reader.u32(at: 16)
        cumulative = reader.u64(at: 20)
        item = reader.fixed(at: 28)
        bankTag = reader.fixed(at: Self.bankTagOffset)
        tag = reader.fixed(at: Self.tagOffset)
        bytes = Array(reader.buffer)
    }

    public init(decoding buffer: UnsafeRawBufferPointer) throws(MicropayError) {
        let header = try WireHeader.decode(buffer, as: .paymentOrder, length: Self.byteCount)
        self.init(reader: ByteReader(buffer), header: header)
    }

    public init(decoding bytes: [UInt8]) throws(MicropayError) {
        self = try bytes.withDecoding { buffer throws(MicropayError) in try Self(decoding: buffer) }
    }

    /// The customer's order: `bankTag` under `customerMAC` = MACKey(mac(K_C)),
    /// then `tag` under `sessionMAC` = MACKey(mac(K_CM)).
    public static func make(
        bankID: UInt32, serial: UInt64, seq: UInt32, cumulative: UInt64, item: Bytes16,
        customerMAC: MACKey, sessionMAC: MACKey
    ) -> PaymentOrder {
        var writer = ByteWriter(capacity: byteCount)
        WireHeader(kind: .paymentOrder, bankID: bankID, id: serial).encode(into: &writer)
        writer.u32(seq)
        writer.u64(cumulative)
        writer.append(item)
        writer.appendMAC(customerMAC, label: .orderBank)
        writer.appendMAC(sessionMAC, label: .order)
        return writer.bytes.withUnsafeBytes { buffer in
            let reader = ByteReader(buffer)
            // Just built: the header is valid.
            return PaymentOrder(reader: reader, header: try! WireHeader.validated(reader, kind: .paymentOrder))
        }
    }

    public func encoded() -> [UInt8] { bytes }

    /// The merchant's check (and the bank's first): `tag` under MACKey(mac(K_CM)), constant-time.
    public func hasValidTag(sessionMAC: MACKey) -> Bool {
        bytes.withUnsafeBytes { sessionMAC.verify(label: .order, UnsafeRawBufferPointer(rebasing: $0[..<Self.tagOffset]), tag: tag) }
    }

    /// The bank's check: `bankTag` under MACKey(mac(K_C)), constant-time.
    public func hasValidBankTag(customerMAC: MACKey) -> Bool {
        bytes.withUnsafeBytes {
            customerMAC.verify(label: .orderBank, UnsafeRawBufferPointer(rebasing: $0[..<Self.bankTagOffset]), tag: bankTag)
        }
    }

    public static func == (lhs: PaymentOrder, rhs: PaymentOrder) -> Bool { lhs.bytes == rhs.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }
}
