/// The bank's answer to the customer (PROTOCOL.md §3, kind 0x11, 168 bytes):
/// an EnvelopeBody sealed under enc(K_C), with the clear prefix (header,
/// customer, nonce) as associated data.
public struct Envelope: Sendable, Equatable, Hashable {
    public static let byteCount = 168
    static let prefixLength = 48

    public let bankID: UInt32
    public let serial: UInt64
    public let customer: UInt64
    public let nonce: Bytes24
    /// The 168 wire bytes.
    public let bytes: [UInt8]

    private init(reader: ByteReader, header: WireHeader) {
        bankID = header.bankID
        serial = header.id
        customer = reader.u64(at: 16)
        nonce = reader.fixed(at: 24)
        bytes = Array(reader.buffer)
    }

    public init(decoding buffer: UnsafeRawBufferPointer) throws(MicropayError) {
        let header = try WireHeader.decode(buffer, as: .envelope, length: Self.byteCount)
        self.init(reader: ByteReader(buffer), header: header)
    }

    public init(decoding bytes: [UInt8]) throws(MicropayError) {
        self = try bytes.withDecoding { buffer throws(MicropayError) in try Self(decoding: buffer) }
    }

    /// The bank's side: seals `body` under enc(`customerKey`) = enc(K_C).
    public static func seal(
        body: EnvelopeBody, bankID: UInt32, serial: UInt64, customer: UInt64,
        customerKey: SecretKey, nonce: Bytes24 = .random()
    ) -> Envelope {
        var writer = ByteWriter(capacity: prefixLength)
        WireHeader(kind: .envelope, bankID: bankID, id: serial).encode(into: &writer)
        writer.u64(customer)
        writer.append(nonce)
        var plaintext = body.encoded()
        let bytes = WireSeal.seal(prefix: writer.bytes, nonce: nonce, plaintext: &plaintext, key: customerKey.encryptionSubkey)
        return bytes.withUnsafeBytes { buffer in
            let reader = ByteReader(buffer)
            return Envelope(reader: reader, header: try! WireHeader.validated(reader, kind: .envelope))
        }
    }

    public func encoded() -> [UInt8] { bytes }

    /// The customer's side; `.authenticationFailed(.envelope)` unless sealed under this K_C.
    public func open(customerKey: SecretKey) throws(MicropayError) -> EnvelopeBody {
        try open(encryptionKey: customerKey.encryptionSubkey)
    }

    /// As `open(customerKey:)`, with enc(K_C) derived once by the caller.
    public func open(encryptionKey: SecretKey) throws(MicropayError) -> EnvelopeBody {
        var plaintext = try WireSeal.open(bytes, prefixLength: Self.prefixLength, nonce: nonce, key: encryptionKey, kind: .envelope)
        defer { plaintext.zeroize() }
        return try EnvelopeBody(decoding: plaintext)
    }

    public static func == (lhs: Envelope, rhs: Envelope) -> Bool { lhs.bytes == rhs.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }
}
