/// A customer's request for a ticket (PROTOCOL.md §3, kind 0x20, 128 bytes),
/// tagged under mac(K_C). Decoding checks layout only; the mode rules,
/// lifetime policy and balance are the bank's checks. The bytes are kept:
/// the tag covers them, and a retried request must equal the first byte for byte.
public struct TicketRequest: Sendable, Equatable, Hashable {
    public static let byteCount = 128
    static let zeroOffset = 92
    static let tagOffset = 112

    public let bankID: UInt32
    public let customer: UInt64
    public let merchant: UInt64
    public let limit: UInt64
    /// Price of one chain word; 0 in order mode.
    public let unit: UInt64
    /// `n`; 0 in order mode.
    public let chainLength: UInt32
    /// Seconds.
    public let lifetime: UInt32
    /// `w_0`; zero in order mode.
    public let root: Bytes32
    /// Zero in order mode.
    public let chainID: Bytes12
    public let requestID: Bytes16
    public let tag: Bytes16
    /// The 128 wire bytes.
    public let bytes: [UInt8]

    private init(reader: ByteReader, header: WireHeader) {
        bankID = header.bankID
        customer = header.id
        merchant = reader.u64(at: 16)
        limit = reader.u64(at: 24)
        unit = reader.u64(at: 32)
        chainLength = reader.u32(at: 40)
        lifetime = reader.u32(at: 44)
        root = reader.fixed(at: 48)
        chainID = reader.fixed(at: 80)
        requestID = reader.fixed(at: 96)
        tag = reader.fixed(at: Self.tagOffset)
        bytes = Array(reader.buffer)
    }

    public init(decoding buffer: UnsafeRawBufferPointer) throws(MicropayError) {
        let header = try WireHeader.decode(buffer, as: .ticketRequest, length: Self.byteCount)
        let reader = ByteReader(buffer)
        if let offset = reader.firstNonZero(Self.zeroOffset, count: 4) {
            throw .nonZeroField(.ticketRequest, offset: offset)
        }
        self.init(reader: reader, header: header)
    }

    public init(decoding bytes: [UInt8]) throws(MicropayError) {
        self = try bytes.withDecoding { buffer throws(MicropayError) in try Self(decoding: buffer) }
    }

    /// Builds and tags a request; `customerMAC` = MACKey(mac(K_C)).
    /// Chain mode: `root` and `chainID` set, `limit = chainLength × unit`;
    /// order mode: `unit`, `chainLength`, `root`, `chainID` zero.
    public static func make(
        bankID: UInt32, customer: UInt64, merchant: UInt64, limit: UInt64, unit: UInt64,
        chainLength: UInt32, lifetime: UInt32, root: Bytes32 = Bytes32(), chainID: Bytes12 = Bytes12(),
        requestID: Bytes16, customerMAC: MACKey
    ) -> TicketRequest {
        var writer = ByteWriter(capacity: byteCount)
        WireHeader(kind: .ticketRequest, bankID: bankID, id: customer).encode(into: &writer)
        writer.u64(merchant)
        writer.u64(limit)
        writer.u64(unit)
        writer.u32(chainLength)
        writer.u32(lifetime)
        writer.append(root)
        writer.append(chainID)
        writer.zeros(4)
        writer.append(requestID)
        writer.appendMAC(customerMAC, label: .request)
        return writer.bytes.withUnsafeBytes { buffer in
            let reader = ByteReader(buffer)
            return TicketRequest(reader: reader, header: try! WireHeader.validated(reader, kind: .ticketRequest))
        }
    }

    public func encoded() -> [UInt8] { bytes }

    /// The bank's first check: `tag` under MACKey(mac(K_C)), constant-time.
    public func hasValidTag(customerMAC: MACKey) -> Bool {
        bytes.withUnsafeBytes {
            customerMAC.verify(label: .request, UnsafeRawBufferPointer(rebasing: $0[..<Self.tagOffset]), tag: tag)
        }
    }

    public static func == (lhs: TicketRequest, rhs: TicketRequest) -> Bool { lhs.bytes == rhs.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }
}
