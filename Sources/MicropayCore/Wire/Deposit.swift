/// A merchant's batch of claims for settlement (PROTOCOL.md §9, kind 0x30):
/// header (id = batch id) · merchant · count · zero · `count` claims · tag
/// under mac(K_M). The bank must derive K_M from `merchant` before it can
/// check the tag, so the tag check is `hasValidTag(merchantMAC:)`, apart from
/// decoding. The bytes are kept: the tag covers them, the Receipt carries
/// their digest, and a resent batch must equal the first byte for byte.
public struct Deposit: Sendable, Equatable, Hashable {
    /// A payment exactly as the merchant accepted it; its kind gives its size.
    public enum Claim: Sendable, Equatable, Hashable {
        case chain(ChainPayment)
        case order(PaymentOrder)

        public var kind: WireKind {
            switch self {
            case .chain: .chainPayment
            case .order: .paymentOrder
            }
        }

        public var bankID: UInt32 {
            switch self {
            case .chain(let payment): payment.bankID
            case .order(let order): order.bankID
            }
        }

        public var serial: UInt64 {
            switch self {
            case .chain(let payment): payment.serial
            case .order(let order): order.serial
            }
        }

        public var byteCount: Int {
            switch self {
            case .chain: ChainPayment.byteCount
            case .order: PaymentOrder.byteCount
            }
        }

        public func encoded() -> [UInt8] {
            switch self {
            case .chain(let payment): payment.encoded()
            case .order(let order): order.encoded()
            }
        }

        /// The size of a claim of kind byte `kind`, nil if claims cannot have it.
        static func byteCount(ofKind kind: UInt8) -> Int? {
            switch kind {
            case WireKind.chainPayment.rawValue: ChainPayment.byteCount
            case WireKind.paymentOrder.rawValue: PaymentOrder.byteCount
            default: nil
            }
        }
    }

    /// Header, merchant, count, zero: where the claims start.
    static let claimsOffset = 32
    static let zeroOffset = 28
    static let tagByteCount = 16
    /// A Deposit with no claims.
    public static let minimumByteCount = claimsOffset + tagByteCount

    public let bankID: UInt32
    public let batchID: UInt64
    public let merchant: UInt64
    public let claims: [Claim]
    public let tag: Bytes16
    /// The wire bytes.
    public let bytes: [UInt8]

    /// Checks, after the kind: the length the count and the claims' kinds
    /// imply (a claim kind other than 0x01/0x02 is `.invalidField`); version,
    /// suite, flags; the zero field; then each claim's own header.
    public init(decoding buffer: UnsafeRawBufferPointer) throws(MicropayError) {
        let header = try WireHeader.decode(buffer, as: .deposit) { reader throws(MicropayError) in
            try Self.impliedLength(reader)
        }
        let reader = ByteReader(buffer)
        if let offset = reader.firstNonZero(Self.zeroOffset, count: 4) { throw .nonZeroField(.deposit, offset: offset) }
        let count = Int(reader.u32(at: 24))
        var claims: [Claim] = []
        claims.reserveCapacity(count)
        var offset = Self.claimsOffset
        for _ in 0..<count {
            // impliedLength has walked these kinds: each is a claim kind that fits.
            let size = Claim.byteCount(ofKind: reader.u8(at: offset))!
            let slice = reader.slice(offset, count: size)
            if size == ChainPayment.byteCount {
                claims.append(.chain(try ChainPayment(decoding: slice)))
            } else {
                claims.append(.order(try PaymentOrder(decoding: slice)))
            }
            offset += size
        }
        bankID = header.bankID
        batchID = header.id
        merchant = reader.u64(at: 16)
        self.claims = claims
        tag = reader.fixed(at: offset)
        bytes = Array(buffer)
    }

    public init(decoding bytes: [UInt8]) throws(MicropayError) {
        self = try bytes.withDecoding { buffer throws(MicropayError) in try Self(decoding: buffer) }
    }

    /// The length the fields present imply. Cut before `count`: the length of
    /// an empty Deposit. Claims are walked by their kind bytes, read only
    /// where they must lie (before the last 16 bytes, which are the tag);
    /// claims past the end count at their smallest size, 52.
    private static func impliedLength(_ reader: ByteReader) throws(MicropayError) -> Int {
        guard reader.count >= zeroOffset else { return minimumByteCount }
        let count = Int(reader.u32(at: 24))
        let claimsEnd = reader.count - tagByteCount
        var offset = claimsOffset
        var walked = 0
        while walked < count && offset < claimsEnd {
            let kind = reader.u8(at: offset)
            guard let size = Claim.byteCount(ofKind: kind) else {
                throw .invalidField(
                    .deposit, field: "claim \(walked) kind",
                    reason: "0x\(String(kind, radix: 16)) at offset \(offset) is neither a ChainPayment nor a PaymentOrder")
            }
            offset += size
            walked += 1
        }
        // At most 2^32 claims of at most 76 bytes: no overflow in Int.
        return offset + (count - walked) * ChainPayment.byteCount + tagByteCount
    }

    /// The merchant's batch, tagged under `merchantMAC` = MACKey(mac(K_M)).
    public static func make(bankID: UInt32, batchID: UInt64, merchant: UInt64, claims: [Claim], merchantMAC: MACKey) -> Deposit {
        precondition(claims.count <= Int(UInt32.max), "a Deposit holds at most 2^32 - 1 claims")
        let size = claims.reduce(minimumByteCount) { $0 + $1.byteCount }
        var writer = ByteWriter(capacity: size)
        WireHeader(kind: .deposit, bankID: bankID, id: batchID).encode(into: &writer)
        writer.u64(merchant)
        writer.u32(UInt32(claims.count))
        writer.zeros(4)
        for claim in claims {
            switch claim {
            case .chain(let payment): payment.encode(into: &writer)
            case .order(let order): writer.append(order.bytes)
            }
        }
        writer.appendMAC(merchantMAC, label: .deposit)
        // Just built from valid claims: it decodes.
        return try! Deposit(decoding: writer.bytes)
    }

    public func encoded() -> [UInt8] { bytes }

    /// `tag` under MACKey(mac(K_M)) of the merchant named in the Deposit, constant-time.
    public func hasValidTag(merchantMAC: MACKey) -> Bool {
        Self.hasValidTag(bytes, merchantMAC: merchantMAC)
    }

    /// The merchant field (offset 16) of Deposit bytes not yet decoded, nil
    /// if they are shorter: §9 has the bank derive K_M from it and check the
    /// tag before it looks at the layout.
    public static func merchant(in bytes: [UInt8]) -> UInt64? {
        guard bytes.count >= 24 else { return nil }
        return bytes.withUnsafeBytes { ByteReader($0).u64(at: 16) }
    }

    /// The tag check on bytes not yet decoded: the last 16 bytes against
    /// MAC128(mac(K_M), "MPD1", everything before them). False if shorter
    /// than an empty Deposit.
    public static func hasValidTag(_ bytes: [UInt8], merchantMAC: MACKey) -> Bool {
        guard bytes.count >= minimumByteCount else { return false }
        let macLength = bytes.count - tagByteCount
        return bytes.withUnsafeBytes { buffer in
            let tag: Bytes16 = ByteReader(buffer).fixed(at: macLength)
            return merchantMAC.verify(label: .deposit, UnsafeRawBufferPointer(rebasing: buffer[..<macLength]), tag: tag)
        }
    }

    /// First 16 bytes of SHA-256 of the whole Deposit: what its Receipt carries.
    public var digest: Bytes16 { Self.digest(of: bytes) }

    /// The digest of Deposit bytes, decoded or not (a refused resend still has one).
    public static func digest(of bytes: [UInt8]) -> Bytes16 {
        Engine.sha256(bytes).withUnsafeBytes { Bytes16(copying: $0) }
    }

    public static func == (lhs: Deposit, rhs: Deposit) -> Bool { lhs.bytes == rhs.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }
}
