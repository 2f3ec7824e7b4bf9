import MicropayCore
import Testing

private let v = Vectors.v1
private let k = VectorKeys.shared

/// `bytes` with `body` applied: for making one precise fault in a good vector.
private func patched(_ bytes: [UInt8], _ body: (inout [UInt8]) -> Void) -> [UInt8] {
    var copy = bytes
    body(&copy)
    return copy
}

private func putU32(_ value: UInt32, at offset: Int, in bytes: inout [UInt8]) {
    for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32(i))) }
}

private func putU64(_ value: UInt64, at offset: Int, in bytes: inout [UInt8]) {
    for i in 0..<8 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64(i))) }
}

@Suite("Byte writer and reader")
struct ByteCodingTests {
    @Test func bigEndianLayout() {
        let header = WireHeader(kind: .deposit, bankID: 0x0102_0304, id: 0x1122_3344_5566_7788)
        #expect(header.encoded() == [0x30, 1, 1, 0, 1, 2, 3, 4, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88])
        let payment = ChainPayment(bankID: 7, serial: 42, index: 0xA0B0_C0D0, word: Bytes32(Array(0..<32))!)
        let bytes = payment.encoded()
        #expect(bytes.count == 52)
        #expect(Array(bytes[16..<20]) == [0xA0, 0xB0, 0xC0, 0xD0])
        #expect(Array(bytes[20...]) == Array(0..<32))
    }

    @Test("random values survive encode and decode", arguments: 0..<8)
    func roundTrips(seed: Int) throws {
        var rng = WireFuzzRNG(seed: UInt64(seed))
        let payment = ChainPayment(bankID: .random(in: 0...UInt32.max, using: &rng), serial: rng.next(),
                                   index: .random(in: 0...UInt32.max, using: &rng), word: Bytes32(rng.bytes(32))!)
        #expect(try ChainPayment(decoding: payment.encoded()) == payment)

        let header = WireHeader(kind: .receipt, bankID: .random(in: 0...UInt32.max, using: &rng), id: rng.next())
        let decoded = try header.encoded().withUnsafeBytes { buffer in
            try WireHeader(decoding: buffer, as: .receipt)
        }
        #expect(decoded == header)

        let order = PaymentOrder.make(
            bankID: header.bankID, serial: rng.next(), seq: .random(in: 0...UInt32.max, using: &rng), cumulative: rng.next(),
            item: Bytes16(rng.bytes(16))!, customerMAC: k.customerMAC, sessionMAC: k.session43MAC)
        let reread = try PaymentOrder(decoding: order.encoded())
        #expect(reread.seq == order.seq && reread.cumulative == order.cumulative && reread.item == order.item)
        #expect(reread.hasValidTag(sessionMAC: k.session43MAC) && reread.hasValidBankTag(customerMAC: k.customerMAC))
    }
}

@Suite("Header checks and their order")
struct WireHeaderTests {
    let payment = v.chain_payments[0].bytes.bytes

    @Test func headerFields() throws {
        #expect(throws: MicropayError.unsupportedVersion(.chainPayment, 2)) {
            try ChainPayment(decoding: patched(payment) { $0[1] = 2 })
        }
        #expect(throws: MicropayError.unsupportedSuite(.chainPayment, 0)) {
            try ChainPayment(decoding: patched(payment) { $0[2] = 0 })
        }
        #expect(throws: MicropayError.nonZeroFlags(.chainPayment, 0x80)) {
            try ChainPayment(decoding: patched(payment) { $0[3] = 0x80 })
        }
    }

    @Test func orderOfChecks() {
        // Kind before length: a Ticket handed to the ChainPayment decoder is named.
        #expect(throws: MicropayError.unexpectedKind(expected: .chainPayment, found: .ticket)) {
            try ChainPayment(decoding: v.issue_chain.ticket.bytes)
        }
        #expect(throws: MicropayError.unknownKind(0x99)) { try Ticket(decoding: [0x99]) }
        #expect(throws: MicropayError.empty) { try Receipt(decoding: []) }
        // Length before version, suite and flags.
        #expect(throws: MicropayError.wrongLength(.chainPayment, expected: 52, actual: 51)) {
            try ChainPayment(decoding: Array(patched(payment) { $0[1] = 9; $0[3] = 1 }.dropLast()))
        }
        // Version before suite before flags.
        #expect(throws: MicropayError.unsupportedVersion(.chainPayment, 0)) {
            try ChainPayment(decoding: patched(payment) { $0[1] = 0; $0[2] = 0; $0[3] = 1 })
        }
        #expect(throws: MicropayError.unsupportedSuite(.chainPayment, 2)) {
            try ChainPayment(decoding: patched(payment) { $0[2] = 2; $0[3] = 1 })
        }
    }

    @Test func headerAlone() throws {
        let header = try payment.withUnsafeBytes { buffer in try WireHeader(decoding: buffer, as: .chainPayment) }
        #expect(header == WireHeader(kind: .chainPayment, bankID: 7, id: 42))
        #expect(try WireHeader.kind(of: v.settle.deposit.bytes) == .deposit)
        #expect(throws: MicropayError.unknownKind(0)) { try WireHeader.kind(of: [0, 1, 1, 0]) }
        // A variable-length kind needs only its 16 header bytes here.
        let deposit = v.settle.deposit.bytes
        #expect(try deposit.withUnsafeBytes { try WireHeader(decoding: $0, as: .deposit) }.id == 9001)
        #expect(throws: MicropayError.wrongLength(.deposit, expected: 16, actual: 10)) {
            try Array(deposit.prefix(10)).withUnsafeBytes { try WireHeader(decoding: $0, as: .deposit) }
        }
    }
}

@Suite("Field checks of each object")
struct WireFieldTests {
    @Test func ticketRequestZeroFieldAndModes() throws {
        let request = v.issue_chain.request.bytes
        for offset in 92..<96 {
            #expect(throws: MicropayError.nonZeroField(.ticketRequest, offset: offset)) {
                try TicketRequest(decoding: patched(request) { $0[offset] = 1 })
            }
        }
        // Mode rules are the bank's: a request mixing the modes still decodes (and its tag is checked).
        let mixed = TicketRequest.make(
            bankID: 7, customer: 1001, merchant: 2002, limit: 5, unit: 0, chainLength: 16, lifetime: 0,
            requestID: Bytes16(), customerMAC: k.customerMAC)
        let decoded = try TicketRequest(decoding: mixed.encoded())
        #expect(decoded.chainLength == 16 && decoded.unit == 0 && decoded.root.isZero && decoded.chainID.isZero)
        #expect(decoded.hasValidTag(customerMAC: k.customerMAC))
    }

    @Test func bodiesHaveExactLengths() {
        let ticketBody = v.issue_chain.ticket_body.bytes
        #expect(throws: MicropayError.wrongLength(.ticket, expected: 120, actual: 119)) {
            try TicketBody(decoding: Array(ticketBody.dropLast()))
        }
        #expect(throws: MicropayError.wrongLength(.envelope, expected: 104, actual: 0)) {
            try EnvelopeBody(decoding: [])
        }
    }

    @Test func depositLayout() throws {
        let deposit = v.settle.deposit.bytes
        for offset in 28..<32 {
            #expect(throws: MicropayError.nonZeroField(.deposit, offset: offset)) {
                try Deposit(decoding: patched(deposit) { $0[offset] = 0xff })
            }
        }
        // A claim of a kind that is no claim: a Ticket's kind, then an unknown byte.
        #expect {
            try Deposit(decoding: patched(deposit) { $0[84] = WireKind.ticket.rawValue })
        } throws: { error in
            guard case .invalidField(.deposit, let field, _) = error as? MicropayError else { return false }
            return field == "claim 1 kind"
        }
        // A claim's own header is checked by its decoder.
        #expect(throws: MicropayError.unsupportedVersion(.chainPayment, 3)) {
            try Deposit(decoding: patched(deposit) { $0[33] = 3 })
        }
        #expect(throws: MicropayError.nonZeroFlags(.paymentOrder, 1)) {
            try Deposit(decoding: patched(deposit) { $0[87] = 1 })
        }
        // count must match the claims present, either way.
        #expect(throws: MicropayError.wrongLength(.deposit, expected: 160 + 52 + 16, actual: 176)) {
            try Deposit(decoding: patched(deposit) { putU32(3, at: 24, in: &$0) })
        }
        #expect(throws: MicropayError.wrongLength(.deposit, expected: 100, actual: 176)) {
            try Deposit(decoding: patched(deposit) { putU32(1, at: 24, in: &$0) })
        }
        // A huge count on a short Deposit is a length error, not a long walk.
        #expect(throws: MicropayError.wrongLength(.deposit, expected: 160 + (Int(UInt32.max) - 2) * 52 + 16, actual: 176)) {
            try Deposit(decoding: patched(deposit) { putU32(.max, at: 24, in: &$0) })
        }
        // A Deposit with no claims.
        let empty = Deposit.make(bankID: 7, batchID: 1, merchant: 2002, claims: [], merchantMAC: k.merchantMAC)
        #expect(empty.bytes.count == 48)
        let reread = try Deposit(decoding: empty.bytes)
        #expect(reread.claims.isEmpty && reread.hasValidTag(merchantMAC: k.merchantMAC))
    }

    @Test func receiptLayout() throws {
        let receipt = v.settle.receipt.bytes
        #expect(throws: MicropayError.nonZeroField(.receipt, offset: 29)) {
            try Receipt(decoding: patched(receipt) { $0[29] = 1 })
        }
        #expect {
            try Receipt(decoding: patched(receipt) { $0[57] = 13 })
        } throws: { error in
            guard case .invalidField(.receipt, let field, _) = error as? MicropayError else { return false }
            return field == "code 1"
        }
        for offset in 58..<64 {
            #expect(throws: MicropayError.nonZeroField(.receipt, offset: offset)) {
                try Receipt(decoding: patched(receipt) { $0[offset] = 1 })
            }
        }
        // Every code 0...12 is a verdict, and padding follows the count.
        for count in [0, 1, 7, 8, 9, 13] {
            let codes = (0..<count).map { Verdict(rawValue: UInt8($0 % 13))! }
            let made = Receipt.make(bankID: 7, batchID: 5, merchant: 2002, credited: 12, depositDigest: Bytes16(),
                                    codes: codes, merchantMAC: k.merchantMAC)
            #expect(made.bytes.count == 56 + (count + 7) / 8 * 8 + 16)
            let reread = try Receipt(decoding: made.bytes)
            #expect(reread.codes == codes && reread.credited == 12 && reread.hasValidTag(merchantMAC: k.merchantMAC))
        }
    }

    @Test func goodsStreamLayout() throws {
        let stream = v.goods.stream.bytes
        #expect {
            try GoodsStream(decoding: patched(stream) { putU32(0, at: 32, in: &$0) })
        } throws: { error in
            guard case .invalidField(.goodsStream, "chunk", _) = error as? MicropayError else { return false }
            return true
        }
        for offset in 44..<48 {
            #expect(throws: MicropayError.nonZeroField(.goodsStream, offset: offset)) {
                try GoodsStream(decoding: patched(stream) { $0[offset] = 1 })
            }
        }
        // A total whose stream length overflows 64 bits, for several chunk sizes.
        for chunk: UInt32 in [1, 16, .max] {
            #expect {
                try GoodsStream(decoding: patched(stream) { putU32(chunk, at: 32, in: &$0); putU64(.max, at: 36, in: &$0) })
            } throws: { error in
                guard case .invalidField(.goodsStream, "total", _) = error as? MicropayError else { return false }
                return true
            }
        }
        // Large but representable: a length error that names the implied length.
        #expect(throws: MicropayError.wrongLength(.goodsStream, expected: 48 + (1 << 40) + 16 * (1 << 36), actual: 136)) {
            try GoodsStream(decoding: patched(stream) { putU64(1 << 40, at: 36, in: &$0) })
        }
        // The other chunk sizes of the same content make other, consistent streams.
        let content = v.goods.content.bytes
        let goodsKey = try v.goods.goods_key.key()
        for chunk: UInt32 in [1, 7, 39, 40, 41, .max] {
            let sealed = try GoodsStream.seal(bankID: 7, itemNumber: 1, content: content, goodsKey: goodsKey, chunk: chunk)
            #expect(sealed.bytes.count == 48 + content.count + 16 * Int(sealed.chunkCount))
            let reread = try GoodsStream(decoding: sealed.bytes)
            #expect(try reread.open(streamKey: reread.streamKey(goodsKey: goodsKey)) == content)
        }
    }

    /// Chunks can be neither reordered, truncated nor re-headed (§8).
    @Test func goodsStreamTampering() throws {
        let good = v.goods.stream.bytes
        let key = try v.goods.stream_key.key()
        // Chunks 0 and 1 are 32 bytes each (16 content + 16 tag): swap them.
        let swapped = patched(good) { bytes in
            let first = Array(bytes[48..<80])
            bytes.replaceSubrange(48..<80, with: bytes[80..<112])
            bytes.replaceSubrange(80..<112, with: first)
        }
        // The same header with the item number changed (a re-headed stream).
        let reheaded = patched(good) { $0[15] ^= 1 }
        // The last chunk dropped, with total shortened to match the layout.
        let truncated = patched(Array(good.prefix(112))) { putU64(32, at: 36, in: &$0) }
        for bytes in [swapped, reheaded, truncated] {
            let stream = try GoodsStream(decoding: bytes)
            #expect(throws: MicropayError.authenticationFailed(.goodsStream)) { try stream.open(streamKey: key) }
        }
    }

    @Test func sealedObjectsBindTheirClearFields() throws {
        // The Envelope's customer is associated data: change it and it no longer opens.
        let envelope = try Envelope(decoding: patched(v.issue_chain.envelope.bytes) { $0[23] ^= 1 })
        #expect(envelope.customer == k.customer ^ 1)
        #expect(throws: MicropayError.authenticationFailed(.envelope)) { try envelope.open(customerKey: k.customerKey) }
        // A KeyEnvelope's item likewise.
        let keyEnvelope = try KeyEnvelope(decoding: patched(v.goods.key_envelope.bytes) { $0[16] ^= 0x80 })
        #expect(throws: MicropayError.authenticationFailed(.keyEnvelope)) { try keyEnvelope.open(sessionKey: k.session43) }
        // Fresh nonces by default: two seals of one body differ, and both open.
        let body = try Ticket(decoding: v.issue_chain.ticket.bytes).open(merchantKey: k.merchantKey)
        let a = Ticket.seal(body: body, bankID: 7, serial: 42, merchant: 2002, merchantKey: k.merchantKey)
        let b = Ticket.seal(body: body, bankID: 7, serial: 42, merchant: 2002, merchantKey: k.merchantKey)
        #expect(a != b)
        #expect(try a.open(merchantKey: k.merchantKey) == body && b.open(merchantKey: k.merchantKey) == body)
    }
}
