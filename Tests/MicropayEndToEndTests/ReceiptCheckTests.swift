import Foundation
import MicropayBank
import MicropayCore
import MicropayCustomer
import MicropayMerchant
import Testing

/// apply-receipt's check of the bank's credits against a model: random
/// Deposits over chain and order tickets, a bank (the real one, or a §9.3
/// model that also refuses claims) settling a random subset in random
/// order, Receipts applied in random order (some twice), one credit
/// optionally falsified. (Written by a review of the check, kept as its test.)
extension SplitMix64 {
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func bool(_ percent: Int) -> Bool { int(100) < percent }
}

struct FuzzStats: CustomStringConvertible {
    var runs = 0, deposits = 0, applied = 0, checked = 0, falseAlarms = 0, missedWrong = 0, caughtWrong = 0
    var doubleChecks = 0, neverCheckedDeterminable = 0, neverCheckedWrong = 0, wrongUnreportedButDecidable = 0
    var checkedTooEarlyWrongly = 0, settledMismatch = 0
    var description: String {
        "runs \(runs) deposits \(deposits) applied \(applied) checked \(checked) falseAlarms \(falseAlarms) "
            + "caughtWrong \(caughtWrong) missedWrong(checked but equal) \(missedWrong) doubleChecks \(doubleChecks) "
            + "neverChecked-but-determinable \(neverCheckedDeterminable) neverChecked-wrong \(neverCheckedWrong) "
            + "wrong-unreported-but-provably-wrong-now \(wrongUnreportedButDecidable) settledMismatch \(settledMismatch)"
    }
}

@Suite("Receipts applied in any order: the credit checks against a model", .serialized)
struct ReceiptCheckModelTests {
    let issuedAt: UInt64 = 1_900_000_000

    struct ClaimInfo { let serial: UInt64; let position: UInt32; let amount: UInt64 }

    func run(seed: UInt64, modelBank: Bool, falsify: Bool, stats: inout FuzzStats) throws {
        var rng = SplitMix64(seed: seed)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mp-fuzz-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bank = try Bank.open(ledgerPath: "\(dir)/bank.db", masterKeyPath: "\(dir)/master.key", bankID: 9)
        let c = try bank.openCustomer()
        let m = try bank.openMerchant()
        try bank.fund(customer: c.number, amount: 100_000_000)
        let customer = try Customer.create(walletPath: "\(dir)/wallet.db", bankID: 9, account: c.number, key: c.key)
        let merchant = try Merchant(bankID: 9, merchant: m.number, merchantKey: m.key,
                                    store: try MerchantStore(path: "\(dir)/merchant.db"))
        let mac = MACKey(macOf: m.key)
        var units: [UInt64: UInt64] = [:]  // chain serial -> unit; order serial absent
        var serials: [UInt64] = []
        for _ in 0..<(2 + rng.int(3)) {
            let chain = rng.bool(60)
            let req = chain
                ? try customer.requestChainTicket(merchant: m.number, unit: UInt64(1 + rng.int(9)), chainLength: 200, lifetime: 3600)
                : try customer.requestOrderTicket(merchant: m.number, limit: 100_000, lifetime: 3600)
            let issue = try bank.issue(request: req.bytes, now: issuedAt)
            _ = try customer.accept(envelope: issue.envelope, ticket: issue.ticket)
            #expect(try merchant.verify(issue.ticket.bytes, now: issuedAt) == RecordOutcome(.accepted))
            serials.append(issue.serial)
            if chain { units[issue.serial] = merchant.ticketStates.first { $0.serial == issue.serial }!.unit }
        }
        var deposits: [Deposit] = []
        var claimsOf: [UInt64: [ClaimInfo]] = [:]
        for _ in 0..<(3 + rng.int(4)) {
            for s in serials where rng.bool(60) {
                if units[s] != nil {
                    _ = try merchant.verify(try customer.pay(serial: s, units: UInt32(1 + rng.int(5))).encoded(), now: issuedAt)
                } else {
                    let amount = rng.bool(20) ? 0 : UInt64(1 + rng.int(100))
                    _ = try merchant.verify(try customer.payOrder(serial: s, amount: amount, item: Bytes16()).encoded(), now: issuedAt)
                }
            }
            guard let d = try merchant.makeDeposit(now: issuedAt) else { continue }
            deposits.append(d)
            claimsOf[d.batchID] = d.claims.map { cl in
                switch cl {
                case .chain(let p): ClaimInfo(serial: p.serial, position: p.index, amount: UInt64(p.index) * units[p.serial]!)
                case .order(let o): ClaimInfo(serial: o.serial, position: o.seq, amount: o.cumulative)
                }
            }
        }
        stats.runs += 1
        stats.deposits += deposits.count
        // The bank settles a random subset in random order.
        let settleOrder = deposits.shuffled(using: &rng).filter { _ in rng.bool(85) }
        var receipts: [UInt64: Receipt] = [:]
        var trueCredit: [UInt64: UInt64] = [:]
        if modelBank {
            var pos: [UInt64: (UInt32, UInt64)] = [:]
            var closed: Set<UInt64> = []
            for d in settleOrder {
                var codes: [Verdict] = []
                var credited: UInt64 = 0
                for ci in claimsOf[d.batchID]! {
                    if !closed.contains(ci.serial) && rng.bool(8) { closed.insert(ci.serial) }  // expires / disputed from now on
                    let (sp, sa) = pos[ci.serial] ?? (0, 0)
                    if closed.contains(ci.serial) { codes.append(rng.bool(50) ? .expired : .badMAC); continue }
                    if ci.position <= sp { codes.append(.replay); continue }
                    if ci.amount < sa { codes.append(.decreasingAmount); continue }
                    codes.append(.accepted)
                    credited += ci.amount - sa
                    pos[ci.serial] = (ci.position, ci.amount)
                }
                trueCredit[d.batchID] = credited
                receipts[d.batchID] = Receipt.make(answering: d, codes: codes, credited: credited, merchantMAC: mac)
            }
        } else {
            for d in settleOrder {
                let late = rng.bool(10)
                let r = try bank.settle(deposit: d.bytes, now: late ? issuedAt + 3600 + 86400 + 1 : issuedAt + 10)
                receipts[d.batchID] = r
                trueCredit[d.batchID] = r.credited
            }
        }
        var wrongBatch: UInt64?
        if falsify, let victim = settleOrder.randomElement(using: &rng) {
            let r = receipts[victim.batchID]!
            let bad = rng.bool(50) ? r.credited + 1 : (r.credited > 0 ? r.credited - 1 : r.credited + 7)
            receipts[victim.batchID] = Receipt.make(answering: victim, codes: r.codes, credited: bad, merchantMAC: mac)
            wrongBatch = victim.batchID
        }
        // The merchant applies a random subset (sometimes not all) in random order, some twice.
        var applyOrder = settleOrder.shuffled(using: &rng).filter { _ in rng.bool(90) }
        if let again = applyOrder.first, rng.bool(30) { applyOrder.append(again) }
        var checks: [UInt64: [(UInt64, UInt64)]] = [:]
        var applied = Set<UInt64>()
        for d in applyOrder {
            let o = try merchant.applyReceipt(receipts[d.batchID]!.bytes)
            if !o.alreadyApplied {
                applied.insert(d.batchID)
                stats.applied += 1
                if let e = o.expectedCredited { checks[d.batchID, default: []].append((o.credited, e)) }
            }
            for rc in o.rechecked { checks[rc.batchID, default: []].append((rc.credited, rc.expectedCredited)) }
        }
        // Judge: what the merchant could know now.
        let codesOf = { (b: UInt64) in receipts[b]!.codes }
        for d in deposits where applied.contains(d.batchID) {
            let b = d.batchID
            let list = checks[b] ?? []
            if list.count > 1 { stats.doubleChecks += 1 }
            let isWrong = b == wrongBatch
            if let (cr, ex) = list.first {
                stats.checked += 1
                if !isWrong && cr != ex { stats.falseAlarms += 1; print("FALSE ALARM seed \(seed) batch \(b) credited \(cr) expected \(ex)") }
                if isWrong && cr == ex { stats.missedWrong += 1; print("MISSED seed \(seed) batch \(b)") }
                if isWrong && cr != ex { stats.caughtWrong += 1 }
                if ex != trueCredit[b]! { stats.checkedTooEarlyWrongly += 1; print("WRONG EXPECTATION seed \(seed) batch \(b) \(ex) vs true \(trueCredit[b]!)") }
            } else {
                // Not checked: was it determinable (no unapplied claim between the best known accepted claim below and it)?
                var determinable = true
                var lo: UInt64 = 0, hi: UInt64 = 0  // range of possible expected credit
                for (n, ci) in claimsOf[b]!.enumerated() where codesOf(b)[n] == .accepted {
                    var known: (UInt32, UInt64) = (0, 0)
                    var pendingAbove: [ClaimInfo] = []
                    for other in deposits where other.batchID != b {
                        for (k, oc) in claimsOf[other.batchID]!.enumerated() where oc.serial == ci.serial && oc.position < ci.position {
                            if applied.contains(other.batchID) {
                                if codesOf(other.batchID)[k] == .accepted && oc.position >= known.0 { known = (oc.position, oc.amount) }
                            } else { pendingAbove.append(oc) }
                        }
                    }
                    let relevant = pendingAbove.filter { $0.position > known.0 }
                    if !relevant.isEmpty { determinable = false }
                    let maxBase = relevant.map(\.amount).max().map { max($0, known.1) } ?? known.1
                    hi += ci.amount - min(ci.amount, known.1)
                    lo += ci.amount - min(ci.amount, maxBase)
                }
                if determinable { stats.neverCheckedDeterminable += 1; if stats.neverCheckedDeterminable < 3 { print("UNNEEDED WAIT seed \(seed) batch \(b)") } }
                // All deposits claiming lower on its accepted serials applied: the code's own rule says checked.
                var allBelowApplied = true
                for (n, ci) in claimsOf[b]!.enumerated() where codesOf(b)[n] == .accepted {
                    for other in deposits where other.batchID != b && !applied.contains(other.batchID) {
                        if claimsOf[other.batchID]!.contains(where: { $0.serial == ci.serial && $0.position < ci.position }) { allBelowApplied = false }
                    }
                }
                if allBelowApplied { stats.settledMismatch += 1000; print("NEVER CHECKED THOUGH ALL BELOW APPLIED seed \(seed) batch \(b)") }
                if isWrong {
                    stats.neverCheckedWrong += 1
                    let cr = receipts[b]!.credited
                    if cr < lo || cr > hi { stats.wrongUnreportedButDecidable += 1; print("PROVABLY WRONG, UNREPORTED seed \(seed) batch \(b) credited \(cr) possible [\(lo), \(hi)]") }
                }
            }
        }
        // Settled positions: the highest accepted claim among applied Receipts.
        for s in serials {
            var best: (UInt32, UInt64) = (0, 0)
            for b in applied { for (n, ci) in claimsOf[b]!.enumerated() where ci.serial == s && codesOf(b)[n] == .accepted && ci.position > best.0 { best = (ci.position, ci.amount) } }
            let st = merchant.ticketStates.first { $0.serial == s }!
            if st.settled != best.0 || st.settledAmount != best.1 { stats.settledMismatch += 1 }
        }
    }

    @Test("no false alarm, no wrong expectation, each Deposit checked once as soon as its credit is known")
    func againstTheModel() throws {
        let n = Int(ProcessInfo.processInfo.environment["RECEIPT_MODEL_RUNS"] ?? "20")!
        for (model, falsify) in [(true, false), (false, false), (true, true), (false, true)] {
            var stats = FuzzStats()
            for seed in 0..<UInt64(n) { try run(seed: seed &* 7919 &+ 1, modelBank: model, falsify: falsify, stats: &stats) }
            let setting = "model bank \(model), one credit falsified \(falsify): \(stats)"
            #expect(stats.checked > 0 && stats.falseAlarms == 0 && stats.missedWrong == 0, "\(setting)")
            #expect(stats.checkedTooEarlyWrongly == 0 && stats.doubleChecks == 0, "\(setting)")
            #expect(stats.neverCheckedDeterminable == 0 && stats.settledMismatch == 0, "\(setting)")
            if falsify { #expect(stats.caughtWrong > 0, "\(setting)") }
        }
    }
}

@Suite("Receipts applied in any order: cases")
struct ReceiptCheckCases {
    let issuedAt: UInt64 = 1_900_000_000
    /// One chain ticket of 100 words of 10, and one Deposit after each payment
    /// of `units`: the bank, the merchant, the Deposits and K_M's MAC.
    func depositsOnOneTicket(_ units: [UInt32]) throws -> (Bank, Merchant, [Deposit], MACKey) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mp-receipts-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let bank = try Bank.open(ledgerPath: "\(dir)/bank.db", masterKeyPath: "\(dir)/master.key", bankID: 9)
        let c = try bank.openCustomer(), m = try bank.openMerchant()
        try bank.fund(customer: c.number, amount: 1_000_000)
        let customer = try Customer.create(walletPath: "\(dir)/wallet.db", bankID: 9, account: c.number, key: c.key)
        let merchant = try Merchant(bankID: 9, merchant: m.number, merchantKey: m.key, store: try MerchantStore(path: "\(dir)/merchant.db"))
        let request = try customer.requestChainTicket(merchant: m.number, unit: 10, chainLength: 100, lifetime: 3600)
        let issue = try bank.issue(request: request.bytes, now: issuedAt)
        _ = try customer.accept(envelope: issue.envelope, ticket: issue.ticket)
        _ = try merchant.verify(issue.ticket.bytes, now: issuedAt)
        let deposits = try units.map { u in
            _ = try merchant.verify(try customer.pay(serial: issue.serial, units: u).encoded(), now: issuedAt)
            return try #require(try merchant.makeDeposit(now: issuedAt))
        }
        return (bank, merchant, deposits, MACKey(macOf: m.key))
    }

    @Test("a pending Deposit below an applied accepted claim does not hold up the check above it")
    func noWaitBelowTheBaseline() throws {
        let (bank, merchant, ds, mac) = try depositsOnOneTicket([5, 3, 2])
        let rs = try ds.map { try bank.settle(deposit: $0.bytes, now: issuedAt + 10) }
        #expect(rs.map(\.credited) == [50, 30, 20])
        // A wrong bank: D3 credited 100 (its claim is worth at most 100 over nothing; the true credit is 20).
        let wrong3 = Receipt.make(answering: ds[2], codes: rs[2].codes, credited: 1000, merchantMAC: mac)
        let o2 = try merchant.applyReceipt(rs[1].bytes)
        #expect(o2.expectedCredited == nil && o2.waitingFor == [ds[0].batchID], "D2's baseline is D1's claim, still pending")
        // R1 never applied (lost, or its Deposit refused whole): D2's accepted claim still fixes D3's baseline.
        let o3 = try merchant.applyReceipt(wrong3.bytes)
        #expect(o3.expectedCredited == 20 && o3.waitingFor.isEmpty && !o3.addsUp)
    }
}

extension ReceiptCheckCases {
    @Test("a wrong credit found by a later Receipt is found again when its own Receipt is applied again")
    func reappliedReceiptIsCheckedAgain() throws {
        let (bank, merchant, ds, mac) = try depositsOnOneTicket([5, 3])
        let rs = try ds.map { try bank.settle(deposit: $0.bytes, now: issuedAt + 10) }
        let wrong2 = Receipt.make(answering: ds[1], codes: rs[1].codes, credited: 80, merchantMAC: mac)
        let a = try merchant.applyReceipt(wrong2.bytes)
        let b = try merchant.applyReceipt(rs[0].bytes)
        #expect(a.expectedCredited == nil && a.addsUp, "D2 waits for D1")
        #expect(b.rechecked.map { [$0.batchID, $0.credited, $0.expectedCredited] } == [[ds[1].batchID, 80, 30]] && !b.addsUp)
        // Applied again, the Receipt is checked again, not taken at its word.
        let again = try merchant.applyReceipt(wrong2.bytes)
        #expect(again.alreadyApplied && again.expectedCredited == 30 && !again.addsUp)
    }
}
