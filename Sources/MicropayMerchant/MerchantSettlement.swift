import Foundation
import GRDB
import MicropayCore

/// What applying a Receipt recorded.
public struct ReceiptOutcome: Sendable, Equatable {
    public let batchID: UInt64
    /// What the bank says it credited.
    public let credited: UInt64
    /// What the accepted claims should have credited, from the merchant's own
    /// settled positions: a difference is the bank's to explain.
    public let expectedCredited: UInt64
    /// One code per claim, in claim order.
    public let codes: [Verdict]
    /// The same Receipt had already been applied: nothing changed.
    public let alreadyApplied: Bool
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
        if (stored["settled"] as Int64) != 0 {
            guard (stored["receipt"] as Data?).map(Array.init) == receipt.bytes else { throw .receiptConflict(batchID: batchID) }
            return ReceiptOutcome(batchID: batchID, credited: receipt.credited, expectedCredited: receipt.credited,
                                  codes: receipt.codes, alreadyApplied: true)
        }
        // Settled positions after this Receipt, and what the accepted claims add.
        var settledNow: [UInt64: (position: UInt32, amount: UInt64)] = [:]
        var expected: UInt64 = 0
        for (row, code) in zip(claims, receipt.codes) where code == .accepted {
            let serial = u64(row["serial"])
            let position = UInt32(truncatingIfNeeded: row["claim_position"] as Int64)
            let amount = u64(row["amount"])
            let before = settledNow[serial] ?? tickets[serial].map { ($0.settled, $0.settledAmount) } ?? (0, 0)
            if amount > before.amount { expected &+= amount - before.amount }
            settledNow[serial] = (max(position, before.position), max(amount, before.amount))
        }
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
        return ReceiptOutcome(batchID: batchID, credited: receipt.credited, expectedCredited: expected,
                              codes: receipt.codes, alreadyApplied: false)
    }
}
