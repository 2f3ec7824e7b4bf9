import Foundation
import GRDB
import MicropayCore
import MicropaySimulation
import Testing

@testable import MicropayMerchant

/// The merchant's tickets at rest: the log records' layout, the table's
/// round trip through them, and the file's guarantees (unfinished commits cut
/// off, alterations refused, one writer, compaction, old stores adopted).
@Suite("Ticket log: the merchant's tickets at rest")
struct TicketLogTests {
    static let merchantKey = SecretKey.random()

    /// Tickets of both modes with every field random, progress included.
    static func randomTickets(_ count: Int, seed: UInt64) -> [TicketProgress] {
        var rng = SplitMix64(seed: seed)
        func bytes<T: FixedBytes>(_: T.Type = T.self) -> T {
            var value = T()
            value.withUnsafeMutableBytes { for i in $0.indices { $0[i] = UInt8(truncatingIfNeeded: rng.next()) } }
            return value
        }
        return (0..<count).map { i in
            let chain = i % 3 != 0
            let order: [UInt8]? = !chain && i % 2 == 0 ? (0..<76).map { _ in UInt8(truncatingIfNeeded: rng.next()) } : nil
            return TicketProgress(
                serial: rng.next(), customer: rng.next(), limit: rng.next(), unit: rng.next(),
                chainLength: chain ? UInt32(truncatingIfNeeded: rng.next()) | 1 : 0, chainID: bytes(),
                issued: rng.next(), expires: rng.next(), root: bytes(),
                sessionKey: try! SecretKey(bytes: (0..<32).map { _ in UInt8(truncatingIfNeeded: rng.next()) }),
                last: chain ? UInt32(truncatingIfNeeded: rng.next()) : 0, lastWord: chain ? bytes() : nil,
                lastSeq: order == nil ? 0 : UInt32(truncatingIfNeeded: rng.next()),
                lastCumulative: order == nil ? 0 : rng.next(), lastOrder: order, credited: rng.next(),
                claimed: UInt32(truncatingIfNeeded: rng.next()), settled: UInt32(truncatingIfNeeded: rng.next()),
                settledAmount: rng.next())
        }
    }

    /// Every field, the session key's bytes included: what must survive the round trip.
    struct Fields: Hashable {
        let values: [UInt64]
        let bytes: [UInt8]

        init(_ t: TicketProgress) {
            values = [t.serial, t.customer, t.limit, t.unit, UInt64(t.chainLength), t.issued, t.expires,
                      UInt64(t.last), UInt64(t.lastSeq), t.lastCumulative, t.credited, UInt64(t.claimed),
                      UInt64(t.settled), t.settledAmount]
            bytes = t.chainID.bytes + t.root.bytes + t.lastWord.bytes + t.sessionKey.withUnsafeBytes { Array($0) }
                + (t.lastOrder ?? [])
        }
    }

    static func table(threads: Int) throws -> BatchVerifier {
        try BatchVerifier(bankID: 7, merchant: 2002, merchantKey: merchantKey, threads: threads)
    }

    static func contents(_ table: BatchVerifier) -> Set<Fields> {
        var all = Set<Fields>()
        table.forEachTicket { all.insert(Fields($0)) }
        return all
    }

    @Test("records have the documented layout: a chain ticket's body and progress, an order ticket's progress")
    func layout() throws {
        let tickets = Self.randomTickets(3, seed: 5)
        let chain = tickets[1], order = tickets[0]
        var records: [UInt8] = []
        chain.appendLogRecords(withBody: true, to: &records)
        #expect(records.count == 136 + 72)
        func be64(_ at: Int) -> UInt64 { records[at..<(at + 8)].reduce(0) { $0 << 8 | UInt64($1) } }
        func be32(_ at: Int) -> UInt32 { records[at..<(at + 4)].reduce(0) { $0 << 8 | UInt32($1) } }
        // Body: kind 1, chain_len, serial, customer, limit, unit, issued, expires, chain_id, root, K_CM.
        #expect(records[0] == 1 && records[1..<4].allSatisfy { $0 == 0 })
        #expect(be32(4) == chain.chainLength && be64(8) == chain.serial && be64(16) == chain.customer)
        #expect(be64(24) == chain.limit && be64(32) == chain.unit && be64(40) == chain.issued && be64(48) == chain.expires)
        #expect(Array(records[56..<68]) == chain.chainID.bytes && Array(records[68..<100]) == chain.root.bytes)
        #expect(Array(records[100..<132]) == chain.sessionKey.withUnsafeBytes { Array($0) })
        #expect(records[132..<136].allSatisfy { $0 == 0 })
        // Chain progress: kind 2, last, serial, credited, settled_amount, claimed, settled, w_last.
        let p = 136
        #expect(records[p] == 2 && be32(p + 4) == chain.last && be64(p + 8) == chain.serial)
        #expect(be64(p + 16) == chain.credited && be64(p + 24) == chain.settledAmount)
        #expect(be32(p + 32) == chain.claimed && be32(p + 36) == chain.settled)
        #expect(Array(records[(p + 40)..<(p + 72)]) == chain.lastWord.bytes)

        records = []
        order.appendLogRecords(withBody: false, to: &records)
        #expect(records.count == 128)
        #expect(records[0] == 3 && records[1] == (order.lastOrder == nil ? 0 : 1))
        #expect(be32(4) == order.lastSeq && be64(8) == order.serial && be64(16) == order.credited)
        #expect(be64(40) == order.lastCumulative)
        #expect(Array(records[48..<124]) == (order.lastOrder ?? [UInt8](repeating: 0, count: 76)))
    }

    @Test("the table's log replays into a table of another shape with every field of every ticket", arguments: [1, 2, 3])
    func roundTrip(threads: Int) throws {
        let tickets = Self.randomTickets(5000, seed: UInt64(threads))
        let source = try Self.table(threads: threads)
        for t in tickets { try source.load(t) }
        let expected = Set(tickets.map(Fields.init))
        #expect(Self.contents(source) == expected)

        // The table's own encoding, in small pieces, into 1, 2 and 4 shards.
        for shards in [1, 2, 4] {
            let copy = try Self.table(threads: shards)
            copy.reserve(tickets: tickets.count)
            var pieces = 0
            source.encodeLog(changesOnly: false, pieceBytes: 4096) { records in
                pieces += 1
                #expect(copy.replayLog(records) == nil)
            }
            #expect(pieces > 1)
            #expect(copy.ticketCount == tickets.count)
            #expect(Self.contents(copy) == expected)
        }

        // Each ticket's records written one by one replay the same.
        var records: [UInt8] = []
        for t in tickets { t.appendLogRecords(withBody: true, to: &records) }
        let fromRecords = try Self.table(threads: 2)
        #expect(records.withUnsafeBytes { fromRecords.replayLog($0) } == nil)
        #expect(Self.contents(fromRecords) == expected)

        // A later progress record replaces an earlier one.
        var advanced = tickets[7]
        advanced.credited &+= 1
        advanced.claimed &+= 1
        records = []
        advanced.appendLogRecords(withBody: false, to: &records)
        #expect(records.withUnsafeBytes { fromRecords.replayLog($0) } == nil)
        #expect(Self.contents(fromRecords) == expected.subtracting([Fields(tickets[7])]).union([Fields(advanced)]))
    }

    @Test("replay stops at a record that is cut short, of no known kind, or does not fit the tickets before it")
    func replayRefuses() throws {
        let tickets = Self.randomTickets(4, seed: 11)  // 0 and 3: order mode; 1, 2: chain
        var good: [UInt8] = []
        for t in tickets { t.appendLogRecords(withBody: true, to: &good) }
        func firstFailure(_ records: [UInt8]) throws -> Int? {
            let table = try Self.table(threads: 2)
            return records.withUnsafeBytes { table.replayLog($0) }
        }
        #expect(try firstFailure(good) == nil)
        #expect(try firstFailure(Array(good.dropLast())) == good.count - 128)  // the last order progress, cut
        var unknown = good
        unknown[136 + 128] = 9  // the second ticket's body
        #expect(try firstFailure(unknown) == 136 + 128)
        #expect(try firstFailure(good + good) == good.count)  // a second body for a serial
        var progressOnly: [UInt8] = []
        tickets[1].appendLogRecords(withBody: false, to: &progressOnly)
        #expect(try firstFailure(progressOnly) == 0)  // progress with no body
        var wrongMode = good
        tickets[2].appendLogRecords(withBody: false, to: &wrongMode)
        wrongMode[good.count] = 3  // chain progress relabelled as order progress
        wrongMode += [UInt8](repeating: 0, count: 128 - 72)
        #expect(try firstFailure(wrongMode) == good.count)
    }

    @Test("a long log with a bad record in it: every shard count finds the same first failure", arguments: [8, 150, 400])
    func parallelReplayRefuses(badTicket: Int) throws {
        let tickets = Self.randomTickets(600, seed: 17)
        var records: [UInt8] = []
        var starts: [Int] = []
        for t in tickets {
            starts.append(records.count)
            t.appendLogRecords(withBody: true, to: &records)
        }
        #expect(records.count > 1 << 16, "long enough for the shards to replay in parallel")
        var bad = records
        bad[starts[badTicket]] = 7  // a kind that does not exist, mid-log
        var expected: Int?
        for shards in [1, 2, 3] {
            let table = try Self.table(threads: shards)
            let failure = bad.withUnsafeBytes { table.replayLog($0) }
            #expect(failure == starts[badTicket], "\(shards) shards")
            if shards == 1 { expected = failure } else { #expect(failure == expected) }
        }
        // A second body for a serial, which only its own shard sees.
        var twice = records
        tickets[badTicket].appendLogRecords(withBody: true, to: &twice)
        for shards in [1, 2, 3] {
            let table = try Self.table(threads: shards)
            #expect(twice.withUnsafeBytes { table.replayLog($0) } == records.count, "\(shards) shards")
        }
    }

    // MARK: - The file

    static let spec = BatchSpec(tickets: 40, payments: 1500, fraudRate: 0.05, seed: 3, mode: .mixed)

    static func generated() throws -> (batch: [UInt8], key: SecretKey) {
        var bytes: [UInt8] = []
        let generated = try BatchGenerator.generate(spec) { bytes.append(contentsOf: $0) }
        return (bytes, generated.merchantKey)
    }

    static func open(_ path: String, key: SecretKey) throws -> Merchant {
        try Merchant(bankID: spec.bankID, merchant: spec.merchant, merchantKey: key, store: try MerchantStore(path: path))
    }

    static func logFiles(_ path: String) -> [String] {
        let directory = (path as NSString).deletingLastPathComponent
        let prefix = (path as NSString).lastPathComponent + ".tickets."
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix(prefix) }.sorted()
    }

    /// A store at `path` after the generated batch, and the states it must give back.
    static func verifiedStore(_ path: String, key: SecretKey, batch: [UInt8]) throws -> [TicketState] {
        let merchant = try open(path, key: key)
        _ = try merchant.verifyBatch(bytes: batch, now: spec.now, threads: 2)
        #expect(merchant.ticketCount == spec.tickets)
        return merchant.ticketStates
    }

    @Test("bytes past the committed end (a commit that never reached the store) are cut off on open")
    func unfinishedCommit() throws {
        let (batch, key) = try Self.generated()
        let path = TemporaryStorePath("log-tail")
        defer { path.cleanUp() }
        let states = try Self.verifiedStore(path.path, key: key, batch: batch)
        let log = path.path + ".tickets.1"
        let committed = try #require(FileManager.default.attributesOfItem(atPath: log)[.size] as? Int)
        let handle = try #require(FileHandle(forWritingAtPath: log))
        handle.seekToEndOfFile()
        handle.write(Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31) }))
        try handle.close()
        let reopened = try Self.open(path.path, key: key)
        #expect(reopened.ticketStates == states)
        #expect(try FileManager.default.attributesOfItem(atPath: log)[.size] as? Int == committed)
    }

    @Test("a log altered inside its committed bytes, or cut short of them, is refused")
    func alteredLog() throws {
        let (batch, key) = try Self.generated()
        let path = TemporaryStorePath("log-altered")
        defer { path.cleanUp() }
        _ = try Self.verifiedStore(path.path, key: key, batch: batch)
        let log = path.path + ".tickets.1"
        let original = try Data(contentsOf: URL(fileURLWithPath: log))
        for offset in [0, 30, original.count / 2, original.count - 1] {  // nonce, ciphertext, tag
            var altered = original
            altered[offset] ^= 0x20
            try altered.write(to: URL(fileURLWithPath: log))
            #expect(throws: MerchantError.self, "byte \(offset)") { _ = try Self.open(path.path, key: key) }
        }
        try original.prefix(original.count - 10).write(to: URL(fileURLWithPath: log))
        do {
            _ = try Self.open(path.path, key: key)
            Issue.record("a cut log opened")
        } catch let error as MerchantError {
            guard case .ticketLog(_, let message) = error else { Issue.record("\(error)"); return }
            #expect(message.contains("committed"))
        }
    }

    @Test("a new store does not start over the ticket log of a store that was removed")
    func orphanedLog() throws {
        let (batch, key) = try Self.generated()
        let path = TemporaryStorePath("log-orphan")
        defer { path.cleanUp() }
        _ = try Self.verifiedStore(path.path, key: key, batch: batch)
        let log = path.path + ".tickets.1"
        let before = try Data(contentsOf: URL(fileURLWithPath: log))
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path.path + suffix) }
        for attempt in 1...2 {  // the refused attempt must not leave a store that the next one trusts
            do {
                _ = try Self.open(path.path, key: key)
                Issue.record("attempt \(attempt): a new store opened over an orphaned log")
            } catch let error as MerchantError {
                guard case .ticketLog(_, let message) = error else { Issue.record("\(error)"); return }
                #expect(message.contains("store beside it is new"))
            }
            #expect(try Data(contentsOf: URL(fileURLWithPath: log)) == before)
        }
    }

    @Test("a merchant that cannot reload its store after a failure refuses every later change")
    func unusableAfterFailedReload() throws {
        let (batch, key) = try Self.generated()
        let path = TemporaryStorePath("log-unusable")
        defer { path.cleanUp() }
        _ = try Self.verifiedStore(path.path, key: key, batch: batch)
        let merchant = try Self.open(path.path, key: key)
        let log = path.path + ".tickets.1"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: log))
        bytes[40] ^= 1
        try bytes.write(to: URL(fileURLWithPath: log))
        merchant.reloadAfterFailure()  // what a failed commit does
        #expect(merchant.unusable != nil)
        #expect(throws: MerchantError.self) {
            _ = try merchant.verifyBatch(bytes: batch, now: Self.spec.now)
        }
        #expect(throws: MerchantError.self) { _ = try merchant.makeDeposit() }
        #expect(try Data(contentsOf: URL(fileURLWithPath: log)) == bytes, "nothing was written over the log")
    }

    @Test("a second merchant on the same store is refused while the first has it open")
    func oneWriter() throws {
        let (batch, key) = try Self.generated()
        let path = TemporaryStorePath("log-lock")
        defer { path.cleanUp() }
        _ = try Self.verifiedStore(path.path, key: key, batch: batch)
        var first: Merchant? = try Self.open(path.path, key: key)
        // Contention, not damage: the tool tells it apart (exit 75, try again).
        #expect(throws: MerchantError.storeInUse(path: path.path + ".lock")) { _ = try Self.open(path.path, key: key) }
        #expect(first?.ticketCount == Self.spec.tickets)
        first = nil
        _ = try Self.open(path.path, key: key)  // released with the first
    }

    @Test("a ticket log that cannot be written (a full disk) is an I/O failure, not a damaged log")
    func fullDisk() throws {
        let (batch, key) = try Self.generated()
        let path = TemporaryStorePath("log-full")
        defer { path.cleanUp() }
        _ = try Self.open(path.path, key: key)  // a state with an empty log
        let log = path.path + ".tickets.1"
        try FileManager.default.removeItem(atPath: log)
        try FileManager.default.createSymbolicLink(atPath: log, withDestinationPath: "/dev/full")
        let merchant = try Self.open(path.path, key: key)
        do {
            _ = try merchant.verifyBatch(bytes: batch, now: Self.spec.now, threads: 2)
            Issue.record("a batch committed to a full disk")
        } catch let error as MerchantError {
            guard case .ticketLogIO(_, let message) = error else { Issue.record("\(error)"); return }
            #expect(message.contains("No space left on device"))
        }
    }

    @Test("a log grown past twice its tickets becomes a new generation: same state, old file gone", arguments: [true, false])
    func compaction(onDisk: Bool) throws {
        let key = SecretKey.random()
        var world = PaymentWorld(seed: onDisk ? 21 : 22, merchantKey: key)
        let path = TemporaryStorePath("log-compact")
        defer { path.cleanUp() }
        func open(_ store: MerchantStore) throws -> Merchant {
            try Merchant(bankID: PaymentWorld.bankID, merchant: PaymentWorld.merchant, merchantKey: key, store: store)
        }
        var merchant: Merchant! = try open(onDisk ? MerchantStore(path: path.path) : MerchantStore())
        merchant.ticketLogCompactionFloor = 0
        let reference = try open(MerchantStore())
        var generations = Set<UInt64>()
        for round in 0..<8 {
            let now = PaymentWorld.start + UInt64(round) * 10
            let writer = try PaymentWorld.batch(world.records(atLeast: 200))
            for m in [merchant!, reference] {
                _ = try m.verifyBatch(bytes: writer.bytes, now: now, threads: 2)
                // A Deposit changes every ticket with a new claim: a commit from the entries.
                _ = try m.makeDeposit(batchID: UInt64(round + 1))
            }
            generations.insert(merchant.ticketLog.committed.generation)
        }
        #expect(generations.count > 1, "the log never compacted")
        #expect(merchant.ticketLog.committed.length <= 2 * merchant.ticketCount * BatchVerifier.logBytesPerTicketMax)
        #expect(merchant.ticketStates == reference.ticketStates)
        guard onDisk else { return }
        let name = (path.path as NSString).lastPathComponent
        #expect(Self.logFiles(path.path) == [name + ".tickets.\(merchant.ticketLog.committed.generation)"])
        // Compacted from the table, then from the entries.
        try merchant.compactTicketLog()
        merchant.willChangeEntries()
        try merchant.compactTicketLog()
        #expect(Self.logFiles(path.path) == [name + ".tickets.\(merchant.ticketLog.committed.generation)"])
        merchant = nil
        #expect(try open(MerchantStore(path: path.path)).ticketStates == reference.ticketStates)
    }

    @Test("a store from before the ticket log has its ticket rows moved into it, once")
    func legacyRows() throws {
        let (batch, key) = try Self.generated()
        let path = TemporaryStorePath("log-legacy")
        defer { path.cleanUp() }
        // What the rows of a pre-log store held: the ticket as received and its progress.
        let reference = try Merchant(bankID: Self.spec.bankID, merchant: Self.spec.merchant, merchantKey: key, store: MerchantStore())
        var tickets: [UInt64: [UInt8]] = [:]
        _ = try batch.withUnsafeBytes { buffer in
            try Result { () throws(MerchantError) in
                try reference.verifyBatchSequentially(buffer, now: Self.spec.now) { record, outcome in
                    if outcome.verdict == .accepted, record.bytes.first == WireKind.ticket.rawValue,
                       tickets[record.bytes.u64(at: 8)] == nil {
                        tickets[record.bytes.u64(at: 8)] = Array(record.bytes)
                    }
                }
            }.get()
        }
        let states = reference.ticketStates
        do {
            let store = try MerchantStore(path: path.path)
            _ = try Merchant(bankID: Self.spec.bankID, merchant: Self.spec.merchant, merchantKey: key, store: store)
            try store.queue.write { db in
                for s in states {
                    try db.execute(sql: """
                        INSERT INTO legacy_ticket (bank_id, serial, bytes, customer, limit_amount, unit, chain_len, chain_id,
                                                   issued, expires, root)
                        VALUES (?, ?, ?, 0, 0, 0, 0, x'', 0, 0, x'')
                        """, arguments: [Int64(Self.spec.bankID), Int64(bitPattern: s.serial), Data(tickets[s.serial]!)])
                    try db.execute(sql: """
                        INSERT INTO legacy_ticket_state (bank_id, serial, last, w_last, last_seq, last_cumulative, last_order,
                                                         credited, claimed, settled, settled_amount)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0)
                        """, arguments: [Int64(Self.spec.bankID), Int64(bitPattern: s.serial), Int64(s.last), Data(s.lastWord.bytes),
                                         Int64(s.lastSeq), Int64(bitPattern: s.lastCumulative), s.lastOrder.map { Data($0) },
                                         Int64(bitPattern: s.credited)])
                }
            }
        }
        #expect(try Self.open(path.path, key: key).ticketStates == states)
        let left = try MerchantStore(path: path.path).queue.read { db in
            try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM legacy_ticket")
        }
        #expect(left == 0)
        #expect(try Self.open(path.path, key: key).ticketStates == states)  // now from the log alone
    }
}
