import Foundation
import MicropayBank
import MicropayCore
import MicropayCustomer
import MicropayMerchant
import Testing

/// Money moves end to end through the three roles, each on its own durable
/// store: a customer buys tickets in both modes, pays with chain words and
/// orders, buys goods; the merchant verifies, deposits and applies the
/// receipt; the bank settles and refunds; every balance is as computed by hand.
@Suite("End to end")
struct EndToEndTests {
    let directory: String = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("micropay-e2e-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    @Test("tickets in both modes, payments, goods, deposit, settlement and refund")
    func wholeDay() throws {
        let issuedAt: UInt64 = 1_900_000_000
        let bank = try Bank.open(ledgerPath: "\(directory)/bank.db", masterKeyPath: "\(directory)/master.key", bankID: 9)
        let customerAccount = try bank.openCustomer()
        let merchantAccount = try bank.openMerchant()
        try bank.fund(customer: customerAccount.number, amount: 1_000_000)

        let customer = try Customer.create(walletPath: "\(directory)/wallet.db", bankID: 9,
                                           account: customerAccount.number, key: customerAccount.key)
        let merchant = try Merchant(bankID: 9, merchant: merchantAccount.number, merchantKey: merchantAccount.key,
                                    store: try MerchantStore(path: "\(directory)/merchant.db"))

        // Tickets: a chain of 100 words of 10, and orders up to 50 000.
        let chainIssue = try bank.issue(
            request: try customer.requestChainTicket(merchant: merchantAccount.number, unit: 10, chainLength: 100, lifetime: 3600).bytes,
            now: issuedAt)
        let orderIssue = try bank.issue(
            request: try customer.requestOrderTicket(merchant: merchantAccount.number, limit: 50_000, lifetime: 3600).bytes,
            now: issuedAt)
        try customer.accept(envelope: chainIssue.envelope, ticket: chainIssue.ticket)
        try customer.accept(envelope: orderIssue.envelope, ticket: orderIssue.ticket)
        #expect(try bank.balance(of: customerAccount.number) == 1_000_000 - 1000 - 50_000)

        // The customer forwards the tickets and pays; the merchant verifies each record.
        let now = issuedAt + 60
        #expect(try merchant.verify(chainIssue.ticket.bytes, now: now) == RecordOutcome(.accepted))
        #expect(try merchant.verify(orderIssue.ticket.bytes, now: now) == RecordOutcome(.accepted))
        var merchantSaw: UInt64 = 0
        for units: UInt32 in [1, 1, 5, 23] {
            let payment = try customer.pay(serial: chainIssue.serial, units: units)
            let outcome = try merchant.verify(payment.encoded(), now: now)
            #expect(outcome == RecordOutcome(.accepted, credited: UInt64(units) * 10))
            merchantSaw += outcome.credited
            // A retry of the same bytes credits nothing.
            #expect(try merchant.verify(payment.encoded(), now: now) == RecordOutcome(.duplicate))
        }
        for amount: UInt64 in [700, 1300] {
            let order = try customer.payOrder(serial: orderIssue.serial, amount: amount, item: Bytes16())
            #expect(try merchant.verify(order.encoded(), now: now) == RecordOutcome(.accepted, credited: amount))
            merchantSaw += amount
        }

        // Information goods: sealed once, bought with an order bound to the stream's item.
        let content = Array((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        let stream = try merchant.sealGoods(itemNumber: 77, content: content, chunk: 1024, price: 2500)
        let purchaseOrder = try customer.buy(goods: stream, serial: orderIssue.serial, price: 2500)
        let (outcome, keyEnvelope) = try merchant.purchase(purchaseOrder.encoded(), now: now)
        #expect(outcome == RecordOutcome(.accepted, credited: 2500))
        merchantSaw += 2500
        let keyEnvelopeBytes = try #require(keyEnvelope).encoded()
        #expect(try customer.openGoods(stream, keyEnvelope: try KeyEnvelope(decoding: keyEnvelopeBytes)) == content)
        #expect(merchantSaw == 300 + 4500)

        // Settlement: the deposit carries the best claim per serial; the bank pays exactly that.
        let deposit = try #require(try merchant.makeDeposit(now: now))
        #expect(deposit.claims.count == 2)
        let receipt = try bank.settle(deposit: deposit.bytes, now: now + 10)
        #expect(receipt.credited == merchantSaw)
        #expect(receipt.codes == [.accepted, .accepted])
        let applied = try merchant.applyReceipt(receipt.bytes)
        #expect(applied.credited == merchantSaw && applied.expectedCredited == merchantSaw && !applied.alreadyApplied)
        // Sending the same deposit again pays nothing more.
        #expect(try bank.settle(deposit: deposit.bytes, now: now + 20) == receipt)
        #expect(try merchant.makeDeposit(now: now) == nil)
        #expect(try bank.balance(of: merchantAccount.number) == merchantSaw)

        // After expiry and grace, the unspent escrow goes back to the customer.
        let refunds = try bank.refundExpired(now: issuedAt + 3600 + bank.policy.grace + 1)
        #expect(refunds == [chainIssue.serial: 1000 - 300, orderIssue.serial: 50_000 - 4500])
        #expect(try bank.balance(of: customerAccount.number) == 1_000_000 - merchantSaw)
        let audit = try bank.audit()
        #expect(audit.isConsistent, "\(audit.problems)")
        #expect(audit.customerTotal + audit.merchantTotal + audit.escrowTotal == audit.funded - audit.withdrawn)
        #expect(audit.escrowTotal == 0)

        // The merchant withdraws what it earned; the ledger still balances.
        try bank.withdraw(account: merchantAccount.number, amount: merchantSaw)
        #expect(try bank.audit().isConsistent)
    }
}
