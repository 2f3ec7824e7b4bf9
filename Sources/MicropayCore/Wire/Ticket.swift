/// The bank's ticket for a merchant (PROTOCOL.md §3, kind 0x10, 184 bytes):
/// a TicketBody sealed under enc(K_M), opaque to the customer who carries it.
/// The clear prefix (header, merchant, nonce) is the associated data, so a
/// ticket that opens was issued by the bank for this merchant and serial.
public struct Ticket: Sendable, Equatable, Hashable {
    public static let byteCount = 184
    static let prefixLength = 48

    public let bankID: UInt32
    public let serial: UInt64
    public let merchant: UInt64
    public let nonce: Bytes24
    /// The 184 wire bytes.
    public let bytes: [UInt8]

    private init(reader: ByteReader, header: WireHeader) {
        bankID = header.bankID
        serial = header.id
        merchant = reader.u64(at: 16)
        nonce = reader.fixed(at: 24)
        bytes = Array(reader.buffer)
    }

    public init(decoding buffer: UnsafeRawBufferPointer) throws(MicropayError) {
        let header = try WireHeader.decode(buffer, as: .ticket, length: Self.byteCount)
        self.init(reader: ByteReader(buffer), header: header)
    }

    public init(decoding bytes: [UInt8]) throws(MicropayError) {
        self = try bytes.withDecoding { buffer throws(MicropayError) in try Self(decoding: buffer) }
    }

    /// The bank's side: seals `body` under enc(`merchantKey`) = enc(K_M).
    public static func seal(
        body: TicketBody, bankID: UInt32, serial: UInt64, merchant: UInt64,
        merchantKey: SecretKey, nonce: Bytes24 = .random()
    ) -> Ticket {
        var writer = ByteWriter(capacity: prefixLength)
        WireHeader(kind: .ticket, bankID: bankID, id: serial).encode(into: &writer)
        writer.u64(merchant)
        writer.append(nonce)
        var plaintext = body.encoded()
        let bytes = WireSeal.seal(prefix: writer.bytes, nonce: nonce, plaintext: &plaintext, key: merchantKey.encryptionSubkey)
        return bytes.withUnsafeBytes { buffer in
            let reader = ByteReader(buffer)
            return Ticket(reader: reader, header: try! WireHeader.validated(reader, kind: .ticket))
        }
    }

    public func encoded() -> [UInt8] { bytes }

    /// The merchant's side; `.authenticationFailed(.ticket)` unless sealed under this K_M.
    public func open(merchantKey: SecretKey) throws(MicropayError) -> TicketBody {
        try open(encryptionKey: merchantKey.encryptionSubkey)
    }

    /// As `open(merchantKey:)`, with enc(K_M) derived once by the caller.
    public func open(encryptionKey: SecretKey) throws(MicropayError) -> TicketBody {
        var plaintext = try WireSeal.open(bytes, prefixLength: Self.prefixLength, nonce: nonce, key: encryptionKey, kind: .ticket)
        defer { plaintext.zeroize() }
        return try TicketBody(decoding: plaintext)
    }

    public static func == (lhs: Ticket, rhs: Ticket) -> Bool { lhs.bytes == rhs.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }
}
