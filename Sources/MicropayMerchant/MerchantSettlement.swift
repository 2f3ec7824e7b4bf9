import Foundation
import GRDB
import MicropayCore

/// What applying a Receipt recorded.
public struct ReceiptOutcome: Sendable, Equatable {
    public let batchID: UInt64
    /// What the bank says it credited.
    public let credited: UInt64
    /// What the accepted claims should have credited: a difference is the
    /// bank's to explain. Nil while it cannot be known: an earlier Deposit
    /// claiming one of the same tickets lower down is still pending
    /// (`waitingFor`), and the bank may have settled it first.
    public let expectedCredited: UInt64?
    /// One code per claim, in claim order.
    public let codes: [Verdict]
    /// The same Receipt had already been applied: nothing changed.
    public let alreadyApplied: Bool
    /// The pending Deposits whose Receipts decide `expectedCredited`.
    public let waitingFor: [UInt64]
    /// Deposits applied before this Receipt whose expectation waited for it,
    /// checked now.
    public let rechecked: [DepositCheck]

    /// The outcome of applying `receipt`: `expected` stands only if nothing is waited for.
    init(_ receipt: Receipt, alreadyApplied: Bool, expected: UInt64, waitingFor: [UInt64], rechecked: [DepositCheck]) {
        batchID = receipt.batchID
        credited = receipt.credited
        expectedCredited = waitingFor.isEmpty ? expected : nil
        codes = receipt.codes
        self.alreadyApplied = alreadyApplied
        self.waitingFor = waitingFor
        self.rechecked = rechecked
    }

    /// Every credit that can be checked now is what the claims add up to.
    public var addsUp: Bool {
        (expectedCredited.map { $0 == credited } ?? true) && rechecked.allSatisfy { $0.credited == $0.expectedCredited }
    }
}

/// A settled Deposit's credit against what its accepted claims should have credited.
public struct DepositCheck: Sendable, Equatable {
    public let batchID: UInt64
    public let credited: UInt64
    public let expectedCredited: UInt64
}

/// One claim of a Deposit, as far as its expected credit goes.
private struct ClaimFact {
    let batch: UInt64
    let serial: UInt64
    let position: UInt32
    let amount: UInt64
    var accepted: Bool
    var settled: Bool
}

extension ClaimFact {
    /// A stored claim from a row of `c.batch_id, c.serial, c.claim_position,
    /// c.amount, c.result` (deposit_claim), accepted if its result says so.
    init(claim row: Row, settled: Bool) {
        self.init(batch: u64(row[0]), serial: u64(row[1]), position: UInt32(truncatingIfNeeded: row[2] as Int64),
                  amount: u64(row[3]), accepted: (row[4] as Int64?) == Int64(Verdict.accepted.rawValue), settled: settled)
    }
}

extension Merchant {
    /// A Deposit (§9.1) of the best unsettled claim per serial — the last
    /// accepted payment on each ticket beyond what an earlier Deposit claimed —
    /// in serial order, recorded as pending together with the new claimed
    /// positions in one transaction. Nil when there is nothing to claim.
    ///
    /// `batchID` nil picks one above every batch id used so far. With `now`,
    /// tickets past `expires + grace` are left out (the bank would answer `expired`).
    public func makeDeposit(batchID: UInt64? = nil, now: UInt64? = nil, grace: UInt64 = 86400) throws(MerchantError) -> Deposit? {
        try checkUsable()
        if let batchID {
            let used = try store.read { db in
                try Bool.fetchOne(db, sql: "SELECT 1 FROM deposit WHERE batch_id = ?", arguments: [i64(batchID)]) ?? false
            }
            guard !used else { throw .batchIDInUse(batchID) }
        }
        var claims: [(entry: TicketEntry, claim: Deposit.Claim, position: UInt32, amount: UInt64)] = []
        for entry in tickets.values.sorted(by: { $0.serial < $1.serial }) {
            if let now {
                let (deadline, overflow) = entry.expires.addingReportingOverflow(grace)
                if !overflow && now > deadline { continue }
            }
            guard let best = entry.lastAcceptedClaim(bankID: bankID), best.position > entry.claimed else { continue }
            claims.append((entry, best.claim, best.position, best.amount))
        }
        guard !claims.isEmpty else { return nil }
        let chosen: UInt64
        if let batchID {
            chosen = batchID
        } else {
            let highest = try store.read { db in
                try Int64.fetchOne(db, sql: "SELECT MAX(batch_id) FROM deposit")
            }
            chosen = highest.map { u64($0) &+ 1 } ?? 1
        }
        let deposit = Deposit.make(
            bankID: bankID, batchID: chosen, merchant: merchantNumber, claims: claims.map(\.claim), merchantMAC: merchantMAC)
        willChangeEntries()
        for c in claims {
            c.entry.claimed = c.position
            markDirty(c.entry)
        }
        try commit(log: nil) { db in
            try db.execute(sql: "INSERT INTO deposit (batch_id, bytes, digest) VALUES (?, ?, ?)",
                           arguments: [i64(chosen), Data(deposit.bytes), deposit.digest.data])
            let insertClaim = try db.cachedStatement(sql: """
                INSERT INTO deposit_claim (batch_id, position, bank_id, serial, kind, claim_position, amount)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
            for (n, c) in claims.enumerated() {
                try insertClaim.execute(arguments: [
                    i64(chosen), n, Int64(self.bankID), i64(c.entry.serial), Int64(c.claim.kind.rawValue),
                    Int64(c.position), i64(c.amount),
                ])
            }
        }
        return deposit
    }

    /// Deposits sent and not yet answered, by batch id: re-send them as they are.
    public func pendingDeposits() throws(MerchantError) -> [Deposit] {
        let blobs = try store.read { db in
            try Data.fetchAll(db, sql: "SELECT bytes FROM deposit WHERE settled = 0 ORDER BY batch_id")
        }
        return blobs.compactMap { try? Deposit(decoding: Array($0)) }
    }

    /// The batch ids of the Deposits made and not yet answered by an applied Receipt, in order.
    public func pendingBatchIDs() throws(MerchantError) -> [UInt64] {
        try store.read { db in
            try Int64.fetchAll(db, sql: "SELECT batch_id FROM deposit WHERE settled = 0 ORDER BY batch_id").map { u64($0) }
        }
    }

    /// The pending Deposit `batchID` exactly as it was made and recorded, to
    /// send again (a Deposit whose file was lost is otherwise stranded: its
    /// claims are no longer "unclaimed"). The bank answers an identical
    /// Deposit with the Receipt it already issued (§9.2), so re-sending is safe.
    public func pendingDepositBytes(batchID: UInt64) throws(MerchantError) -> [UInt8] {
        let row = try store.read { db in
            try Row.fetchOne(db, sql: "SELECT bytes, settled FROM deposit WHERE batch_id = ?", arguments: [i64(batchID)])
        }
        guard let row else { throw .unknownDeposit(batchID: batchID) }
        guard (row["settled"] as Int64) == 0 else { throw .depositAlreadySettled(batchID: batchID) }
        return Array(row["bytes"] as Data)
    }

    /// Applies the bank's Receipt (§9.6): its tag under mac(K_M), its bank
    /// and merchant, the pending Deposit it answers and that Deposit's
    /// digest, then records each claim's result and the settled positions,
    /// in one transaction. The same Receipt again changes nothing.
    public func applyReceipt(_ bytes: [UInt8]) throws(MerchantError) -> ReceiptOutcome {
        try checkUsable()
        let receipt: Receipt
        do { receipt = try Receipt(decoding: bytes) } catch { throw .malformedReceipt(error) }
        guard receipt.hasValidTag(merchantMAC: merchantMAC) else { throw .receiptTagInvalid }
        guard receipt.bankID == bankID, receipt.merchant == merchantNumber else {
            throw .receiptForAnotherMerchant(bankID: receipt.bankID, merchant: receipt.merchant)
        }
        let batchID = receipt.batchID
        let stored = try store.read { db in
            try Row.fetchOne(db, sql: "SELECT bytes, digest, settled, receipt FROM deposit WHERE batch_id = ?",
                             arguments: [i64(batchID)])
        }
        guard let stored else { throw .unknownDeposit(batchID: batchID) }
        guard Bytes16(data: stored["digest"]) == receipt.depositDigest else { throw .receiptDigestMismatch(batchID: batchID) }
        let claims = try store.read { db in
            try Row.fetchAll(db, sql: """
                SELECT serial, claim_position, amount, result FROM deposit_claim WHERE batch_id = ? ORDER BY position
                """, arguments: [i64(batchID)])
        }
        guard claims.count == receipt.codes.count else {
            throw .receiptCountMismatch(batchID: batchID, claims: claims.count, codes: receipt.codes.count)
        }
        let facts = claims.enumerated().map { n, row in
            ClaimFact(batch: batchID, serial: u64(row["serial"]),
                      position: UInt32(truncatingIfNeeded: row["claim_position"] as Int64), amount: u64(row["amount"]),
                      accepted: receipt.codes[n] == .accepted, settled: true)
        }
        if (stored["settled"] as Int64) != 0 {
            guard (stored["receipt"] as Data?).map(Array.init) == receipt.bytes else { throw .receiptConflict(batchID: batchID) }
            // Checked again from every claim known now: a mismatch found when a
            // later Receipt completed the check is found again here.
            let known = try claimFacts(serials: Set(facts.map(\.serial)), replacing: facts)
            let (expected, waiting) = Self.expectation(of: facts, others: known)
            return ReceiptOutcome(receipt, alreadyApplied: true, expected: expected, waitingFor: waiting, rechecked: [])
        }
        // Settled positions after this Receipt.
        var settledNow: [UInt64: (position: UInt32, amount: UInt64)] = [:]
        for fact in facts where fact.accepted {
            let before = settledNow[fact.serial] ?? tickets[fact.serial].map { ($0.settled, $0.settledAmount) } ?? (0, 0)
            settledNow[fact.serial] = (max(fact.position, before.position), max(fact.amount, before.amount))
        }
        let (expected, waiting, rechecked) = try expectations(for: facts, credited: receipt.credited)
        willChangeEntries()
        for (serial, s) in settledNow {
            guard let entry = tickets[serial] else { continue }
            entry.settled = s.position
            entry.settledAmount = s.amount
            markDirty(entry)
        }
        try commit(log: nil) { db in
            let result = try db.cachedStatement(sql: "UPDATE deposit_claim SET result = ? WHERE batch_id = ? AND position = ?")
            for (n, code) in receipt.codes.enumerated() {
                try result.execute(arguments: [Int64(code.rawValue), i64(batchID), n])
            }
            try db.execute(sql: "UPDATE deposit SET settled = 1, receipt = ?, credited = ? WHERE batch_id = ?",
                           arguments: [Data(receipt.bytes), i64(receipt.credited), i64(batchID)])
        }
        return ReceiptOutcome(receipt, alreadyApplied: false, expected: expected, waitingFor: waiting, rechecked: rechecked)
    }

    // What the bank should have credited. The bank credits an accepted claim
    // with its amount over the bank's own settled position for the serial when
    // it judged it (§9.3), and it may settle our Deposits in any order: neither
    // the order Receipts are applied in nor the order the Deposits were made
    // tells what that position was (d1 then d2 credits 5 + 3; d2 then d1, 8 and
    // a replay). What does: the claims a bank accepts on a serial rise in
    // position in the order it settled them, so a claim's baseline is the
    // highest *accepted* claim below it on its serial, from any Deposit. That is
    // known once every Deposit claiming the serial below it has its Receipt
    // applied; until then the expectation waits, and the Receipt that settles
    // the last of them checks the Deposits applied before it (`rechecked`).

    /// The expectation for the Deposit `facts` (being applied, not yet
    /// committed), the pending batches it waits for, and the checks it makes
    /// possible for Deposits applied earlier.
    private func expectations(for facts: [ClaimFact], credited: UInt64) throws(MerchantError)
        -> (expected: UInt64, waiting: [UInt64], rechecked: [DepositCheck])
    {
        guard let batchID = facts.first?.batch else { return (0, [], []) }
        // Usually the Receipts come in order: every settled claim on a serial lies
        // below this Deposit's, the ticket's settled position is the baseline, and
        // only the pending Deposits' claims need reading.
        let inOrder = facts.allSatisfy { (tickets[$0.serial]?.settled ?? 0) < $0.position }
        if inOrder {
            // Only this Receipt's tickets: the next day's Deposit may hold a claim on every ticket.
            let serials = Set(facts.map(\.serial))
            var others: [UInt64: [ClaimFact]] = [:]
            try store.read { db in
                let rows = try Row.fetchCursor(db, sql: """
                    SELECT c.batch_id, c.serial, c.claim_position FROM deposit d JOIN deposit_claim c ON c.batch_id = d.batch_id
                    WHERE d.settled = 0 AND d.batch_id != ?
                    """, arguments: [i64(batchID)])
                while let row = try rows.next() {
                    let serial = u64(row[1])
                    guard serials.contains(serial) else { continue }
                    others[serial, default: []].append(ClaimFact(
                        batch: u64(row[0]), serial: serial, position: UInt32(truncatingIfNeeded: row[2] as Int64),
                        amount: 0, accepted: false, settled: false))
                }
            }
            for fact in facts {
                guard let entry = tickets[fact.serial] else { continue }
                others[fact.serial, default: []].append(ClaimFact(batch: batchID, serial: fact.serial, position: entry.settled,
                                                                  amount: entry.settledAmount, accepted: true, settled: true))
            }
            let (expected, waiting) = Self.expectation(of: facts, others: others)
            return (expected, waiting, [])
        }
        // Some Receipt for a claim above this Deposit's was applied first: read
        // every claim on these serials, then check the Deposits it may have waited for.
        let serials = Set(facts.map(\.serial))
        var known = try claimFacts(serials: serials, replacing: facts)
        let (expected, waiting) = Self.expectation(of: facts, others: known)
        var later = Set<UInt64>()
        for fact in facts {
            for other in known[fact.serial] ?? [] where other.batch != batchID && other.settled && other.accepted && other.position > fact.position {
                later.insert(other.batch)
            }
        }
        guard !later.isEmpty else { return (expected, waiting, []) }
        let laterFacts = try store.read { db in
            try Row.fetchAll(db, sql: """
                SELECT c.batch_id, c.serial, c.claim_position, c.amount, c.result, d.credited
                FROM deposit_claim c JOIN deposit d ON d.batch_id = c.batch_id
                WHERE c.batch_id IN (\(later.map { _ in "?" }.joined(separator: ",")))
                """, arguments: StatementArguments(later.map { i64($0) }))
        }
        var credits: [UInt64: UInt64] = [:]
        var byBatch: [UInt64: [ClaimFact]] = [:]
        for row in laterFacts {
            let fact = ClaimFact(claim: row, settled: true)
            credits[fact.batch] = u64(row[5])
            byBatch[fact.batch, default: []].append(fact)
        }
        // Their other tickets' claims too: one more pass over the claims, only if they have any.
        let laterSerials = Set(byBatch.values.joined().map(\.serial))
        if !laterSerials.isSubset(of: serials) {
            known = try claimFacts(serials: serials.union(laterSerials), replacing: facts)
        }
        // As they were before this Receipt: this Deposit pending.
        var before = known
        for (serial, list) in before {
            before[serial] = list.map { fact in
                var fact = fact
                if fact.batch == batchID { (fact.accepted, fact.settled) = (false, false) }
                return fact
            }
        }
        var rechecked: [DepositCheck] = []
        for (batch, claims) in byBatch.sorted(by: { $0.key < $1.key }) {
            // Only a Deposit that waited for this one: any other was checked already.
            guard Self.expectation(of: claims, others: before).1.contains(batchID) else { continue }
            let (laterExpected, laterWaiting) = Self.expectation(of: claims, others: known)
            guard laterWaiting.isEmpty else { continue }
            rechecked.append(DepositCheck(batchID: batch, credited: credits[batch] ?? 0, expectedCredited: laterExpected))
        }
        return (expected, waiting, rechecked)
    }

    /// Every claim on `serials` from every Deposit, with the Deposit being
    /// applied taken as settled with its Receipt's codes (`replacing`).
    private func claimFacts(serials: Set<UInt64>, replacing current: [ClaimFact]) throws(MerchantError) -> [UInt64: [ClaimFact]] {
        let batchID = current.first?.batch
        var facts: [UInt64: [ClaimFact]] = [:]
        try store.read { db in
            let rows = try Row.fetchCursor(db, sql: """
                SELECT c.batch_id, c.serial, c.claim_position, c.amount, c.result, d.settled
                FROM deposit_claim c JOIN deposit d ON d.batch_id = c.batch_id
                """)
            while let row = try rows.next() {
                let serial = u64(row[1])
                guard serials.contains(serial), u64(row[0]) != batchID else { continue }
                facts[serial, default: []].append(ClaimFact(claim: row, settled: (row[5] as Int64) != 0))
            }
        }
        for fact in current where serials.contains(fact.serial) { facts[fact.serial, default: []].append(fact) }
        return facts
    }

    /// What `claims` (one Deposit's) should have been credited against the
    /// other Deposits' claims `others`, and the pending batches that decide it.
    private static func expectation(of claims: [ClaimFact], others: [UInt64: [ClaimFact]]) -> (UInt64, [UInt64]) {
        var expected: UInt64 = 0
        var waiting = Set<UInt64>()
        for claim in claims where claim.accepted {
            // (A Deposit claims a serial once: its own claim is not below itself.)
            let below = (others[claim.serial] ?? []).filter { $0.position < claim.position }
            var baseline: (position: UInt32, amount: UInt64) = (0, 0)
            for other in below where other.settled && other.accepted && other.position >= baseline.position {
                baseline = (other.position, other.amount)
            }
            // A pending claim at or below the baseline cannot raise it: the bank,
            // accepting the baseline's claim, had settled nothing above it.
            for other in below where !other.settled && other.position > baseline.position { waiting.insert(other.batch) }
            expected &+= claim.amount - min(claim.amount, baseline.amount)
        }
        return (expected, waiting.sorted())
    }
}
