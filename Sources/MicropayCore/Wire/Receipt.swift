/// The bank's answer to a Deposit (PROTOCOL.md §9, kind 0x31): header (id =
/// batch id) · merchant · count · zero · credited total · deposit digest ·
/// one result code per claim, zero-padded to a multiple of 8 · tag under
/// mac(K_M). The bytes are kept: the tag covers them, and a resent Deposit
/// gets the stored Receipt back byte for byte.
public struct Receipt: Sendable, Equatable, Hashable {
    static let zeroOffset = 28
    static let codesOffset = 56
    static let tagByteCount = 16
    /// A Receipt with no codes.
    public static let minimumByteCount = codesOffset + tagByteCount

    public let bankID: UInt32
    public let batchID: UInt64
    public let merchant: UInt64
    /// What the merchant was credited for this batch.
    public let credited: UInt64
    /// First 16 bytes of SHA-256 of the Deposit answered.
    public let depositDigest: Bytes16
    /// One verdict per claim, in the Deposit's order.
    public let codes: [Verdict]
    public let tag: Bytes16
    /// The wire bytes.
    public let bytes: [UInt8]

    /// The codes area: `count` rounded up to a multiple of 8.
    static func paddedCount(_ count: Int) -> Int { (count + 7) & ~7 }

    /// Checks, after the kind: the length `count` implies (cut before
    /// `count`: the length of an empty Receipt); version, suite, flags; the
    /// zero field; each code (> 12 is `.invalidField`); the padding.
    public init(decoding buffer: UnsafeRawBufferPointer) throws(MicropayError) {
        let header = try WireHeader.decode(buffer, as: .receipt) { reader throws(MicropayError) in
            guard reader.count >= Self.zeroOffset else { return Self.minimumByteCount }
            return Self.codesOffset + Self.paddedCount(Int(reader.u32(at: 24))) + Self.tagByteCount
        }
        let reader = ByteReader(buffer)
        if let offset = reader.firstNonZero(Self.zeroOffset, count: 4) { throw .nonZeroField(.receipt, offset: offset) }
        let count = Int(reader.u32(at: 24))
        var codes: [Verdict] = []
        codes.reserveCapacity(count)
        for i in 0..<count {
            let offset = Self.codesOffset + i
            let code = reader.u8(at: offset)
            guard let verdict = Verdict(rawValue: code) else {
                throw .invalidField(.receipt, field: "code \(i)", reason: "\(code) at offset \(offset) is not a result code")
            }
            codes.append(verdict)
        }
        let padding = Self.paddedCount(count) - count
        if let offset = reader.firstNonZero(Self.codesOffset + count, count: padding) {
            throw .nonZeroField(.receipt, offset: offset)
        }
        bankID = header.bankID
        batchID = header.id
        merchant = reader.u64(at: 16)
        credited = reader.u64(at: 32)
        depositDigest = reader.fixed(at: 40)
        self.codes = codes
        tag = reader.fixed(at: buffer.count - Self.tagByteCount)
        bytes = Array(buffer)
    }

    public init(decoding bytes: [UInt8]) throws(MicropayError) {
        self = try bytes.withDecoding { buffer throws(MicropayError) in try Self(decoding: buffer) }
    }

    /// The bank's receipt, tagged under `merchantMAC` = MACKey(mac(K_M)).
    public static func make(
        bankID: UInt32, batchID: UInt64, merchant: UInt64, credited: UInt64, depositDigest: Bytes16,
        codes: [Verdict], merchantMAC: MACKey
    ) -> Receipt {
        precondition(codes.count <= Int(UInt32.max), "a Receipt holds at most 2^32 - 1 codes")
        let padded = paddedCount(codes.count)
        var writer = ByteWriter(capacity: codesOffset + padded + tagByteCount)
        WireHeader(kind: .receipt, bankID: bankID, id: batchID).encode(into: &writer)
        writer.u64(merchant)
        writer.u32(UInt32(codes.count))
        writer.zeros(4)
        writer.u64(credited)
        writer.append(depositDigest)
        for code in codes { writer.u8(code.rawValue) }
        writer.zeros(padded - codes.count)
        writer.appendMAC(merchantMAC, label: .receipt)
        // Just built: it decodes.
        return try! Receipt(decoding: writer.bytes)
    }

    /// The answer to `deposit`, carrying its digest.
    public static func make(
        answering deposit: Deposit, codes: [Verdict], credited: UInt64, merchantMAC: MACKey
    ) -> Receipt {
        make(bankID: deposit.bankID, batchID: deposit.batchID, merchant: deposit.merchant, credited: credited,
             depositDigest: deposit.digest, codes: codes, merchantMAC: merchantMAC)
    }

    public func encoded() -> [UInt8] { bytes }

    /// The merchant's check: `tag` under MACKey(mac(K_M)), constant-time.
    public func hasValidTag(merchantMAC: MACKey) -> Bool {
        let macLength = bytes.count - Self.tagByteCount
        return bytes.withUnsafeBytes {
            merchantMAC.verify(label: .receipt, UnsafeRawBufferPointer(rebasing: $0[..<macLength]), tag: tag)
        }
    }

    public static func == (lhs: Receipt, rhs: Receipt) -> Bool { lhs.bytes == rhs.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }
}
