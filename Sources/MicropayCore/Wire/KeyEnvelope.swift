/// A bought item's stream key `K_s` for the customer (PROTOCOL.md §8, kind
/// 0x40, 104 bytes), sealed under enc(K_CM) of the ticket that paid, with the
/// clear prefix (header, item, nonce) as associated data. The customer checks
/// `item` against the stream it holds before opening.
public struct KeyEnvelope: Sendable, Equatable, Hashable {
    public static let byteCount = 104
    static let prefixLength = 56

    public let bankID: UInt32
    public let serial: UInt64
    /// The `item` of the GoodsStream this key opens.
    public let item: Bytes16
    public let nonce: Bytes24
    /// The 104 wire bytes.
    public let bytes: [UInt8]

    private init(reader: ByteReader, header: WireHeader) {
        bankID = header.bankID
        serial = header.id
        item = reader.fixed(at: 16)
        nonce = reader.fixed(at: 32)
        bytes = Array(reader.buffer)
    }

    public init(decoding buffer: UnsafeRawBufferPointer) throws(MicropayError) {
        let header = try WireHeader.decode(buffer, as: .keyEnvelope, length: Self.byteCount)
        self.init(reader: ByteReader(buffer), header: header)
    }

    public init(decoding bytes: [UInt8]) throws(MicropayError) {
        self = try bytes.withDecoding { buffer throws(MicropayError) in try Self(decoding: buffer) }
    }

    /// The merchant's side: seals `streamKey` under enc(`sessionKey`) = enc(K_CM).
    public static func seal(
        streamKey: SecretKey, bankID: UInt32, serial: UInt64, item: Bytes16,
        sessionKey: SecretKey, nonce: Bytes24 = .random()
    ) -> KeyEnvelope {
        var writer = ByteWriter(capacity: prefixLength)
        WireHeader(kind: .keyEnvelope, bankID: bankID, id: serial).encode(into: &writer)
        writer.append(item)
        writer.append(nonce)
        var plaintext = streamKey.withUnsafeBytes { Array($0) }
        let bytes = WireSeal.seal(prefix: writer.bytes, nonce: nonce, plaintext: &plaintext, key: sessionKey.encryptionSubkey)
        return bytes.withUnsafeBytes { buffer in
            let reader = ByteReader(buffer)
            return KeyEnvelope(reader: reader, header: try! WireHeader.validated(reader, kind: .keyEnvelope))
        }
    }

    public func encoded() -> [UInt8] { bytes }

    /// The customer's side: `K_s`; `.authenticationFailed(.keyEnvelope)` unless sealed under this K_CM.
    public func open(sessionKey: SecretKey) throws(MicropayError) -> SecretKey {
        var plaintext = try WireSeal.open(
            bytes, prefixLength: Self.prefixLength, nonce: nonce, key: sessionKey.encryptionSubkey, kind: .keyEnvelope)
        defer { plaintext.zeroize() }
        return try SecretKey(bytes: plaintext)
    }

    public static func == (lhs: KeyEnvelope, rhs: KeyEnvelope) -> Bool { lhs.bytes == rhs.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }
}
