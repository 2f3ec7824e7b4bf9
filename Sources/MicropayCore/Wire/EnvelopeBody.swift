/// The sealed content of an Envelope (PROTOCOL.md §3, 104 bytes): what the
/// customer learns of its ticket, the session key above all. Never on the
/// wire in the clear.
public struct EnvelopeBody: Sendable, Equatable {
    public static let byteCount = 104

    public var merchant: UInt64
    public var limit: UInt64
    /// 0 in order mode.
    public var unit: UInt64
    /// `n`; 0 in order mode.
    public var chainLength: UInt32
    public var chainID: Bytes12
    /// Unix seconds.
    public var issued: UInt64
    /// Unix seconds.
    public var expires: UInt64
    /// `K_CM`.
    public var sessionKey: SecretKey
    /// The request this answers.
    public var requestID: Bytes16

    public init(
        merchant: UInt64, limit: UInt64, unit: UInt64, chainLength: UInt32, chainID: Bytes12,
        issued: UInt64, expires: UInt64, sessionKey: SecretKey, requestID: Bytes16
    ) {
        self.merchant = merchant
        self.limit = limit
        self.unit = unit
        self.chainLength = chainLength
        self.chainID = chainID
        self.issued = issued
        self.expires = expires
        self.sessionKey = sessionKey
        self.requestID = requestID
    }

    /// The plaintext layout; a body has no header, so errors name `.envelope`.
    public init(decoding buffer: UnsafeRawBufferPointer) throws(MicropayError) {
        guard buffer.count == Self.byteCount else {
            throw .wrongLength(.envelope, expected: Self.byteCount, actual: buffer.count)
        }
        let reader = ByteReader(buffer)
        self.init(
            merchant: reader.u64(at: 0), limit: reader.u64(at: 8), unit: reader.u64(at: 16),
            chainLength: reader.u32(at: 24), chainID: reader.fixed(at: 28),
            issued: reader.u64(at: 40), expires: reader.u64(at: 48),
            sessionKey: reader.secretKey(at: 56), requestID: reader.fixed(at: 88))
    }

    public init(decoding bytes: [UInt8]) throws(MicropayError) {
        self = try bytes.withDecoding { buffer throws(MicropayError) in try Self(decoding: buffer) }
    }

    /// The 104 plaintext bytes. They hold `K_CM`: zero them when done.
    public func encoded() -> [UInt8] {
        var writer = ByteWriter(capacity: Self.byteCount)
        writer.u64(merchant)
        writer.u64(limit)
        writer.u64(unit)
        writer.u32(chainLength)
        writer.append(chainID)
        writer.u64(issued)
        writer.u64(expires)
        writer.append(sessionKey)
        writer.append(requestID)
        return writer.bytes
    }
}
