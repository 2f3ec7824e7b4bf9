import Foundation
import MicropayCore
import MicropayMerchant
import Testing

enum V {
    static let now: UInt64 = Vectors.int(Vectors.object("batch")["now"])
    static var chainTicket: [UInt8] { Vectors.hex(Vectors.object("issue_chain")["ticket"]) }
    static var orderTicket: [UInt8] { Vectors.hex(Vectors.object("issue_order")["ticket"]) }
    static func chainPayment(index: UInt64) -> [UInt8] {
        let list = Vectors.root["chain_payments"] as! [[String: Any]]
        return Vectors.hex(list.first { Vectors.int($0["index"]) == index }!["bytes"])
    }
    static func order(seq: UInt64) -> [UInt8] {
        let list = Vectors.root["orders"] as! [[String: Any]]
        return Vectors.hex(list.first { Vectors.int($0["seq"]) == seq }!["bytes"])
    }
    /// K_CM of order ticket 43, from the vector's ticket body (offset 88).
    static var orderSessionKey: SecretKey {
        try! SecretKey(bytes: Array(Vectors.hex(Vectors.object("issue_order")["ticket_body"])[88..<120]))
    }
}

@Suite("Goods (§8): the vector stream and key envelope, sold only once paid")
struct GoodsTests {
    nonisolated(unsafe) static let goods = Vectors.object("goods")

    @Test("seal, sell and deliver: stream and KeyEnvelope equal the vectors byte for byte")
    func knownAnswer() throws {
        let g = Self.goods
        let random = ScriptedRandom(Vectors.hex(g["goods_key"]), Vectors.hex(g["item_nonce"]),
                                    [UInt8](repeating: 7, count: 24), Vectors.hex(g["key_envelope_nonce"]))
        let merchant = try makeVectorMerchant(store: MerchantStore(), random: random)
        let stream = try merchant.sealGoods(itemNumber: Vectors.int(g["item_number"]), content: Vectors.hex(g["content"]),
                                            chunk: UInt32(Vectors.int(g["chunk"])), price: 0)
        #expect(stream.bytes == Vectors.hex(g["stream"]))
        #expect(stream.item.bytes == Vectors.hex(g["item"]))

        #expect(try merchant.verify(V.orderTicket, now: V.now) == RecordOutcome(.accepted))
        #expect(try merchant.verify(V.order(seq: 1), now: V.now) == RecordOutcome(.accepted, credited: 1000))
        // The first order bought another item: no key yet.
        #expect(throws: MerchantError.notPurchased(serial: 43, item: stream.item)) {
            try merchant.keyEnvelope(serial: 43, item: stream.item)
        }
        let goodsOrder = Vectors.hex(Vectors.object("goods_order")["bytes"])
        let cumulative = try PaymentOrder(decoding: goodsOrder).cumulative
        let (outcome, envelope) = try merchant.purchase(goodsOrder, now: V.now)
        #expect(outcome == RecordOutcome(.accepted, credited: cumulative - 1000))
        let delivered = try #require(envelope)
        #expect(delivered.bytes == Vectors.hex(g["key_envelope"]))
        // The customer's side: K_s under K_CM of ticket 43 opens the stream.
        let streamKey = try delivered.open(sessionKey: V.orderSessionKey)
        #expect(streamKey.withUnsafeBytes { Array($0) } == Vectors.hex(g["stream_key"]))
        #expect(try stream.open(streamKey: streamKey) == Vectors.hex(g["content"]))
    }

    @Test("a retried buying order is duplicate, credits nothing, and gets the key again")
    func retriedPurchase() throws {
        let g = Self.goods
        let merchant = try makeVectorMerchant(store: MerchantStore())
        try merchant.registerGoods(try GoodsStream(decoding: Vectors.hex(g["stream"])),
                                   goodsKey: SecretKey(bytes: Vectors.hex(g["goods_key"])), price: 0)
        _ = try merchant.verify(V.orderTicket, now: V.now)
        let goodsOrder = Vectors.hex(Vectors.object("goods_order")["bytes"])
        let first = try merchant.purchase(goodsOrder, now: V.now)
        let again = try merchant.purchase(goodsOrder, now: V.now)
        #expect(first.0.verdict == .accepted)
        #expect(again.0 == RecordOutcome(.duplicate))
        let key = try #require(again.1).open(sessionKey: V.orderSessionKey)
        #expect(key.withUnsafeBytes { Array($0) } == Vectors.hex(g["stream_key"]))
    }

    @Test("no key without a registered item, a known ticket, or a good goods key; none for a rejected order")
    func refusals() throws {
        let g = Self.goods
        let merchant = try makeVectorMerchant(store: MerchantStore())
        let stream = try GoodsStream(decoding: Vectors.hex(g["stream"]))
        #expect(throws: MerchantError.goodsKeyDoesNotOpenStream) {
            try merchant.registerGoods(stream, goodsKey: SecretKey(bytes: [UInt8](repeating: 1, count: 32)), price: 0)
        }
        #expect(throws: MerchantError.unknownTicket(serial: 43)) { try merchant.keyEnvelope(serial: 43, item: stream.item) }
        _ = try merchant.verify(V.orderTicket, now: V.now)
        #expect(throws: MerchantError.unknownGoods(item: stream.item)) { try merchant.keyEnvelope(serial: 43, item: stream.item) }
        try merchant.registerGoods(stream, goodsKey: SecretKey(bytes: Vectors.hex(g["goods_key"])), price: 1_000_000)
        // Accepted, but it brings less than the price: not a purchase.
        let goodsOrder = Vectors.hex(Vectors.object("goods_order")["bytes"])
        let (outcome, envelope) = try merchant.purchase(goodsOrder, now: V.now)
        #expect(outcome.verdict == .accepted)
        #expect(envelope == nil)
        // A forged tag on the same order: badMAC, no key.
        var forged = goodsOrder
        forged[75] ^= 1
        let (rejected, none) = try merchant.purchase(forged, now: V.now)
        #expect(rejected == RecordOutcome(.badMAC))
        #expect(none == nil)
    }
}

@Suite("Settlement (§9) from the merchant's side")
struct SettlementTests {
    nonisolated(unsafe) static let settle = Vectors.object("settle")

    /// Tickets 42 and 43 with chain words 1, 2, 5 and orders 1, 2: what the vector Deposit claims.
    static func merchantBeforeSettle(_ store: MerchantStore) throws -> Merchant {
        let merchant = try makeVectorMerchant(store: store)
        for record in [V.chainTicket, V.orderTicket, V.chainPayment(index: 1), V.chainPayment(index: 2),
                       V.chainPayment(index: 5), V.order(seq: 1), V.order(seq: 2)] {
            #expect(try merchant.verify(record, now: V.now).verdict == .accepted)
        }
        return merchant
    }

    @Test("the Deposit of the best claim per serial equals the vector; its Receipt applies once")
    func depositAndReceipt() throws {
        let merchant = try Self.merchantBeforeSettle(MerchantStore())
        let deposit = try #require(try merchant.makeDeposit(batchID: Vectors.int(Self.settle["batch_id"])))
        #expect(deposit.bytes == Vectors.hex(Self.settle["deposit"]))
        #expect(try merchant.pendingDeposits() == [deposit])
        // Nothing new since: no second Deposit.
        #expect(try merchant.makeDeposit() == nil)

        let outcome = try merchant.applyReceipt(Vectors.hex(Self.settle["receipt"]))
        #expect(outcome.credited == Vectors.int(Self.settle["credited"]))
        #expect(outcome.expectedCredited == 5 * 250 + 2500)
        #expect(outcome.codes == [.accepted, .accepted])
        #expect(!outcome.alreadyApplied)
        #expect(try merchant.pendingDeposits().isEmpty)
        #expect(merchant.ticketState(serial: 42)?.settled == 5)
        #expect(merchant.ticketState(serial: 42)?.settledAmount == 1250)
        #expect(merchant.ticketState(serial: 43)?.settledAmount == 2500)
        #expect(try merchant.applyReceipt(Vectors.hex(Self.settle["receipt"])).alreadyApplied)

        // Word 16 arrives: the next Deposit claims it alone, with a fresh batch id.
        #expect(try merchant.verify(V.chainPayment(index: 16), now: V.now) == RecordOutcome(.accepted, credited: 11 * 250))
        let next = try #require(try merchant.makeDeposit())
        #expect(next.batchID == Vectors.int(Self.settle["batch_id"]) + 1)
        #expect(next.claims == [.chain(try ChainPayment(decoding: V.chainPayment(index: 16)))])
        #expect(throws: MerchantError.batchIDInUse(next.batchID)) { try merchant.makeDeposit(batchID: next.batchID) }
    }

    @Test("receipts that do not answer our Deposit are refused and change nothing")
    func badReceipts() throws {
        let merchant = try Self.merchantBeforeSettle(MerchantStore())
        let deposit = try #require(try merchant.makeDeposit(batchID: 9001))
        let mac = MACKey(macOf: Vectors.merchantKey)
        var tampered = Vectors.hex(Self.settle["receipt"])
        tampered[33] ^= 1
        #expect(throws: MerchantError.receiptTagInvalid) { try merchant.applyReceipt(tampered) }
        let stranger = Receipt.make(bankID: 7, batchID: 4242, merchant: 2002, credited: 0, depositDigest: deposit.digest,
                                    codes: [.accepted, .accepted], merchantMAC: mac)
        #expect(throws: MerchantError.unknownDeposit(batchID: 4242)) { try merchant.applyReceipt(stranger.bytes) }
        let wrongDigest = Receipt.make(bankID: 7, batchID: 9001, merchant: 2002, credited: 0, depositDigest: Bytes16(),
                                       codes: [.accepted, .accepted], merchantMAC: mac)
        #expect(throws: MerchantError.receiptDigestMismatch(batchID: 9001)) { try merchant.applyReceipt(wrongDigest.bytes) }
        let wrongCount = Receipt.make(answering: deposit, codes: [.accepted], credited: 0, merchantMAC: mac)
        #expect(throws: MerchantError.receiptCountMismatch(batchID: 9001, claims: 2, codes: 1)) {
            try merchant.applyReceipt(wrongCount.bytes)
        }
        #expect(throws: MerchantError.malformedReceipt(.empty)) { try merchant.applyReceipt([]) }
        #expect(try merchant.pendingDeposits() == [deposit])
        #expect(merchant.ticketState(serial: 42)?.settled == 0)

        // A partial answer: the replayed claim is recorded, the settled position only moves for the accepted one.
        let partial = Receipt.make(answering: deposit, codes: [.accepted, .replay], credited: 1250, merchantMAC: mac)
        let outcome = try merchant.applyReceipt(partial.bytes)
        #expect(outcome.expectedCredited == 1250)
        #expect(merchant.ticketState(serial: 43)?.settled == 0)
        let other = Receipt.make(answering: deposit, codes: [.accepted, .accepted], credited: 3750, merchantMAC: mac)
        #expect(throws: MerchantError.receiptConflict(batchID: 9001)) { try merchant.applyReceipt(other.bytes) }
    }

    @Test("pending deposits and claimed positions survive reopening")
    func persistence() throws {
        let path = TemporaryStorePath()
        defer { path.cleanUp() }
        let deposit: Deposit
        do {
            let merchant = try Self.merchantBeforeSettle(MerchantStore(path: path.path))
            deposit = try #require(try merchant.makeDeposit(batchID: 9001))
        }
        let reopened = try makeVectorMerchant(store: MerchantStore(path: path.path))
        #expect(try reopened.pendingDeposits() == [deposit])
        #expect(try reopened.makeDeposit() == nil)
        #expect(try reopened.applyReceipt(Vectors.hex(Self.settle["receipt"])).credited == 3750)
    }
}

@Suite("Retries and the store's identity")
struct RetryTests {
    @Test("a payment sent twice is duplicate and credits nothing — also after a restart",
          arguments: [[UInt8]](arrayLiteral: V.chainPayment(index: 2), V.order(seq: 2)))
    func sentTwice(payment: [UInt8]) throws {
        let path = TemporaryStorePath()
        defer { path.cleanUp() }
        let credited: UInt64
        do {
            let merchant = try makeVectorMerchant(store: MerchantStore(path: path.path))
            _ = try merchant.verify(V.chainTicket, now: V.now)
            _ = try merchant.verify(V.orderTicket, now: V.now)
            let first = try merchant.verify(payment, now: V.now)
            #expect(first.verdict == .accepted)
            #expect(first.credited > 0)
            #expect(try merchant.verify(payment, now: V.now) == RecordOutcome(.duplicate))
            credited = merchant.totalCredited
            #expect(credited == first.credited)
        }
        let reopened = try makeVectorMerchant(store: MerchantStore(path: path.path))
        #expect(try reopened.verify(payment, now: V.now) == RecordOutcome(.duplicate))
        #expect(reopened.totalCredited == credited)
        // After expiry a retry is expired, not duplicate (§11).
        let expires = Vectors.int(Vectors.object("issue_chain")["expires"])
        #expect(try reopened.verify(payment, now: expires + 1) == RecordOutcome(.expired))
    }

    @Test("a store refuses another merchant number or another K_M")
    func identity() throws {
        let path = TemporaryStorePath()
        defer { path.cleanUp() }
        _ = try makeVectorMerchant(store: MerchantStore(path: path.path))
        #expect(throws: MerchantError.storeBelongsToAnotherMerchant(bankID: 7, merchant: 2002)) {
            try Merchant(bankID: 7, merchant: 2003, merchantKey: Vectors.merchantKey, store: MerchantStore(path: path.path))
        }
        #expect(throws: MerchantError.wrongMerchantKey) {
            try Merchant(bankID: 7, merchant: 2002, merchantKey: SecretKey.random(), store: MerchantStore(path: path.path))
        }
    }
}
