import Foundation
import GRDB
import MicropayCore

/// A verdict and what it credited (0 unless accepted).
public struct RecordOutcome: Sendable, Equatable {
    public let verdict: Verdict
    public let credited: UInt64

    public init(_ verdict: Verdict, credited: UInt64 = 0) {
        self.verdict = verdict
        self.credited = credited
    }
}

/// The merchant role: judges tickets and payments offline in exactly the
/// check order of PROTOCOL.md §7.2, sells goods (§8), deposits and applies
/// receipts (§9). State lives in memory (a dictionary of tickets keyed by
/// serial) and in a `MerchantStore`; every public call that changes state
/// commits it in one transaction before it returns, so what a caller is told
/// is exactly what is on disk.
///
/// Not thread-safe: one Merchant per store, used from one thread at a time.
public final class Merchant {
    public let bankID: UInt32
    public let merchantNumber: UInt64
    public let store: MerchantStore
    let random: any RandomSource
    /// enc(K_M): opens tickets.
    let ticketKey: SecretKey
    /// K_M, for the batch verifier's own ticket table.
    let merchantKey: SecretKey
    /// The batch verifier's table, in step with `tickets` after every batch;
    /// dropped whenever state changes outside it (one-record verification, a reload).
    var batchVerifier: BatchVerifier?
    /// Tuning for tests and benchmarks: records per verifier window, and a pinned lane kernel.
    var batchWindowRecords = 1 << 18
    var batchLaneKernel: Engine.LaneKernel?
    /// MACKey(mac(K_M)): Deposit and Receipt tags.
    let merchantMAC: MACKey
    /// Wraps goods keys at rest; HMAC(K_M, a local label), never on the wire.
    let storageKey: SecretKey

    var tickets: [UInt64: TicketEntry] = [:]
    var goods: [Bytes16: GoodsEntry] = [:]
    /// Entries changed since the last commit; bounded by the number of tickets.
    var dirty: [TicketEntry] = []
    /// Purchases made since the last commit.
    var newPurchases: Set<PurchaseKey> = []

    /// Opens the merchant on `store`, creating its identity there on first
    /// use; refuses a store made for another bank, merchant or key.
    public init(
        bankID: UInt32, merchant: UInt64, merchantKey: SecretKey, store: MerchantStore,
        random: any RandomSource = SystemRandom()
    ) throws(MerchantError) {
        self.bankID = bankID
        merchantNumber = merchant
        self.store = store
        self.random = random
        ticketKey = merchantKey.encryptionSubkey
        self.merchantKey = merchantKey
        merchantMAC = MACKey(macOf: merchantKey)
        let local = MACKey(merchantKey)
        var wrap = Array("micropay merchant store: goods-key wrap v1".utf8).withUnsafeBytes { local.hmac($0) }
        storageKey = wrap.withUnsafeBytes { try! SecretKey(bytes: $0) }
        wrap.withUnsafeMutableBytes { Engine.zero($0) }
        let check = Array("micropay merchant store: key check v1".utf8).withUnsafeBytes { local.hmac($0) }
        let keyCheck = Data(check.bytes.prefix(16))
        try store.write { db in
            let meta = try Dictionary(
                uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT key, value FROM meta").map {
                    ($0["key"] as String, $0["value"] as Data)
                })
            let identity = Data(withUnsafeBytes(of: bankID.bigEndian) { Array($0) } + withUnsafeBytes(of: merchant.bigEndian) { Array($0) })
            if let stored = meta["identity"] {
                guard stored == identity, stored.count == 12 else {
                    let b = stored.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                    let m = stored.dropFirst(4).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                    throw MerchantError.storeBelongsToAnotherMerchant(bankID: b, merchant: m)
                }
                guard meta["key_check"] == keyCheck else { throw MerchantError.wrongMerchantKey }
            } else {
                try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('identity', ?), ('key_check', ?)",
                               arguments: [identity, keyCheck])
            }
        }
        try load()
    }

    /// (Re)reads every ticket and goods item from the store, dropping what is in memory.
    func load() throws(MerchantError) {
        tickets = [:]
        goods = [:]
        dirty = []
        batchVerifier = nil
        newPurchases = []
        let rows = try store.read { db in
            try Row.fetchAll(db, sql: """
                SELECT t.serial, t.bytes, s.last, s.w_last, s.last_seq, s.last_cumulative, s.last_order,
                       s.credited, s.claimed, s.settled, s.settled_amount
                FROM ticket t JOIN ticket_state s ON s.bank_id = t.bank_id AND s.serial = t.serial
                WHERE t.bank_id = ?
                """, arguments: [Int64(bankID)])
        }
        tickets.reserveCapacity(rows.count)
        for row in rows {
            let serial = u64(row["serial"])
            let bytes = Array(row["bytes"] as Data)
            guard let ticket = try? Ticket(decoding: bytes), ticket.serial == serial,
                  let body = try? ticket.open(encryptionKey: ticketKey)
            else { throw .storedTicketDoesNotOpen(serial: serial) }
            let entry = TicketEntry(serial: serial, ticketBytes: bytes, body: body, persisted: true)
            entry.last = UInt32(truncatingIfNeeded: row["last"] as Int64)
            entry.lastWord = Bytes32(data: row["w_last"]) ?? body.root
            entry.lastSeq = UInt32(truncatingIfNeeded: row["last_seq"] as Int64)
            entry.lastCumulative = u64(row["last_cumulative"])
            entry.lastOrder = (row["last_order"] as Data?).map { Array($0) } ?? []
            entry.credited = u64(row["credited"])
            entry.claimed = UInt32(truncatingIfNeeded: row["claimed"] as Int64)
            entry.settled = UInt32(truncatingIfNeeded: row["settled"] as Int64)
            entry.settledAmount = u64(row["settled_amount"])
            tickets[serial] = entry
        }
        let goodsRows = try store.read { db in
            try Row.fetchAll(db, sql: "SELECT item, item_number, item_nonce, price FROM goods")
        }
        for row in goodsRows {
            guard let item = Bytes16(data: row["item"]), let nonce = Bytes16(data: row["item_nonce"]) else { continue }
            goods[item] = GoodsEntry(item: item, itemNumber: u64(row["item_number"]), itemNonce: nonce, price: u64(row["price"]))
        }
    }

    // MARK: - Queries

    /// A ticket's public fields and progress, or nil if the serial is unknown.
    public func ticketState(serial: UInt64) -> TicketState? { tickets[serial]?.snapshot }

    /// Every registered ticket, by serial.
    public var ticketStates: [TicketState] { tickets.values.map(\.snapshot).sorted { $0.serial < $1.serial } }

    public var ticketCount: Int { tickets.count }

    /// Total accepted over all tickets.
    public var totalCredited: UInt64 { tickets.values.reduce(0) { $0 &+ $1.credited } }

    // MARK: - One record

    /// Judges one record (§7.2) at `now` and commits any change before returning.
    public func verify(_ record: UnsafeRawBufferPointer, now: UInt64) throws(MerchantError) -> RecordOutcome {
        batchVerifier = nil
        let outcome = judge(record, now: now)
        try commit(log: nil)
        return outcome
    }

    public func verify(_ record: [UInt8], now: UInt64) throws(MerchantError) -> RecordOutcome {
        let result = record.withUnsafeBytes { buffer in
            Result { () throws(MerchantError) -> RecordOutcome in try verify(buffer, now: now) }
        }
        return try result.get()
    }

    // MARK: - The check order of §7.2

    /// The verdict on one record, applying an acceptance to the in-memory
    /// state (and marking it dirty). Never traps, whatever the bytes.
    func judge(_ r: UnsafeRawBufferPointer, now: UInt64) -> RecordOutcome {
        // Any record: unknownKind, then malformed.
        guard let first = r.first else { return RecordOutcome(.malformed) }
        guard let kind = WireKind(rawValue: first) else { return RecordOutcome(.unknownKind) }
        let size: Int
        switch kind {
        case .chainPayment: size = ChainPayment.byteCount
        case .paymentOrder: size = PaymentOrder.byteCount
        case .ticket: size = Ticket.byteCount
        default: return RecordOutcome(.malformed)
        }
        guard r.count == size, r[1] == WireHeader.version, r[2] == WireHeader.suite, r[3] == 0 else {
            return RecordOutcome(.malformed)
        }
        switch kind {
        case .chainPayment: return judgeChainPayment(r, now: now)
        case .paymentOrder: return judgeOrder(r, now: now)
        default: return judgeTicket(r, now: now)
        }
    }

    private func judgeTicket(_ r: UnsafeRawBufferPointer, now: UInt64) -> RecordOutcome {
        let serial = r.u64(at: 8)
        // 1. badTicket: another bank or merchant, or the AEAD does not open.
        guard r.u32(at: 4) == bankID, r.u64(at: 16) == merchantNumber else { return RecordOutcome(.badTicket) }
        let known = tickets[serial]
        // Bytes identical to a ticket that opened before open again: skip the AEAD.
        if let known, known.ticketBytes.withUnsafeBytes({ $0.elementsEqual(r) }) { return RecordOutcome(.accepted) }
        guard let ticket = try? Ticket(decoding: r), let body = try? ticket.open(encryptionKey: ticketKey) else {
            return RecordOutcome(.badTicket)
        }
        // 2. A known serial: accepted, no change, expired or not.
        if known != nil { return RecordOutcome(.accepted) }
        // 3. expired.
        guard now <= body.expires else { return RecordOutcome(.expired) }
        // 4. Registered.
        let entry = TicketEntry(serial: serial, ticketBytes: ticket.bytes, body: body, persisted: false)
        tickets[serial] = entry
        markDirty(entry)
        return RecordOutcome(.accepted)
    }

    private func judgeChainPayment(_ r: UnsafeRawBufferPointer, now: UInt64) -> RecordOutcome {
        // A payment naming another bank has no ticket here.
        guard r.u32(at: 4) == bankID, let entry = tickets[r.u64(at: 8)] else { return RecordOutcome(.unknownTicket) }
        guard now <= entry.expires else { return RecordOutcome(.expired) }
        guard entry.isChainMode else { return RecordOutcome(.wrongMode) }
        let index = r.u32(at: 16)
        var word = Bytes32()
        word.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: r[20..<52])) }
        let last = entry.last
        if index == last && last >= 1 && word == entry.lastWord { return RecordOutcome(.duplicate) }
        guard index > last else { return RecordOutcome(.replay) }
        guard index <= entry.chainLength, index - last <= HashChain.maxGap else { return RecordOutcome(.overLimit) }
        guard HashChain.verify(chainID: entry.chainID, index: index, word: word, last: last, lastWord: entry.lastWord) else {
            return RecordOutcome(.badChainWord)
        }
        // A bank-issued ticket has n × unit ≤ 2^64 − 1; a ticket that breaks that is refused, not trusted.
        let (credit, o1) = UInt64(index - last).multipliedReportingOverflow(by: entry.unit)
        let (total, o2) = entry.credited.addingReportingOverflow(credit)
        guard !o1, !o2 else { return RecordOutcome(.overLimit) }
        entry.last = index
        entry.lastWord = word
        entry.credited = total
        markDirty(entry)
        return RecordOutcome(.accepted, credited: credit)
    }

    private func judgeOrder(_ r: UnsafeRawBufferPointer, now: UInt64) -> RecordOutcome {
        let serial = r.u64(at: 8)
        guard r.u32(at: 4) == bankID, let entry = tickets[serial] else { return RecordOutcome(.unknownTicket) }
        guard now <= entry.expires else { return RecordOutcome(.expired) }
        guard let mac = entry.sessionMAC else { return RecordOutcome(.wrongMode) }
        var tag = Bytes16()
        tag.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: r[60..<76])) }
        guard mac.verify(label: .order, UnsafeRawBufferPointer(rebasing: r[0..<60]), tag: tag) else {
            return RecordOutcome(.badMAC)
        }
        if !entry.lastOrder.isEmpty, entry.lastOrder.withUnsafeBytes({ $0.elementsEqual(r) }) {
            return RecordOutcome(.duplicate)
        }
        let seq = r.u32(at: 16)
        guard seq > entry.lastSeq else { return RecordOutcome(.replay) }
        let cumulative = r.u64(at: 20)
        guard cumulative >= entry.lastCumulative else { return RecordOutcome(.decreasingAmount) }
        guard cumulative <= entry.limit else { return RecordOutcome(.overLimit) }
        let credit = cumulative - entry.lastCumulative
        let (total, overflow) = entry.credited.addingReportingOverflow(credit)
        guard !overflow else { return RecordOutcome(.overLimit) }
        entry.lastSeq = seq
        entry.lastCumulative = cumulative
        if entry.lastOrder.count == PaymentOrder.byteCount {
            // Overwrite in place: no allocation per accepted order.
            entry.lastOrder.withUnsafeMutableBytes { $0.copyMemory(from: r) }
        } else {
            entry.lastOrder = Array(r)
        }
        entry.credited = total
        markDirty(entry)
        if !goods.isEmpty { notePurchase(order: r, credited: credit) }
        return RecordOutcome(.accepted, credited: credit)
    }

    /// An accepted order bound to a goods item, paying at least its price, is
    /// a purchase: it entitles its ticket to that item's KeyEnvelope.
    func notePurchase(order r: UnsafeRawBufferPointer, credited credit: UInt64) {
        var item = Bytes16()
        item.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: r[28..<44])) }
        if let goodsEntry = goods[item], credit >= goodsEntry.price {
            newPurchases.insert(PurchaseKey(serial: r.u64(at: 8), item: item))
        }
    }

    @inline(__always)
    func markDirty(_ entry: TicketEntry) {
        if !entry.dirty {
            entry.dirty = true
            dirty.append(entry)
        }
    }

    // MARK: - Commit

    /// Writes every dirty ticket, new purchase and `log` in one transaction.
    /// If it fails, memory is reloaded from the store (which the failed
    /// transaction left unchanged) and the error is thrown: the caller was
    /// told nothing, and nothing was kept.
    func commit(log: BatchSummary?, tag: String = "", now: UInt64 = 0) throws(MerchantError) {
        guard !dirty.isEmpty || !newPurchases.isEmpty || log != nil else { return }
        let bankID = Int64(bankID)
        do {
            try store.write { db in
                let insertTicket = try db.cachedStatement(sql: """
                    INSERT INTO ticket (bank_id, serial, bytes, customer, limit_amount, unit, chain_len, chain_id,
                                        issued, expires, root)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                let upsertState = try db.cachedStatement(sql: """
                    INSERT OR REPLACE INTO ticket_state (bank_id, serial, last, w_last, last_seq, last_cumulative,
                                                         last_order, credited, claimed, settled, settled_amount)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                for e in dirty {
                    if !e.persisted {
                        try insertTicket.execute(arguments: [
                            bankID, i64(e.serial), Data(e.ticketBytes), i64(e.customer), i64(e.limit), i64(e.unit),
                            Int64(e.chainLength), e.chainID.data, i64(e.issued), i64(e.expires), e.root.data,
                        ])
                    }
                    try upsertState.execute(arguments: [
                        bankID, i64(e.serial), Int64(e.last), e.lastWord.data, Int64(e.lastSeq), i64(e.lastCumulative),
                        e.lastOrder.isEmpty ? nil : Data(e.lastOrder), i64(e.credited),
                        Int64(e.claimed), Int64(e.settled), i64(e.settledAmount),
                    ])
                }
                if !newPurchases.isEmpty {
                    let insertPurchase = try db.cachedStatement(
                        sql: "INSERT OR IGNORE INTO purchase (bank_id, serial, item) VALUES (?, ?, ?)")
                    for p in newPurchases {
                        try insertPurchase.execute(arguments: [bankID, i64(p.serial), p.item.data])
                    }
                }
                if let log {
                    try db.execute(sql: """
                        INSERT INTO batch_log (tag, now, records, accepted, duplicates, credited, truncated)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """, arguments: [tag, i64(now), log.records, log.accepted, log.duplicates,
                                         i64(log.credited), log.truncatedTail ? 1 : 0])
                }
            }
        } catch {
            try? load()
            throw error
        }
        for e in dirty {
            e.persisted = true
            e.dirty = false
        }
        dirty.removeAll(keepingCapacity: true)
        newPurchases.removeAll()
    }
}

/// A ticket and an item bought on it.
struct PurchaseKey: Hashable {
    let serial: UInt64
    let item: Bytes16
}

extension UnsafeRawBufferPointer {
    @inline(__always) func u32(at offset: Int) -> UInt32 {
        UInt32(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inline(__always) func u64(at offset: Int) -> UInt64 {
        UInt64(bigEndian: loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }
}
