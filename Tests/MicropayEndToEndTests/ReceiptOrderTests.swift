import Foundation
import MicropayBank
import MicropayCore
import MicropayCustomer
import MicropayMerchant
import Testing

/// Receipts checked whatever order the bank settled the Deposits in and the
/// merchant applies their Receipts in.
@Suite("Receipts in any order")
struct ReceiptOrderTests {
    let directory: String = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("micropay-receipts-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()
    let issuedAt: UInt64 = 1_900_000_000

    /// Two Deposits on one chain ticket of units of 10: 5 units, then 3 more.
    func twoDeposits() throws -> (Bank, Merchant, SecretKey, Deposit, Deposit) {
        let bank = try Bank.open(ledgerPath: "\(directory)/bank.db", masterKeyPath: "\(directory)/master.key", bankID: 9)
        let c = try bank.openCustomer()
        let m = try bank.openMerchant()
        try bank.fund(customer: c.number, amount: 1_000_000)
        let customer = try Customer.create(walletPath: "\(directory)/wallet.db", bankID: 9, account: c.number, key: c.key)
        let merchant = try Merchant(bankID: 9, merchant: m.number, merchantKey: m.key,
                                    store: try MerchantStore(path: "\(directory)/merchant.db"))
        let issue = try bank.issue(
            request: try customer.requestChainTicket(merchant: m.number, unit: 10, chainLength: 100, lifetime: 3600).bytes, now: issuedAt)
        try customer.accept(envelope: issue.envelope, ticket: issue.ticket)
        #expect(try merchant.verify(issue.ticket.bytes, now: issuedAt) == RecordOutcome(.accepted))
        _ = try merchant.verify(try customer.pay(serial: issue.serial, units: 5).encoded(), now: issuedAt)
        let d1 = try #require(try merchant.makeDeposit(now: issuedAt))
        _ = try merchant.verify(try customer.pay(serial: issue.serial, units: 3).encoded(), now: issuedAt)
        let d2 = try #require(try merchant.makeDeposit(now: issuedAt))
        return (bank, merchant, m.key, d1, d2)
    }

    @Test("a correct bank adds up, and each Deposit is checked once, in every order of settling and applying",
          arguments: [(false, false), (false, true), (true, false), (true, true)])
    func anyOrder(bankSettlesSecondFirst: Bool, appliesSecondFirst: Bool) throws {
        let (bank, merchant, _, d1, d2) = try twoDeposits()
        var receipts: [UInt64: Receipt] = [:]
        for deposit in bankSettlesSecondFirst ? [d2, d1] : [d1, d2] {
            receipts[deposit.batchID] = try bank.settle(deposit: deposit.bytes, now: issuedAt + 10)
        }
        // The bank: d1 then d2 credits 50 + 30; d2 then d1 credits 80, and d1 is a replay.
        #expect(receipts[d1.batchID]!.credited == (bankSettlesSecondFirst ? 0 : 50))
        #expect(receipts[d2.batchID]!.credited == (bankSettlesSecondFirst ? 80 : 30))
        var checked: [UInt64: Int] = [:]
        for deposit in appliesSecondFirst ? [d2, d1] : [d1, d2] {
            let outcome = try merchant.applyReceipt(receipts[deposit.batchID]!.bytes)
            #expect(outcome.addsUp, "batch \(deposit.batchID): \(outcome)")
            if let expected = outcome.expectedCredited {
                #expect(expected == outcome.credited)
                checked[deposit.batchID, default: 0] += 1
            } else {
                #expect(outcome.waitingFor == [d1.batchID])
            }
            for check in outcome.rechecked {
                #expect(check.credited == check.expectedCredited)
                checked[check.batchID, default: 0] += 1
            }
        }
        #expect(checked == [d1.batchID: 1, d2.batchID: 1])
        #expect(merchant.ticketStates.first?.settledAmount == 80)
    }

    @Test("a bank that credits a later Deposit wrongly is caught when the earlier Receipt comes in")
    func wrongCreditCaughtLater() throws {
        let (bank, merchant, key, d1, d2) = try twoDeposits()
        let r1 = try bank.settle(deposit: d1.bytes, now: issuedAt + 10)
        let r2 = try bank.settle(deposit: d2.bytes, now: issuedAt + 10)
        // As if the bank had credited d2 in full although it settled d1 first.
        let wrong = Receipt.make(answering: d2, codes: r2.codes, credited: 80, merchantMAC: MACKey(macOf: key))
        let first = try merchant.applyReceipt(wrong.bytes)
        #expect(first.expectedCredited == nil && first.addsUp)
        let second = try merchant.applyReceipt(r1.bytes)
        #expect(second.expectedCredited == 50)
        #expect(second.rechecked.map { [$0.batchID, $0.credited, $0.expectedCredited] } == [[d2.batchID, 80, 30]])
        #expect(!second.addsUp)
    }
}
