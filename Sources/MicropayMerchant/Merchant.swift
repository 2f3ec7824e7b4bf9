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
/// receipts (§9). Every public call that changes state commits it in one
/// transaction before it returns, so what a caller is told is exactly what
/// is on disk.
///
/// The tickets live in memory in one of two forms, kept in step: the batch
/// verifier's table in the engine (what opening the store builds, and what
/// batch verification runs on) and a dictionary of `TicketEntry` by serial
/// (what the one-record path, settlement and goods use), built from the
/// table the first time one of those needs it. On disk they are a
/// `TicketLog`; everything else is in the `MerchantStore`.
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
    /// The batch verifier's table; nil once a change was made to the entries
    /// instead (it is rebuilt from them for the next batch).
    var batchVerifier: BatchVerifier?
    /// The tickets as Swift objects; nil until something needs them.
    var ticketEntries: [UInt64: TicketEntry]?
    /// Shards of the table, and tuning for tests and benchmarks: records per
    /// verifier window, and a pinned lane kernel.
    var verifierThreads: Int
    var batchWindowRecords = BatchVerifier.defaultWindowRecords
    var batchLaneKernel: Engine.LaneKernel?
    /// MACKey(mac(K_M)): Deposit and Receipt tags.
    let merchantMAC: MACKey
    /// Wraps goods keys at rest; HMAC(K_M, a local label), never on the wire.
    let storageKey: SecretKey
    let ticketLog: TicketLog
    /// Held for the merchant's life: nil for a store in memory.
    let storeLock: StoreLock?
    /// Set when reloading the store after a failure failed too: memory no
    /// longer matches the store, so every later change is refused with it.
    private(set) var unusable: MerchantError?
    /// Tuning: the ticket log is rewritten (compacted) once it is larger than
    /// twice what its tickets need plus this many bytes.
    public var ticketLogCompactionFloor = 64 << 20

    var goods: [Bytes16: GoodsEntry] = [:]
    /// Entries changed since the last commit; bounded by the number of tickets.
    var dirty: [TicketEntry] = []
    /// Purchases made since the last commit.
    var newPurchases: Set<PurchaseKey> = []

    /// Opens the merchant on `store`, creating its identity there on first
    /// use; refuses a store made for another bank, merchant or key.
    /// `threads` shards the ticket table for batch verification.
    public init(
        bankID: UInt32, merchant: UInt64, merchantKey: SecretKey, store: MerchantStore,
        random: any RandomSource = SystemRandom(), threads: Int = Merchant.defaultThreads
    ) throws(MerchantError) {
        self.bankID = bankID
        merchantNumber = merchant
        self.store = store
        self.random = random
        verifierThreads = Self.verifierThreads(threads)
        ticketKey = merchantKey.encryptionSubkey
        self.merchantKey = merchantKey
        merchantMAC = MACKey(macOf: merchantKey)
        let local = MACKey(merchantKey)
        storageKey = Self.localKey(local, label: "micropay merchant store: goods-key wrap v1")
        let logKey = Self.localKey(local, label: "micropay merchant store: ticket log v1")
        let check = Array("micropay merchant store: key check v1".utf8).withUnsafeBytes { local.hmac($0) }
        let keyCheck = Data(check.bytes.prefix(16))
        storeLock = try StoreLock(storePath: store.path)
        let logPosition = try store.write { db in
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
                // A new store does not start over the ticket log of one that was removed.
                if let orphan = TicketLog.logFiles(storePath: store.path).first {
                    throw MerchantError.ticketLog(path: orphan, "exists, but the store beside it is new: it belongs to a store that was removed. Move it away to start afresh")
                }
                try db.execute(sql: "INSERT INTO meta (key, value) VALUES ('identity', ?), ('key_check', ?)",
                               arguments: [identity, keyCheck])
            }
            if let position = meta[TicketLog.Position.metaKey] {
                guard let position = TicketLog.Position(position) else {
                    throw MerchantError.ticketLog(path: store.path ?? "memory", "the store's log position is malformed")
                }
                return position
            }
            return TicketLog.Position(generation: 1, length: 0, tickets: 0)
        }
        ticketLog = try TicketLog(storePath: store.path, key: logKey, committed: logPosition)
        try load()
        try adoptLegacyTickets()
    }

    private static func localKey(_ local: MACKey, label: String) -> SecretKey {
        var derived = Array(label.utf8).withUnsafeBytes { local.hmac($0) }
        defer { derived.withUnsafeMutableBytes { Engine.zero($0) } }
        return derived.withUnsafeBytes { try! SecretKey(bytes: $0) }
    }

    /// (Re)reads every ticket and goods item from the store, dropping what is in memory.
    func load() throws(MerchantError) {
        ticketEntries = nil
        batchVerifier = nil
        goods = [:]
        dirty = []
        newPurchases = []
        let table = newTable(threads: verifierThreads)
        table.reserve(tickets: ticketLog.committed.tickets)
        try ticketLog.replay(threads: verifierThreads) { (records, segment) throws(MerchantError) in
            if let offset = table.replayLog(records) {
                throw .ticketLog(path: store.path ?? "memory",
                                 "the record at byte \(offset) of the segment at \(segment) does not fit the tickets before it")
            }
        }
        batchVerifier = table
        let goodsRows = try store.read { db in
            try Row.fetchAll(db, sql: "SELECT item, item_number, item_nonce, price FROM goods")
        }
        for row in goodsRows {
            guard let item = Bytes16(data: row["item"]), let nonce = Bytes16(data: row["item_nonce"]) else { continue }
            goods[item] = GoodsEntry(item: item, itemNumber: u64(row["item_number"]), itemNonce: nonce, price: u64(row["price"]))
        }
    }

    /// A thread count the batch verifier takes: 1 to BatchVerifier.maxThreads.
    static func verifierThreads(_ threads: Int) -> Int { min(max(1, threads), BatchVerifier.maxThreads) }

    /// An empty ticket table with this merchant's tuning.
    func newTable(threads: Int) -> BatchVerifier {
        try! BatchVerifier(bankID: bankID, merchant: merchantNumber, merchantKey: merchantKey, threads: threads,
                           windowRecords: batchWindowRecords, kernel: batchLaneKernel)
    }

    /// Stores written before the ticket log kept tickets as rows: open them
    /// once, write them to the log and drop the rows, in one transaction.
    private func adoptLegacyTickets() throws(MerchantError) {
        let rows = try store.read { db -> [Row] in
            guard try db.tableExists("legacy_ticket") else { return [] }
            return try Row.fetchAll(db, sql: """
                SELECT t.serial, t.bytes, s.last, s.w_last, s.last_seq, s.last_cumulative, s.last_order,
                       s.credited, s.claimed, s.settled, s.settled_amount
                FROM legacy_ticket t JOIN legacy_ticket_state s ON s.bank_id = t.bank_id AND s.serial = t.serial
                WHERE t.bank_id = ?
                """, arguments: [Int64(bankID)])
        }
        guard !rows.isEmpty else { return }
        willChangeEntries()
        for row in rows {
            let serial = u64(row["serial"])
            guard let ticket = try? Ticket(decoding: Array(row["bytes"] as Data)), ticket.serial == serial,
                  let body = try? ticket.open(encryptionKey: ticketKey)
            else { throw .storedTicketDoesNotOpen(serial: serial) }
            guard tickets[serial] == nil else { continue }
            let entry = TicketEntry(serial: serial, body: body)
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
            markDirty(entry)
        }
        try commit(log: nil) { db in
            try db.execute(sql: "DELETE FROM legacy_ticket_state WHERE bank_id = ?", arguments: [Int64(self.bankID)])
            try db.execute(sql: "DELETE FROM legacy_ticket WHERE bank_id = ?", arguments: [Int64(self.bankID)])
        }
    }

    // MARK: - The two forms of the tickets

    /// The tickets as entries, built from the table the first time they are needed.
    var tickets: [UInt64: TicketEntry] {
        get {
            materializeEntries()
            return ticketEntries!
        }
        _modify {
            materializeEntries()
            yield &ticketEntries!
        }
    }

    private func materializeEntries() {
        guard ticketEntries == nil else { return }
        var entries: [UInt64: TicketEntry] = [:]
        if let batchVerifier {
            entries.reserveCapacity(batchVerifier.ticketCount)
            batchVerifier.forEachTicket { entries[$0.serial] = TicketEntry($0) }
        }
        ticketEntries = entries
    }

    /// Called before a change is made to the entries: the table would fall
    /// behind them, so it goes, and is rebuilt from them for the next batch.
    func willChangeEntries() {
        materializeEntries()
        batchVerifier = nil
    }

    // MARK: - Queries

    /// A ticket's public fields and progress, or nil if the serial is unknown.
    public func ticketState(serial: UInt64) -> TicketState? { tickets[serial]?.snapshot }

    /// Every registered ticket, by serial.
    public var ticketStates: [TicketState] { tickets.values.map(\.snapshot).sorted { $0.serial < $1.serial } }

    public var ticketCount: Int { ticketEntries?.count ?? batchVerifier?.ticketCount ?? 0 }

    /// Total accepted over all tickets.
    public var totalCredited: UInt64 { tickets.values.reduce(0) { $0 &+ $1.credited } }

    // MARK: - One record

    /// Judges one record (§7.2) at `now` and commits any change before returning.
    public func verify(_ record: UnsafeRawBufferPointer, now: UInt64) throws(MerchantError) -> RecordOutcome {
        try checkUsable()
        willChangeEntries()
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
        guard let ticket = try? Ticket(decoding: r), let body = try? ticket.open(encryptionKey: ticketKey) else {
            return RecordOutcome(.badTicket)
        }
        // 2. A known serial: accepted, no change, expired or not.
        if known != nil { return RecordOutcome(.accepted) }
        // 3. expired.
        guard now <= body.expires else { return RecordOutcome(.expired) }
        // 4. Registered.
        let entry = TicketEntry(serial: serial, body: body)
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

    /// Writes every changed ticket to the ticket log, then, in one
    /// transaction, the log's new end, new purchases, `log` and whatever
    /// `also` writes. The changes come from the table after a batch, else
    /// from the dirty entries. If anything fails, memory is reloaded from the
    /// store (which the failed transaction left unchanged) and the error is
    /// thrown: the caller was told nothing, and nothing was kept.
    func commit(
        log: BatchSummary?, tag: String = "", now: UInt64 = 0, also: ((Database) throws -> Void)? = nil
    ) throws(MerchantError) {
        try checkUsable()
        let fromTable = batchVerifier.map { $0.changeCount > 0 } ?? false
        guard fromTable || !dirty.isEmpty || !newPurchases.isEmpty || log != nil || also != nil else { return }
        do throws(MerchantError) {
            var position = ticketLog.committed
            if fromTable || !dirty.isEmpty {
                let writer = ticketLog.appender()
                if fromTable, let batchVerifier {
                    try batchVerifier.encodeLog(changesOnly: true) { (records) throws(MerchantError) in try writer.add(records) }
                } else {
                    try Self.writeEntries(dirty, allBodies: false, to: writer)
                }
                position.length = try writer.finish()
                position.tickets = ticketCount
            }
            let bankID = Int64(bankID)
            try store.write { db in
                if position != ticketLog.committed {
                    try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                                   arguments: [TicketLog.Position.metaKey, position.encoded])
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
                try also?(db)
            }
            ticketLog.commit(position)
        } catch {
            ticketLog.abandon()
            reloadAfterFailure()
            throw error
        }
        batchVerifier?.clearChanges()
        for e in dirty {
            e.isNew = false
            e.dirty = false
        }
        dirty.removeAll(keepingCapacity: true)
        newPurchases.removeAll()
        // The commit is durable: a compaction that fails changes nothing, and
        // is tried again after the next commit.
        try? compactTicketLogIfLarge()
    }

    /// Throws the failure that left this merchant unusable, if any.
    func checkUsable() throws(MerchantError) {
        if let unusable { throw unusable }
    }

    /// After a failure, memory goes back to what the store holds. If even
    /// that fails, the merchant refuses every later change rather than
    /// write from a state it does not know.
    func reloadAfterFailure() {
        do {
            try load()
        } catch {
            unusable = error
        }
    }

    /// Entries as log records: a body for the new ones (or all), progress for all.
    private static func writeEntries<S: Sequence>(
        _ entries: S, allBodies: Bool, to writer: TicketLog.Writer
    ) throws(MerchantError) where S.Element == TicketEntry {
        // Room for a whole piece: growing would free copies of the keys unzeroed.
        var records: [UInt8] = []
        records.reserveCapacity((1 << 16) + BatchVerifier.logBytesPerTicketMax)
        defer { records.withUnsafeMutableBytes { Engine.zero($0) } }
        for e in entries {
            e.progress.appendLogRecords(withBody: allBodies || e.isNew, to: &records)
            if records.count >= 1 << 16 {
                try writer.add(records)
                records.withUnsafeMutableBytes { Engine.zero($0) }
                records.removeAll(keepingCapacity: true)
            }
        }
        try writer.add(records)
    }

    /// Progress records pile up: once the log is more than twice what its
    /// tickets need, plus 64 MiB, it is rewritten whole as a new generation.
    /// The state is the same before and after, so a failure here changes
    /// nothing and is not an error of the commit that called it.
    func compactTicketLogIfLarge() throws(MerchantError) {
        let live = ticketCount * BatchVerifier.logBytesPerTicketMax
        guard ticketLog.committed.length > 2 * live + ticketLogCompactionFloor else { return }
        try compactTicketLog()
    }

    /// Rewrites the ticket log as one body and one progress record per ticket.
    func compactTicketLog() throws(MerchantError) {
        var position = try ticketLog.writeGeneration { (writer) throws(MerchantError) in
            if let batchVerifier {
                try batchVerifier.encodeLog(changesOnly: false) { (records) throws(MerchantError) in try writer.add(records) }
            } else {
                try Self.writeEntries(tickets.values, allBodies: true, to: writer)
            }
        }
        position.tickets = ticketCount
        do throws(MerchantError) {
            try store.write { db in
                try db.execute(sql: "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                               arguments: [TicketLog.Position.metaKey, position.encoded])
            }
        } catch {
            ticketLog.discardGeneration(position)
            throw error
        }
        ticketLog.switchTo(position)
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
