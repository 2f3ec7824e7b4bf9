/// The sealed content of a Ticket (PROTOCOL.md §3, 120 bytes): what the
/// merchant needs to accept payments on it. Never on the wire in the clear.
public struct TicketBody: Sendable, Equatable {
    public static let byteCount = 120

    public var customer: UInt64
    public var limit: UInt64
    /// 0 in order mode.
    public var unit: UInt64
    /// `n`; 0 in order mode.
    public var chainLength: UInt32
    public var chainID: Bytes12
    /// Unix seconds.
    public var issued: UInt64
    /// Unix seconds; the ticket is valid while `now ≤ expires`.
    public var expires: UInt64
    /// `w_0`; zero in order mode.
    public var root: Bytes32
    /// `K_CM`.
    public var sessionKey: SecretKey

    public init(
        customer: UInt64, limit: UInt64, unit: UInt64, chainLength: UInt32, chainID: Bytes12,
        issued: UInt64, expires: UInt64, root: Bytes32, sessionKey: SecretKey
    ) {
        self.customer = customer
        self.limit = limit
        self.unit = unit
        self.chainLength = chainLength
        self.chainID = chainID
        self.issued = issued
        self.expires = expires
        self.root = root
        self.sessionKey = sessionKey
    }

    /// The plaintext layout; a body has no header, so errors name `.ticket`.
    public init(decoding buffer: UnsafeRawBufferPointer) throws(MicropayError) {
        guard buffer.count == Self.byteCount else {
            throw .wrongLength(.ticket, expected: Self.byteCount, actual: buffer.count)
        }
        let reader = ByteReader(buffer)
        self.init(
            customer: reader.u64(at: 0), limit: reader.u64(at: 8), unit: reader.u64(at: 16),
            chainLength: reader.u32(at: 24), chainID: reader.fixed(at: 28),
            issued: reader.u64(at: 40), expires: reader.u64(at: 48), root: reader.fixed(at: 56),
            sessionKey: reader.secretKey(at: 88))
    }

    public init(decoding bytes: [UInt8]) throws(MicropayError) {
        self = try bytes.withDecoding { buffer throws(MicropayError) in try Self(decoding: buffer) }
    }

    /// The 120 plaintext bytes. They hold `K_CM`: zero them when done.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: Self.byteCount)
        writer.u64(customer)
        writer.u64(limit)
        writer.u64(unit)
        writer.u32(chainLength)
        writer.append(chainID)
        writer.u64(issued)
        writer.u64(expires)
        writer.append(root)
        writer.append(sessionKey)
        return writer.bytes
    }
}
