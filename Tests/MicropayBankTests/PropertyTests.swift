import Foundation
import MicropayBank
import MicropayCore
import Testing

/// Random sequences of every bank operation, checked after each step against
/// a plain in-memory model of the money (not the bank's own code) and
/// against the audit.
@Suite("Random operation sequences")
struct PropertyTests {
    final class ModelTicket {
        let serial: UInt64, customer: UInt64, merchant: UInt64, limit: UInt64, unit: UInt64, length: UInt32
        let chainID: Bytes12, seed: Bytes32, expires: UInt64
        let customerMAC: MACKey, sessionMAC: MACKey
        /// The customer's side: what it has paid so far.
        var paidPosition: UInt32 = 0
        var paidCumulative: UInt64 = 0
        /// The merchant's last accepted payment, what it deposits.
        var latest: Deposit.Claim?
        /// What the bank should have settled.
        var settledPosition: UInt32 = 0
        var settledAmount: UInt64 = 0
        var refunded = false

        init(serial: UInt64, customer: UInt64, merchant: UInt64, limit: UInt64, unit: UInt64, length: UInt32,
             chainID: Bytes12, seed: Bytes32, expires: UInt64, customerMAC: MACKey, sessionMAC: MACKey) {
            self.serial = serial; self.customer = customer; self.merchant = merchant; self.limit = limit
            self.unit = unit; self.length = length; self.chainID = chainID; self.seed = seed; self.expires = expires
            self.customerMAC = customerMAC; self.sessionMAC = sessionMAC
        }
    }

    @Test(arguments: [1, 2, 3, 0xfeed] as [UInt64])
    func invariantHoldsAfterEveryStep(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let master = SecretKey.random()
        let bank = try makeBank(firstSerial: 1, master: master)
        let grace = bank.policy.grace
        var now: UInt64 = 1_800_000_000
        var balances: [UInt64: UInt64] = [:]
        var customers: [UInt64] = [], merchants: [UInt64] = []
        var tickets: [ModelTicket] = []
        var requests: [[UInt8]] = []
        var deposits: [([UInt8], Receipt)] = []
        var nextSerial: UInt64 = 1, nextBatch: UInt64 = 1
        var funded: UInt64 = 0, withdrawn: UInt64 = 0
        var counts: [String: Int] = [:]

        func pick<T>(_ items: [T]) -> T? { items.isEmpty ? nil : items[Int(rng.next() % UInt64(items.count))] }
        func random(_ upper: UInt64) -> UInt64 { upper == 0 ? 0 : rng.next() % upper }

        for step in 0..<160 {
            now += random(3000)
            let op = step < 4 ? step % 2 : Int(random(11))
            var what = "open"
            switch op {
            case 0, 1:
                if (op == 0 ? customers : merchants).count < 4 {
                    let account = try bank.openAccount(op == 0 ? .customer : .merchant)
                    balances[account.number] = 0
                    if op == 0 { customers.append(account.number) } else { merchants.append(account.number) }
                }
            case 2:
                what = "fund"
                guard let customer = pick(customers) else { continue }
                let amount = 1 + random(100_000)
                try bank.fund(customer: customer, amount: amount)
                balances[customer, default: 0] += amount
                funded += amount
            case 3, 4:
                what = "issue"
                guard let customer = pick(customers), let merchant = pick(merchants) else { continue }
                let customerMAC = MACKey(macOf: try bank.accountKey(customer))
                let chain = random(2) == 0
                let length = chain ? UInt32(1 + random(40)) : 0
                let unit = chain ? 1 + random(50) : 0
                let limit = chain ? UInt64(length) * unit : 1 + random(30_000)
                let chainID: Bytes12 = chain ? .random() : Bytes12()
                let seedWord: Bytes32 = chain ? .random() : Bytes32()
                let root = chain ? HashChain.walk(chainID: chainID, from: length, word: seedWord, to: 0) : Bytes32()
                let lifetime = UInt32(1 + random(2 * 86400))
                let request = TicketRequest.make(bankID: 7, customer: customer, merchant: merchant, limit: limit, unit: unit,
                                                 chainLength: length, lifetime: lifetime, root: root, chainID: chainID,
                                                 requestID: .random(), customerMAC: customerMAC)
                let balance = balances[customer, default: 0]
                guard limit <= balance else {
                    #expect(throws: BankError.insufficientFunds(account: customer, balance: balance, needed: limit)) {
                        try bank.issue(request: request.bytes, now: now)
                    }
                    break
                }
                let issued = try bank.issue(request: request.bytes, now: now)
                #expect(issued.serial == nextSerial && !issued.isRetry)
                nextSerial += 1
                balances[customer, default: 0] -= limit
                requests.append(request.bytes)
                let sessionKey = KeyDerivation.sessionKey(master: master, bankID: 7, serial: issued.serial)
                tickets.append(ModelTicket(serial: issued.serial, customer: customer, merchant: merchant, limit: limit, unit: unit,
                                           length: length, chainID: chainID, seed: seedWord, expires: now + UInt64(lifetime),
                                           customerMAC: customerMAC, sessionMAC: MACKey(macOf: sessionKey)))
            case 5:
                what = "replay request"
                guard let request = pick(requests) else { continue }
                let before = try bank.audit()
                let again = try bank.issue(request: request, now: now)
                #expect(again.isRetry)
                #expect(try bank.audit() == before)
            case 6, 7:
                what = "pay"
                guard let t = pick(tickets.filter { !$0.refunded }) else { continue }
                if t.length > 0 {
                    guard t.paidPosition < t.length else { continue }
                    t.paidPosition += UInt32(1 + random(UInt64(min(5, t.length - t.paidPosition))))
                    let word = HashChain.walk(chainID: t.chainID, from: t.length, word: t.seed, to: t.paidPosition)
                    t.latest = .chain(ChainPayment(bankID: 7, serial: t.serial, index: t.paidPosition, word: word))
                } else {
                    t.paidPosition += 1
                    t.paidCumulative += random(t.limit - t.paidCumulative + 1)
                    t.latest = .order(PaymentOrder.make(bankID: 7, serial: t.serial, seq: t.paidPosition, cumulative: t.paidCumulative,
                                                        item: .random(), customerMAC: t.customerMAC, sessionMAC: t.sessionMAC))
                }
            case 8:
                what = "deposit"
                guard let merchant = pick(merchants) else { continue }
                let mine = tickets.filter { $0.merchant == merchant && $0.latest != nil && random(3) != 0 }
                var expectedCodes: [Verdict] = []
                var expectedCredit: UInt64 = 0
                for t in mine {
                    if t.refunded || now > t.expires + grace {
                        expectedCodes.append(.expired)
                    } else if t.paidPosition <= t.settledPosition {
                        expectedCodes.append(.replay)
                    } else {
                        expectedCodes.append(.accepted)
                        let amount = t.length > 0 ? UInt64(t.paidPosition) * t.unit : t.paidCumulative
                        expectedCredit += amount - t.settledAmount
                        t.settledPosition = t.paidPosition
                        t.settledAmount = amount
                    }
                }
                let deposit = Deposit.make(bankID: 7, batchID: nextBatch, merchant: merchant, claims: mine.compactMap(\.latest),
                                           merchantMAC: MACKey(macOf: try bank.accountKey(merchant)))
                nextBatch += 1
                let receipt = try bank.settle(deposit: deposit.bytes, now: now)
                #expect(receipt.codes == expectedCodes, "step \(step)")
                #expect(receipt.credited == expectedCredit)
                balances[merchant, default: 0] += expectedCredit
                deposits.append((deposit.bytes, receipt))
            case 9:
                what = "redeposit"
                guard let (bytes, receipt) = pick(deposits) else { continue }
                let before = try bank.audit()
                #expect(try bank.settle(deposit: bytes, now: now).bytes == receipt.bytes)
                #expect(try bank.audit() == before)
            default:
                if random(2) == 0 {
                    what = "refund"
                    now += random(2 * 86400)
                    var expected: [UInt64: UInt64] = [:]
                    for t in tickets where !t.refunded && now > t.expires + grace {
                        expected[t.serial] = t.limit - t.settledAmount
                        balances[t.customer, default: 0] += t.limit - t.settledAmount
                        t.refunded = true
                    }
                    #expect(try bank.refundExpired(now: now) == expected)
                } else {
                    what = "withdraw"
                    guard let account = pick(customers + merchants) else { continue }
                    let balance = balances[account, default: 0]
                    let amount = 1 + random(balance + balance / 4 + 1)
                    if amount > balance {
                        #expect(throws: BankError.insufficientFunds(account: account, balance: balance, needed: amount)) {
                            try bank.withdraw(account: account, amount: amount)
                        }
                    } else {
                        try bank.withdraw(account: account, amount: amount)
                        balances[account, default: 0] -= amount
                        withdrawn += amount
                    }
                }
            }
            counts[what, default: 0] += 1

            let audit = try bank.audit()
            #expect(audit.isConsistent, "step \(step) (\(what)): \(audit.problems)")
            #expect(audit.funded == funded && audit.withdrawn == withdrawn)
            let escrow = tickets.filter { !$0.refunded }.reduce(UInt64(0)) { $0 + $1.limit - $1.settledAmount }
            #expect(audit.escrowTotal == escrow, "step \(step) (\(what))")
            for (account, balance) in balances {
                #expect(try bank.balance(of: account) == balance, "step \(step) (\(what)): account \(account)")
            }
        }
        // The sequence exercised every operation.
        for op in ["fund", "issue", "replay request", "pay", "deposit", "redeposit", "refund", "withdraw"] {
            #expect(counts[op, default: 0] > 0, "\(op) never ran")
        }
    }
}
