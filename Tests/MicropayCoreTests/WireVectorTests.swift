import MicropayCore
import Testing

private let v = Vectors.v1
private let k = VectorKeys.shared

private func hex(_ key: SecretKey) -> String { key.hexExposingSecret }

@Suite("Known answers: keys and chains")
struct KeyVectorTests {
    @Test func accountKeys() {
        #expect(hex(k.customerKey) == v.keys.K_C.bytes.hexString)
        let derivedC = KeyDerivation.accountKey(master: k.master, role: .customer, bankID: k.bankID, account: k.customer)
        let derivedM = KeyDerivation.accountKey(master: k.master, role: .merchant, bankID: k.bankID, account: k.merchant)
        #expect(hex(derivedC) == v.keys.K_C.bytes.hexString)
        #expect(hex(derivedM) == v.keys.K_M.bytes.hexString)
    }

    @Test("K_CM of every session", arguments: v.keys.sessions.map(\.serial))
    func sessionKey(serial: UInt64) throws {
        let expected = try #require(v.keys.sessions.first { $0.serial == serial })
        let derived = KeyDerivation.sessionKey(master: k.master, bankID: k.bankID, serial: serial)
        #expect(hex(derived) == expected.K_CM.bytes.hexString)
    }

    @Test func subkeys() {
        #expect(hex(k.customerKey.encryptionSubkey) == v.subkeys.enc_K_C.bytes.hexString)
        #expect(hex(k.customerKey.macSubkey) == v.subkeys.mac_K_C.bytes.hexString)
        #expect(hex(k.merchantKey.encryptionSubkey) == v.subkeys.enc_K_M.bytes.hexString)
        #expect(hex(k.merchantKey.macSubkey) == v.subkeys.mac_K_M.bytes.hexString)
        #expect(hex(k.session43.encryptionSubkey) == v.subkeys.enc_K_CM_43.bytes.hexString)
        #expect(hex(k.session43.macSubkey) == v.subkeys.mac_K_CM_43.bytes.hexString)
    }

    @Test func chainSeedStepsAndRoot() throws {
        let chainID: Bytes12 = try v.chain.chain_id.fixed()
        let words: [Bytes32] = try v.chain.words.map { try $0.fixed() }
        let n = Int(v.chain.chain_len)
        #expect(words.count == n + 1)
        let seed = HashChain.seed(walletSecret: try v.chain.wallet_secret.key(), chainID: chainID)
        #expect(seed == words[n])
        for i in stride(from: n, through: 1, by: -1) {
            #expect(HashChain.step(chainID: chainID, index: UInt32(i), word: words[i]) == words[i - 1], "step \(i)")
        }
        #expect(HashChain.walk(chainID: chainID, from: UInt32(n), word: seed, to: 0) == words[0])
    }

    @Test func stepInput() throws {
        let chainID: Bytes12 = try v.chain.chain_id.fixed()
        let n = v.chain.chain_len
        var input = Array("MPC1".utf8) + chainID.bytes
        input += [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)]
        input += v.chain.words[Int(n)].bytes
        #expect(input == v.chain.step_input_example.bytes)
        #expect(input.count == 52)
        #expect(Engine.sha256(input).bytes == v.chain.words[Int(n) - 1].bytes)
    }
}

@Suite("Known answers: buying a ticket")
struct IssueVectorTests {
    let issue = v.issue_chain

    func chainTicketBody() throws -> TicketBody {
        TicketBody(
            customer: k.customer, limit: issue.limit, unit: issue.unit, chainLength: v.chain.chain_len,
            chainID: try v.chain.chain_id.fixed(), issued: issue.issued, expires: issue.expires,
            root: try v.chain.words[0].fixed(), sessionKey: k.session42)
    }

    @Test func request() throws {
        let request = TicketRequest.make(
            bankID: k.bankID, customer: k.customer, merchant: k.merchant, limit: issue.limit, unit: issue.unit,
            chainLength: v.chain.chain_len, lifetime: issue.lifetime, root: try v.chain.words[0].fixed(),
            chainID: try v.chain.chain_id.fixed(), requestID: try issue.request_id.fixed(), customerMAC: k.customerMAC)
        #expect(request.encoded() == issue.request.bytes)
        #expect(request.hasValidTag(customerMAC: k.customerMAC))
        #expect(!request.hasValidTag(customerMAC: k.merchantMAC))

        let decoded = try TicketRequest(decoding: issue.request.bytes)
        #expect(decoded == request)
        #expect(decoded.bankID == k.bankID && decoded.customer == k.customer && decoded.merchant == k.merchant)
        #expect(decoded.limit == 4000 && decoded.unit == 250 && decoded.chainLength == 16 && decoded.lifetime == 86400)
        #expect(decoded.root.bytes == v.chain.words[0].bytes)
        #expect(decoded.requestID.bytes == issue.request_id.bytes)
        #expect(decoded.hasValidTag(customerMAC: k.customerMAC))
        #expect(issue.expires == issue.issued + UInt64(issue.lifetime))
    }

    @Test func chainTicket() throws {
        let body = try chainTicketBody()
        #expect(body.encoded() == issue.ticket_body.bytes)
        #expect(try TicketBody(decoding: issue.ticket_body.bytes) == body)

        let ticket = Ticket.seal(
            body: body, bankID: k.bankID, serial: issue.serial, merchant: k.merchant,
            merchantKey: k.merchantKey, nonce: try issue.ticket_nonce.fixed())
        #expect(ticket.encoded() == issue.ticket.bytes)

        let decoded = try Ticket(decoding: issue.ticket.bytes)
        #expect(decoded == ticket)
        #expect(decoded.bankID == k.bankID && decoded.serial == 42 && decoded.merchant == k.merchant)
        #expect(decoded.nonce.bytes == issue.ticket_nonce.bytes)
        let opened = try decoded.open(merchantKey: k.merchantKey)
        #expect(opened == body)
        #expect(opened.encoded() == issue.ticket_body.bytes)
        #expect(try decoded.open(encryptionKey: k.merchantKey.encryptionSubkey) == body)
        #expect(throws: MicropayError.authenticationFailed(.ticket)) { try decoded.open(merchantKey: k.customerKey) }
    }

    @Test func orderTicket() throws {
        let order = v.issue_order
        let body = TicketBody(
            customer: k.customer, limit: order.limit, unit: 0, chainLength: 0, chainID: Bytes12(),
            issued: issue.issued, expires: issue.expires, root: Bytes32(), sessionKey: k.session43)
        #expect(body.encoded() == order.ticket_body.bytes)
        let ticket = Ticket.seal(
            body: body, bankID: k.bankID, serial: order.serial, merchant: k.merchant,
            merchantKey: k.merchantKey, nonce: try order.ticket_nonce.fixed())
        #expect(ticket.encoded() == order.ticket.bytes)
        #expect(try Ticket(decoding: order.ticket.bytes).open(merchantKey: k.merchantKey) == body)
    }

    @Test func envelope() throws {
        let body = EnvelopeBody(
            merchant: k.merchant, limit: issue.limit, unit: issue.unit, chainLength: v.chain.chain_len,
            chainID: try v.chain.chain_id.fixed(), issued: issue.issued, expires: issue.expires,
            sessionKey: k.session42, requestID: try issue.request_id.fixed())
        #expect(body.encoded() == issue.envelope_body.bytes)
        #expect(try EnvelopeBody(decoding: issue.envelope_body.bytes) == body)

        let envelope = Envelope.seal(
            body: body, bankID: k.bankID, serial: issue.serial, customer: k.customer,
            customerKey: k.customerKey, nonce: try issue.envelope_nonce.fixed())
        #expect(envelope.encoded() == issue.envelope.bytes)

        let decoded = try Envelope(decoding: issue.envelope.bytes)
        #expect(decoded == envelope)
        #expect(decoded.serial == 42 && decoded.customer == k.customer && decoded.bankID == k.bankID)
        let opened = try decoded.open(customerKey: k.customerKey)
        #expect(opened == body)
        #expect(hex(opened.sessionKey) == v.keys.sessions.first { $0.serial == 42 }!.K_CM.bytes.hexString)
        #expect(throws: MicropayError.authenticationFailed(.envelope)) { try decoded.open(customerKey: k.merchantKey) }
    }
}

@Suite("Known answers: payments")
struct PaymentVectorTests {
    @Test("chain payments", arguments: v.chain_payments.map(\.index))
    func chainPayment(index: UInt32) throws {
        let vector = try #require(v.chain_payments.first { $0.index == index })
        let payment = ChainPayment(bankID: k.bankID, serial: v.issue_chain.serial, index: index,
                                   word: try v.chain.words[Int(index)].fixed())
        #expect(payment.encoded() == vector.bytes.bytes)
        #expect(try ChainPayment(decoding: vector.bytes.bytes) == payment)
    }

    @Test("payment orders", arguments: v.orders.map(\.seq))
    func order(seq: UInt32) throws {
        let vector = try #require(v.orders.first { $0.seq == seq })
        let order = PaymentOrder.make(
            bankID: k.bankID, serial: v.issue_order.serial, seq: seq, cumulative: vector.cumulative,
            item: try vector.item.fixed(), customerMAC: k.customerMAC, sessionMAC: k.session43MAC)
        #expect(order.encoded() == vector.bytes.bytes)
        let decoded = try PaymentOrder(decoding: vector.bytes.bytes)
        #expect(decoded == order)
        #expect(decoded.seq == seq && decoded.cumulative == vector.cumulative && decoded.serial == 43)
        #expect(decoded.item.bytes == vector.item.bytes)
        #expect(decoded.hasValidTag(sessionMAC: k.session43MAC))
        #expect(decoded.hasValidBankTag(customerMAC: k.customerMAC))
        // The merchant's key can make neither tag.
        #expect(!decoded.hasValidBankTag(customerMAC: k.session43MAC))
        #expect(!decoded.hasValidTag(sessionMAC: k.customerMAC))
    }

    @Test func goodsOrder() throws {
        let decoded = try PaymentOrder(decoding: v.goods_order.bytes.bytes)
        #expect(decoded.item.bytes == v.goods.item.bytes)
        #expect(decoded.serial == v.goods.serial)
        #expect(decoded.seq == 8 && decoded.cumulative == 999_000)
        let rebuilt = PaymentOrder.make(
            bankID: k.bankID, serial: v.goods.serial, seq: decoded.seq, cumulative: decoded.cumulative,
            item: try v.goods.item.fixed(), customerMAC: k.customerMAC, sessionMAC: k.session43MAC)
        #expect(rebuilt.encoded() == v.goods_order.bytes.bytes)
    }
}

@Suite("Known answers: information goods")
struct GoodsVectorTests {
    let goods = v.goods

    func seal(_ content: [UInt8]) throws -> GoodsStream {
        try GoodsStream.seal(
            bankID: k.bankID, itemNumber: goods.item_number, content: content, goodsKey: try goods.goods_key.key(),
            itemNonce: try goods.item_nonce.fixed(), chunk: goods.chunk)
    }

    @Test func streamKey() throws {
        let key = GoodsStream.streamKey(goodsKey: try goods.goods_key.key(), itemNonce: try goods.item_nonce.fixed())
        #expect(hex(key) == goods.stream_key.bytes.hexString)
    }

    /// The three streams of the vectors: the content, none of it, and its
    /// first 32 bytes (a whole number of chunks).
    @Test("streams", arguments: [("stream", 40), ("empty_content_stream", 0), ("exact_multiple_stream", 32)])
    func stream(name: String, length: Int) throws {
        let expected = switch name {
        case "stream": goods.stream.bytes
        case "empty_content_stream": goods.empty_content_stream.bytes
        default: goods.exact_multiple_stream.bytes
        }
        let content = Array(goods.content.bytes.prefix(length))
        #expect(content.count == length)
        let stream = try seal(content)
        #expect(stream.encoded() == expected)
        #expect(stream.total == UInt64(length))
        #expect(stream.chunkCount == GoodsStream.chunkCount(total: UInt64(length), chunk: goods.chunk))
        #expect(expected.count == 48 + length + 16 * Int(stream.chunkCount))

        let decoded = try GoodsStream(decoding: expected)
        #expect(decoded == stream)
        #expect(decoded.itemNumber == goods.item_number && decoded.chunk == goods.chunk)
        #expect(decoded.item == stream.item)
        #expect(decoded.item.bytes == Array(Engine.sha256(expected).bytes.prefix(16)))
        #expect(try decoded.open(streamKey: try goods.stream_key.key()) == content)
        #expect(try decoded.open(streamKey: decoded.streamKey(goodsKey: try goods.goods_key.key())) == content)
        #expect(throws: MicropayError.authenticationFailed(.goodsStream)) {
            try decoded.open(streamKey: try goods.goods_key.key())
        }
    }

    @Test func item() throws {
        let stream = try GoodsStream(decoding: goods.stream.bytes)
        #expect(stream.item.bytes == goods.item.bytes)
    }

    @Test func keyEnvelope() throws {
        let streamKey = try goods.stream_key.key()
        let envelope = KeyEnvelope.seal(
            streamKey: streamKey, bankID: k.bankID, serial: goods.serial, item: try goods.item.fixed(),
            sessionKey: k.session43, nonce: try goods.key_envelope_nonce.fixed())
        #expect(envelope.encoded() == goods.key_envelope.bytes)

        let decoded = try KeyEnvelope(decoding: goods.key_envelope.bytes)
        #expect(decoded == envelope)
        #expect(decoded.item.bytes == goods.item.bytes && decoded.serial == goods.serial)
        let opened = try decoded.open(sessionKey: k.session43)
        #expect(opened == streamKey)
        #expect(throws: MicropayError.authenticationFailed(.keyEnvelope)) { try decoded.open(sessionKey: k.session42) }
        // The key it carries opens the stream whose item it names.
        let stream = try GoodsStream(decoding: goods.stream.bytes)
        #expect(stream.item == decoded.item)
        #expect(try stream.open(streamKey: opened) == goods.content.bytes)
    }
}

@Suite("Known answers: settling")
struct SettleVectorTests {
    let settle = v.settle

    @Test func deposit() throws {
        let deposit = try Deposit(decoding: settle.deposit.bytes)
        #expect(deposit.encoded() == settle.deposit.bytes)
        #expect(deposit.bankID == k.bankID && deposit.batchID == settle.batch_id && deposit.merchant == k.merchant)
        #expect(deposit.hasValidTag(merchantMAC: k.merchantMAC))
        #expect(!deposit.hasValidTag(merchantMAC: k.customerMAC))
        // §9's order: the merchant and the tag before the layout.
        #expect(Deposit.merchant(in: settle.deposit.bytes) == k.merchant)
        #expect(Deposit.hasValidTag(settle.deposit.bytes, merchantMAC: k.merchantMAC))
        #expect(!Deposit.hasValidTag(Array(settle.deposit.bytes.dropLast()), merchantMAC: k.merchantMAC))
        #expect(!Deposit.hasValidTag(Array(settle.deposit.bytes.prefix(47)), merchantMAC: k.merchantMAC))
        #expect(Deposit.merchant(in: Array(settle.deposit.bytes.prefix(23))) == nil)

        let chain5 = try ChainPayment(decoding: v.chain_payments.first { $0.index == 5 }!.bytes.bytes)
        let order2 = try PaymentOrder(decoding: v.orders.first { $0.seq == 2 }!.bytes.bytes)
        #expect(deposit.claims == [.chain(chain5), .order(order2)])
        #expect(deposit.claims.map(\.kind) == [.chainPayment, .paymentOrder])
        #expect(deposit.claims.map(\.serial) == [42, 43])

        let rebuilt = Deposit.make(
            bankID: k.bankID, batchID: settle.batch_id, merchant: k.merchant, claims: deposit.claims,
            merchantMAC: k.merchantMAC)
        #expect(rebuilt.encoded() == settle.deposit.bytes)
    }

    @Test func receipt() throws {
        let deposit = try Deposit(decoding: settle.deposit.bytes)
        let receipt = try Receipt(decoding: settle.receipt.bytes)
        #expect(receipt.encoded() == settle.receipt.bytes)
        #expect(receipt.bankID == k.bankID && receipt.batchID == settle.batch_id && receipt.merchant == k.merchant)
        #expect(receipt.credited == settle.credited)
        #expect(receipt.codes == [.accepted, .accepted])
        #expect(receipt.codes.count == deposit.claims.count)
        #expect(receipt.depositDigest == deposit.digest)
        #expect(receipt.depositDigest.bytes == Array(Engine.sha256(settle.deposit.bytes).bytes.prefix(16)))
        #expect(receipt.hasValidTag(merchantMAC: k.merchantMAC))
        #expect(!receipt.hasValidTag(merchantMAC: k.customerMAC))

        let rebuilt = Receipt.make(answering: deposit, codes: receipt.codes, credited: settle.credited, merchantMAC: k.merchantMAC)
        #expect(rebuilt.encoded() == settle.receipt.bytes)
    }
}
