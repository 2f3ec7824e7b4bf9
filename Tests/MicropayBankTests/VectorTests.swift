import Foundation
import MicropayBank
import MicropayCore
import Testing

/// The bank reproduces v1.json byte for byte: ticket issue in both modes and
/// the whole multi-step settlement scenario.
@Suite("Known-answer vectors")
struct VectorTests {
    static let issuedAt: UInt64 = 1_800_000_000

    /// A bank with customer 1001 and merchant 2002 opened, and their keys
    /// checked against the vectors.
    func vectorBank(random: ScriptedRandom, funding: UInt64 = 2_000_000) throws -> (Bank, OpenedAccount, OpenedAccount) {
        let keys = Vectors.section("keys")
        let bank = try makeBank(firstSerial: 42, random: random)
        let customer = try bank.openCustomer(number: keys.u64("customer"))
        let merchant = try bank.openMerchant(number: keys.u64("merchant"))
        #expect(customer.key.hexExposingSecret == keys["K_C"] as? String)
        #expect(merchant.key.hexExposingSecret == keys["K_M"] as? String)
        try bank.fund(customer: customer.number, amount: funding)
        return (bank, customer, merchant)
    }

    @Test func issueChainReproducesTicketAndEnvelope() throws {
        let v = Vectors.section("issue_chain")
        let random = ScriptedRandom([v.hex("ticket_nonce"), v.hex("envelope_nonce")])
        let (bank, customer, _) = try vectorBank(random: random)

        let issued = try bank.issue(request: v.hex("request"), now: v.u64("issued"))
        #expect(issued.serial == v.u64("serial"))
        #expect(issued.ticket.bytes == v.hex("ticket"))
        #expect(issued.envelope.bytes == v.hex("envelope"))
        #expect(!issued.isRetry)
        #expect(random.remaining == 0)
        #expect(try bank.balance(of: customer.number) == 2_000_000 - v.u64("limit"))

        let record = try #require(try bank.ticket(serial: 42))
        #expect(record.issued == v.u64("issued") && record.expires == v.u64("expires"))
        #expect(record.escrow == v.u64("limit") && record.state == .open)
    }

    @Test func issueOrderReproducesTicket() throws {
        let v = Vectors.section("issue_order")
        let chain = Vectors.section("issue_chain")
        let random = ScriptedRandom([chain.hex("ticket_nonce"), chain.hex("envelope_nonce"), v.hex("ticket_nonce"), [UInt8](repeating: 7, count: 24)])
        let (bank, customer, merchant) = try vectorBank(random: random)
        _ = try bank.issue(request: chain.hex("request"), now: Self.issuedAt)

        let request = TicketRequest.make(
            bankID: 7, customer: customer.number, merchant: merchant.number, limit: v.u64("limit"), unit: 0,
            chainLength: 0, lifetime: 86400, requestID: Bytes16(hex: "000102030405060708090a0b0c0d0e0f")!,
            customerMAC: MACKey(macOf: customer.key))
        let issued = try bank.issue(request: request.bytes, now: Self.issuedAt)
        #expect(issued.serial == v.u64("serial"))
        #expect(issued.ticket.bytes == v.hex("ticket"))
        // The Envelope has no vector: check it opens to the same ticket.
        let body = try issued.envelope.open(customerKey: customer.key)
        #expect(body.limit == 1_000_000 && body.chainLength == 0 && body.merchant == merchant.number)
        #expect(try issued.ticket.open(merchantKey: merchant.key).encoded() == v.hex("ticket_body"))
    }

    /// Maps the vector's reasons for a refused Deposit onto BankError.
    static func refusal(_ reason: String, deposit: [UInt8]) -> BankError? {
        switch reason {
        case "batch id reused with other content":
            let batch = deposit[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            return .batchReused(merchant: 2002, batchID: batch)
        case "badMAC": return .badDepositTag
        default: return nil
        }
    }

    @Test func settleScenarioStepByStep() throws {
        let scenario = Vectors.section("settle_scenario")
        let chainVector = Vectors.section("issue_chain")
        let orderVector = Vectors.section("issue_order")
        let random = ScriptedRandom([])
        let (bank, customer, merchant) = try vectorBank(random: random)
        let customerMAC = MACKey(macOf: customer.key)
        let other = try bank.openMerchant(number: 2003)

        // 42 and 43: the vectors' own tickets.
        random.push(chainVector.hex("ticket_nonce")); random.push(chainVector.hex("envelope_nonce"))
        #expect(try bank.issue(request: chainVector.hex("request"), now: Self.issuedAt).ticket.bytes == chainVector.hex("ticket"))
        random.push(orderVector.hex("ticket_nonce")); random.push(.init(repeating: 1, count: 24))
        let order43 = TicketRequest.make(bankID: 7, customer: customer.number, merchant: merchant.number, limit: 1_000_000,
                                         unit: 0, chainLength: 0, lifetime: 86400, requestID: .random(), customerMAC: customerMAC)
        #expect(try bank.issue(request: order43.bytes, now: Self.issuedAt).ticket.bytes == orderVector.hex("ticket"))

        // 44 is burnt on another merchant, with a lifetime that outlives the scenario.
        random.push(.init(repeating: 2, count: 24)); random.push(.init(repeating: 3, count: 24))
        let burn = TicketRequest.make(bankID: 7, customer: customer.number, merchant: other.number, limit: 1, unit: 0,
                                      chainLength: 0, lifetime: 7 * 86400, requestID: .random(), customerMAC: customerMAC)
        #expect(try bank.issue(request: burn.bytes, now: Self.issuedAt).serial == 44)

        // 45: its body comes from the Ticket in the batch file; issued again
        // with that Ticket's nonce, the bank must produce the very same bytes.
        let records = batchRecords(Vectors.section("batch").hex("file"))
        let ticket45 = try #require(records.compactMap { try? Ticket(decoding: $0) }.first { $0.serial == 45 })
        let body45 = try ticket45.open(merchantKey: merchant.key)
        #expect(body45.chainLength == 5000 && body45.unit == 3 && body45.limit == 15000 && body45.customer == customer.number)
        random.push(ticket45.nonce.bytes); random.push(.init(repeating: 4, count: 24))
        let chain45 = TicketRequest.make(
            bankID: 7, customer: customer.number, merchant: merchant.number, limit: body45.limit, unit: body45.unit,
            chainLength: body45.chainLength, lifetime: UInt32(body45.expires - body45.issued), root: body45.root,
            chainID: body45.chainID, requestID: .random(), customerMAC: customerMAC)
        let issued45 = try bank.issue(request: chain45.bytes, now: body45.issued)
        #expect(issued45.serial == 45)
        #expect(issued45.ticket.bytes == ticket45.bytes)

        // 46: order mode, limit 50000 (the scenario's issue time and lifetime).
        random.push(.init(repeating: 5, count: 24)); random.push(.init(repeating: 6, count: 24))
        let order46 = TicketRequest.make(bankID: 7, customer: customer.number, merchant: merchant.number, limit: 50000,
                                         unit: 0, chainLength: 0, lifetime: 86400, requestID: .random(), customerMAC: customerMAC)
        #expect(try bank.issue(request: order46.bytes, now: Self.issuedAt).serial == 46)
        #expect(random.remaining == 0)
        let afterIssue: UInt64 = 2_000_000 - 4000 - 1_000_000 - 1 - 15000 - 50000
        #expect(try bank.balance(of: customer.number) == afterIssue)

        var creditedSoFar: UInt64 = 0
        for step in scenario["steps"] as? [[String: Any]] ?? [] {
            let what = step["what"] as? String ?? "?"
            let deposit = step.hex("deposit")
            let now = step.u64("now")
            if what == "claim at exactly expires + grace" {
                // Refunding at the same instant closes nothing: expiry is strict.
                #expect(try bank.refundExpired(now: now).isEmpty, "\(what)")
            }
            if let reason = step["refused"] as? String {
                let expected = try #require(Self.refusal(reason, deposit: deposit), "unmapped reason \(reason)")
                let before = try bank.audit()
                #expect(throws: expected, "\(what)") { try bank.settle(deposit: deposit, now: now) }
                #expect(try bank.audit() == before, "a refused Deposit changes nothing: \(what)")
                continue
            }
            let receipt = try bank.settle(deposit: deposit, now: now)
            #expect(receipt.bytes == step.hex("receipt"), "\(what)")
            #expect(receipt.codes.map(\.rawValue) == (step["codes"] as? [Int] ?? []).map(UInt8.init), "\(what)")
            #expect(receipt.credited == step.u64("credited"), "\(what)")
            #expect(receipt.hasValidTag(merchantMAC: MACKey(macOf: merchant.key)))
            if what != "same deposit again" { creditedSoFar += step.u64("credited") }
            #expect(try bank.balance(of: merchant.number) == creditedSoFar, "paid once: \(what)")
            #expect(try bank.audit().isConsistent, "\(what)")
        }

        let disputed = (scenario["disputed"] as? [Int] ?? []).map(UInt64.init)
        #expect(try bank.audit().disputed == disputed)
        #expect(disputed == [46])

        let refunds = try bank.refundExpired(now: scenario.u64("refunds_at"))
        var expectedRefunds: [UInt64: UInt64] = [:]
        for (serial, amount) in scenario.dict("refunds") { expectedRefunds[UInt64(serial)!] = (amount as? NSNumber)?.uint64Value }
        #expect(refunds == expectedRefunds)
        #expect(try bank.refundExpired(now: scenario.u64("refunds_at") + 1).isEmpty, "a ticket is refunded once")

        let total = scenario.u64("merchant_credited_total")
        #expect(try bank.balance(of: merchant.number) == total)
        #expect(total == 27000)
        #expect(try bank.balance(of: customer.number) == afterIssue + 992_000)
        let audit = try bank.audit()
        #expect(audit.isConsistent, "\(audit.problems)")
        #expect(audit.escrowTotal == 50000 + 1, "46 frozen by its dispute, 44 still open")
        #expect(audit.funded == 2_000_000 && audit.withdrawn == 0)
        #expect(try bank.ticket(serial: 46)?.state == .disputed)
        #expect(try bank.ticket(serial: 43)?.state == .refunded)

        // The operator's ruling on 46 (§9.4): 20000 of its 50000 to the merchant, the rest back.
        let merchantBefore = try bank.balance(of: merchant.number), customerBefore = try bank.balance(of: customer.number)
        #expect(throws: BankError.notDisputed(43)) { try bank.resolveDispute(serial: 43, payMerchant: 0) }
        #expect(throws: BankError.unknownTicket(999)) { try bank.resolveDispute(serial: 999, payMerchant: 0) }
        #expect(throws: BankError.rulingAboveEscrow(amount: 50001, escrow: 50000)) {
            try bank.resolveDispute(serial: 46, payMerchant: 50001)
        }
        #expect(try bank.audit() == audit, "a refused ruling changes nothing")
        let paid = try bank.resolveDispute(serial: 46, payMerchant: 20000)
        #expect(paid.merchant == 20000 && paid.customer == 30000)
        #expect(try bank.balance(of: merchant.number) == merchantBefore + 20000)
        #expect(try bank.balance(of: customer.number) == customerBefore + 30000)
        #expect(try bank.ticket(serial: 46)?.state == .refunded)
        #expect(try bank.ticket(serial: 46)?.settledAmount == 20000)
        #expect(throws: BankError.notDisputed(46)) { try bank.resolveDispute(serial: 46, payMerchant: 0) }
        let ruled = try bank.audit()
        #expect(ruled.isConsistent, "\(ruled.problems)")
        #expect(ruled.disputed.isEmpty && ruled.escrowTotal == 1, "only 44 still open")
        #expect(try bank.receipts(merchant: merchant.number).map(\.credited).reduce(0, +) == total, "a ruling is no Receipt")
    }
}
