// The merchant's crash harness and throughput bench.
//
//   CrashHarness merchant run <db> <seed> <batches> <records>
//       Verifies the scenario's batches into <db> in order, skipping those
//       the store's batch log already holds; prints "committed <k>" once
//       batch k is committed. The crash test SIGKILLs it at random points;
//       the ticket log is compacted as often as it can be, so that some of
//       them land in a compaction.
//   CrashHarness merchant bench chain|order <records> <tickets> [<db>]
//       Times verifying one generated batch file (release build for real numbers).
import Foundation
import MicropayCore
import MicropayMerchant

func runMerchantHarness(_ arguments: [String]) -> Int32 {
    do {
        switch arguments.first {
        case "run" where arguments.count == 5:
            guard let seed = UInt64(arguments[2]), let batches = Int(arguments[3]), let records = Int(arguments[4]) else { break }
            return try runCrashScenario(path: arguments[1], scenario: MerchantCrashScenario(seed: seed, batches: batches, records: records))
        case "bench" where arguments.count >= 4:
            guard let records = Int(arguments[2]), let tickets = Int(arguments[3]) else { break }
            return try runBench(orders: arguments[1] == "order", records: records, tickets: tickets,
                                path: arguments.count > 4 ? arguments[4] : nil)
        default: break
        }
    } catch {
        FileHandle.standardError.write(Data("merchant harness: \(error)\n".utf8))
        return 1
    }
    FileHandle.standardError.write(Data("""
        usage: CrashHarness merchant run <db> <seed> <batches> <records>
               CrashHarness merchant bench chain|order <records> <tickets> [<db>]\n
        """.utf8))
    return 2
}

private func runCrashScenario(path: String, scenario: MerchantCrashScenario) throws -> Int32 {
    let merchant = try Merchant(bankID: MerchantCrashScenario.bankID, merchant: MerchantCrashScenario.merchant,
                                merchantKey: scenario.merchantKey, store: MerchantStore(path: path))
    // Compact whenever the log doubles, so kills also land in the middle of a compaction.
    merchant.ticketLogCompactionFloor = 0
    let done = Set(try merchant.store.batchLog().map(\.tag))
    for (k, batch) in scenario.batches.enumerated() where !done.contains(MerchantCrashScenario.tag(k)) {
        _ = try batch.withUnsafeBytes { bytes in
            try merchant.verifyBatch(bytes, now: scenario.now(k), tag: MerchantCrashScenario.tag(k))
        }
        // Unbuffered: the line is out before the next batch starts.
        FileHandle.standardOutput.write(Data("committed \(k)\n".utf8))
    }
    return 0
}

/// A deterministic world for the crash test: tickets in both modes, and
/// batches of payments that customers send in order, with retries and
/// replays mixed in — so verifying a committed batch again accepts nothing.
/// Everything follows from the seed, so the harness and the test that
/// checks it build the same batches.
struct MerchantCrashScenario {
    static let bankID: UInt32 = 7
    static let merchant: UInt64 = 2002
    static let start: UInt64 = 1_900_000_000
    static let chainLength: UInt32 = 4096

    let merchantKey: SecretKey
    let tickets: [[UInt8]]
    let batches: [[UInt8]]

    static func tag(_ k: Int) -> String { "batch-\(k)" }
    func now(_ k: Int) -> UInt64 { Self.start + UInt64(k) }

    init(seed: UInt64, batches count: Int, records: Int, ticketCount: Int = 16) {
        var rng = SplitMix64(seed: seed)
        func bytes<T: FixedBytes>(_: T.Type = T.self) -> T {
            var value = T()
            value.withUnsafeMutableBytes { for i in 0..<$0.count { $0[i] = UInt8.random(in: 0...255, using: &rng) } }
            return value
        }
        func key() -> SecretKey { bytes(Bytes32.self).withUnsafeBytes { try! SecretKey(bytes: $0) } }
        merchantKey = key()
        let customerMAC = MACKey(macOf: key())
        struct Customer {
            var words: [Bytes32] = []
            var sessionMAC: MACKey
            var index: UInt32 = 0
            var seq: UInt32 = 0
            var cumulative: UInt64 = 0
            var last: [UInt8]?
            var earlier: [UInt8]?
        }
        var customers: [Customer] = []
        var tickets: [[UInt8]] = []
        for n in 0..<ticketCount {
            let chain = n % 2 == 0
            let session = key()
            var customer = Customer(sessionMAC: MACKey(macOf: session))
            let chainID: Bytes12 = bytes()
            if chain {
                customer.words = [Bytes32](repeating: bytes(), count: Int(Self.chainLength) + 1)
                for i in stride(from: Int(Self.chainLength), through: 1, by: -1) {
                    customer.words[i - 1] = HashChain.step(chainID: chainID, index: UInt32(i), word: customer.words[i])
                }
            }
            let body = TicketBody(
                customer: 1001, limit: chain ? UInt64(Self.chainLength) * 3 : 10_000_000, unit: chain ? 3 : 0,
                chainLength: chain ? Self.chainLength : 0, chainID: chain ? chainID : Bytes12(), issued: Self.start,
                expires: Self.start + 1_000_000, root: chain ? customer.words[0] : Bytes32(), sessionKey: session)
            tickets.append(Ticket.seal(body: body, bankID: Self.bankID, serial: UInt64(500 + n), merchant: Self.merchant,
                                       merchantKey: merchantKey, nonce: bytes()).bytes)
            customers.append(customer)
        }
        self.tickets = tickets
        var batches: [[UInt8]] = []
        for k in 0..<count {
            var writer = BatchFileWriter(reservingCapacity: records * 80)
            if k == 0 { for t in tickets { try! writer.append(t) } }
            while writer.recordCount < records {
                let n = Int.random(in: 0..<ticketCount, using: &rng)
                var c = customers[n]
                let roll = Int.random(in: 0..<100, using: &rng)
                var record: [UInt8]
                if roll < 8, let last = c.last {
                    record = last  // a retry
                } else if roll < 12, let earlier = c.earlier {
                    record = earlier  // a replay
                } else if roll < 14 {
                    record = tickets[n]  // the ticket again
                } else if !c.words.isEmpty {
                    let next = c.index + UInt32.random(in: 1...2, using: &rng)
                    guard next <= Self.chainLength else { continue }
                    c.index = next
                    record = ChainPayment(bankID: Self.bankID, serial: UInt64(500 + n), index: next, word: c.words[Int(next)]).encoded()
                } else {
                    c.seq += 1
                    c.cumulative += UInt64.random(in: 0...90, using: &rng)
                    record = PaymentOrder.make(bankID: Self.bankID, serial: UInt64(500 + n), seq: c.seq, cumulative: c.cumulative,
                                               item: Bytes16(), customerMAC: customerMAC, sessionMAC: c.sessionMAC).bytes
                }
                if record[0] != 0x10 && record != c.last {
                    c.earlier = c.last
                    c.last = record
                }
                customers[n] = c
                try! writer.append(record)
            }
            batches.append(writer.bytes)
        }
        self.batches = batches
    }
}

/// Verifies one generated batch of `records` chain payments (gap 1, one
/// compression each) or orders over `tickets` tickets, and prints records/s.
private func runBench(orders: Bool, records: Int, tickets: Int, path: String?) throws -> Int32 {
    let merchantKey = SecretKey.random()
    let perTicket = max(1, records / tickets)
    precondition(orders || perTicket <= Int(HashChain.maxLength), "at most 65536 chain payments per ticket")
    let now: UInt64 = 1_900_000_000
    var ticketRecords: [[UInt8]] = []
    var words: [[Bytes32]] = []
    var chainIDs: [Bytes12] = []
    var sessions: [MACKey] = []
    let customerMAC = MACKey(macOf: .random())
    let generation = ContinuousClock.now
    for n in 0..<tickets {
        let session = SecretKey.random()
        let chainID = Bytes12.random()
        var chain: [Bytes32] = []
        if !orders {
            chain = [Bytes32](repeating: .random(), count: perTicket + 1)
            for i in stride(from: perTicket, through: 1, by: -1) {
                chain[i - 1] = HashChain.step(chainID: chainID, index: UInt32(i), word: chain[i])
            }
        }
        let body = TicketBody(
            customer: 1, limit: orders ? UInt64.max / 2 : UInt64(perTicket), unit: orders ? 0 : 1,
            chainLength: orders ? 0 : UInt32(perTicket), chainID: orders ? Bytes12() : chainID, issued: now,
            expires: now + 3600, root: orders ? Bytes32() : chain[0], sessionKey: session)
        ticketRecords.append(Ticket.seal(body: body, bankID: 7, serial: UInt64(n + 1), merchant: 2002, merchantKey: merchantKey).bytes)
        words.append(chain)
        chainIDs.append(chainID)
        sessions.append(MACKey(macOf: session))
    }
    var setup = BatchFileWriter()
    for t in ticketRecords { try setup.append(t) }
    var writer = BatchFileWriter(reservingCapacity: 4 + records * (orders ? 78 : 54))
    // Round-robin over the tickets: what many customers paying at once look like.
    for round in 1...perTicket {
        for n in 0..<tickets {
            if orders {
                try writer.append(PaymentOrder.make(bankID: 7, serial: UInt64(n + 1), seq: UInt32(round), cumulative: UInt64(round) * 10,
                                                    item: Bytes16(), customerMAC: customerMAC, sessionMAC: sessions[n]).bytes)
            } else {
                try writer.append(ChainPayment(bankID: 7, serial: UInt64(n + 1), index: UInt32(round), word: words[n][round]).encoded())
            }
        }
    }
    print("generated \(writer.recordCount) \(orders ? "orders" : "chain payments") over \(tickets) tickets in \(ContinuousClock.now - generation)")
    let directory = FileManager.default.temporaryDirectory.path
    let batchPath = "\(directory)/micropay-bench-\(getpid()).mpb"
    let dbPath = path ?? "\(directory)/micropay-bench-\(getpid()).sqlite"
    defer {
        try? FileManager.default.removeItem(atPath: batchPath)
        if path == nil { for s in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: dbPath + s) } }
    }
    try writer.write(toFile: batchPath)
    let merchant = try Merchant(bankID: 7, merchant: 2002, merchantKey: merchantKey, store: MerchantStore(path: dbPath))
    let registered = try setup.bytes.withUnsafeBytes { try merchant.verifyBatch($0, now: now) }
    precondition(registered.accepted == tickets)
    print("SHA-256 kernel: \(Engine.activeSHA256Kernel)")
    let started = ContinuousClock.now
    let summary = try merchant.verifyBatch(file: batchPath, now: now, tag: "bench")
    let elapsed = ContinuousClock.now - started
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    print("verified \(summary.records) records (\(summary.accepted) accepted, credited \(summary.credited)) in \(elapsed), commit included")
    print(String(format: "%.0f records/s", Double(summary.records) / seconds))
    return summary.accepted == records ? 0 : 1
}
