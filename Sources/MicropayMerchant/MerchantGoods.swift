import Foundation
import GRDB
import MicropayCore

/// A registered goods item's public fields (its key stays wrapped in the store).
struct GoodsEntry {
    let item: Bytes16
    let itemNumber: UInt64
    let itemNonce: Bytes16
    /// The least credit an order carrying `item` must bring to buy it.
    let price: UInt64
}

extension Merchant {
    /// Encrypts `content` once as a GoodsStream (§8) under a fresh goods key
    /// and item nonce drawn from the random source, in that order, and
    /// registers the item. An order carrying the stream's `item` and crediting
    /// at least `price` buys it.
    public func sealGoods(itemNumber: UInt64, content: [UInt8], chunk: UInt32, price: UInt64) throws(MerchantError) -> GoodsStream {
        try checkUsable()
        guard chunk >= 1 else { throw .goods(.invalidField(.goodsStream, field: "chunk", reason: "must be at least 1")) }
        let goodsKey = random.secretKey()
        let itemNonce: Bytes16 = random.bytes()
        let stream: GoodsStream
        do {
            stream = try GoodsStream.seal(
                bankID: bankID, itemNumber: itemNumber, content: content, goodsKey: goodsKey,
                itemNonce: itemNonce, chunk: chunk)
        } catch { throw .goods(error) }
        try store(stream: stream, goodsKey: goodsKey, price: price)
        return stream
    }

    /// Registers a stream sealed elsewhere, after checking that `goodsKey` opens it.
    public func registerGoods(_ stream: GoodsStream, goodsKey: SecretKey, price: UInt64) throws(MerchantError) {
        try checkUsable()
        guard stream.bankID == bankID else { throw .goods(.invalidField(.goodsStream, field: "bank_id", reason: "another bank")) }
        guard (try? stream.open(streamKey: stream.streamKey(goodsKey: goodsKey))) != nil else {
            throw .goodsKeyDoesNotOpenStream
        }
        try store(stream: stream, goodsKey: goodsKey, price: price)
    }

    private func store(stream: GoodsStream, goodsKey: SecretKey, price: UInt64) throws(MerchantError) {
        let entry = GoodsEntry(item: stream.item, itemNumber: stream.itemNumber, itemNonce: stream.itemNonce, price: price)
        let wrapNonce: Bytes24 = random.bytes()
        let ad = goodsAssociatedData(entry)
        let wrapped = goodsKey.withUnsafeBytes { k in
            ad.withUnsafeBytes { a in XChaCha20Poly1305.seal(k, associatedData: a, nonce: wrapNonce, key: storageKey) }
        }
        try store.write { db in
            try db.execute(sql: """
                INSERT OR REPLACE INTO goods (item, item_number, item_nonce, price, wrap_nonce, wrapped_key)
                VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [entry.item.data, i64(entry.itemNumber), entry.itemNonce.data, i64(price),
                                 wrapNonce.data, Data(wrapped)])
        }
        goods[entry.item] = entry
    }

    /// Binds a wrapped key to its item, so keys cannot be swapped between rows.
    private func goodsAssociatedData(_ entry: GoodsEntry) -> [UInt8] {
        Array("micropay goods key".utf8) + entry.item.bytes + withUnsafeBytes(of: entry.itemNumber.bigEndian) { Array($0) }
            + entry.itemNonce.bytes
    }

    /// Whether an accepted order on ticket `serial` bought `item`.
    public func hasPurchased(serial: UInt64, item: Bytes16) throws(MerchantError) -> Bool {
        try store.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM purchase WHERE bank_id = ? AND serial = ? AND item = ?",
                              arguments: [Int64(bankID), i64(serial), item.data]) ?? false
        }
    }

    /// The KeyEnvelope (§8.4) for `item` on ticket `serial`: K_s under
    /// enc(K_CM) with a fresh nonce, only if an accepted order on that ticket
    /// bought that item.
    public func keyEnvelope(serial: UInt64, item: Bytes16) throws(MerchantError) -> KeyEnvelope {
        try checkUsable()
        guard let ticket = tickets[serial] else { throw .unknownTicket(serial: serial) }
        guard let entry = goods[item] else { throw .unknownGoods(item: item) }
        guard try hasPurchased(serial: serial, item: item) else { throw .notPurchased(serial: serial, item: item) }
        let row = try store.read { db in
            try Row.fetchOne(db, sql: "SELECT wrap_nonce, wrapped_key FROM goods WHERE item = ?", arguments: [item.data])
        }
        guard let row, let wrapNonce = Bytes24(data: row["wrap_nonce"]) else { throw .unknownGoods(item: item) }
        let wrapped = Array(row["wrapped_key"] as Data)
        let ad = goodsAssociatedData(entry)
        let opened = wrapped.withUnsafeBytes { w in
            ad.withUnsafeBytes { a in
                Result { () throws(MicropayError) -> [UInt8] in
                    try XChaCha20Poly1305.open(w, associatedData: a, nonce: wrapNonce, key: storageKey, kind: .goodsStream)
                }
            }
        }
        let goodsKey: SecretKey
        do {
            var plain = try opened.get()
            defer { plain.withUnsafeMutableBytes { Engine.zero($0) } }
            goodsKey = try SecretKey(bytes: plain)
        } catch { throw .goods(error) }
        let streamKey = GoodsStream.streamKey(goodsKey: goodsKey, itemNonce: entry.itemNonce)
        return KeyEnvelope.seal(
            streamKey: streamKey, bankID: bankID, serial: serial, item: item,
            sessionKey: ticket.sessionKey, nonce: random.bytes())
    }

    /// Verifies an order (committed before anything is released) and, when
    /// it is accepted — or is the `duplicate` retry of one — and bought a
    /// registered item, returns that item's KeyEnvelope with it.
    public func purchase(_ order: [UInt8], now: UInt64) throws(MerchantError) -> (RecordOutcome, KeyEnvelope?) {
        try checkUsable()
        let outcome = try verify(order, now: now)
        guard outcome.verdict == .accepted || outcome.verdict == .duplicate,
              order.count == PaymentOrder.byteCount, order[0] == WireKind.paymentOrder.rawValue,
              let decoded = try? PaymentOrder(decoding: order), goods[decoded.item] != nil,
              try hasPurchased(serial: decoded.serial, item: decoded.item)
        else { return (outcome, nil) }
        return (outcome, try keyEnvelope(serial: decoded.serial, item: decoded.item))
    }
}
