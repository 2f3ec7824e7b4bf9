import Foundation
import MicropayBank
import MicropayCore
import MicropayCustomer
import MicropayMerchant
import MicropaySimulation

struct DemoOptions {
    var dir: String
    var customers: Int
    var merchants: Int
    var payments: Int
    var fraudRate: Double
    var seed: UInt64
    var reset: Bool
}

/// What the demo remembers between runs on the same folder (demo.json).
struct DemoState: Codable {
    var bankID: UInt32 = 1
    /// The day the next run plays (1 for a fresh folder).
    var day = 1
    /// The demo clock at which the next day starts (Unix seconds).
    var clock: UInt64 = 1_900_000_000
    var customers: [UInt64] = []
    var merchants: [UInt64] = []

    enum CodingKeys: String, CodingKey { case bankID = "bank_id", day, clock, customers, merchants }
}

struct DemoOutcome {
    var auditConsistent = false
    var unexpectedVerdicts = 0
    var failures = 0
}

/// One day of the demo: plans every choice from the seed, then runs each stage
/// on the real roles (Bank, Customer, Merchant) and their SQLite stores.
final class DemoDay {
    /// The attacks mixed into the day, each built to get one verdict.
    enum Attack: String, CaseIterable {
        case replay, retry, forgedWord, forgedTag, overspend, decreasingOrder, wrongMerchant, tamperedTicket,
             truncated, unknownSerial
    }

    /// A ticket of the day's plan and, once issued, what the merchant has accepted on it.
    final class PlannedTicket {
        let customer: Int
        let merchant: Int
        let isChain: Bool
        let unit: UInt64
        /// Chain: units planned; order: micro-units planned.
        var budget: UInt64 = 0
        /// Goods item (index at its merchant) this order ticket buys in the evening.
        var buysGoods: Int?
        // Once issued:
        var serial: UInt64 = 0
        var ticketBytes: [UInt8] = []
        var limit: UInt64 = 0
        var chainLength: UInt32 = 0
        var forwarded = false
        // What the merchant accepted so far (the honest payments).
        var last: UInt32 = 0
        var lastSeq: UInt32 = 0
        var lastCumulative: UInt64 = 0
        var lastAccepted: [UInt8]?
        var previousAccepted: [UInt8]?
        var sessionMAC: MACKey?
        var customerMAC: MACKey?

        init(customer: Int, merchant: Int, isChain: Bool, unit: UInt64) {
            self.customer = customer
            self.merchant = merchant
            self.isChain = isChain
            self.unit = unit
        }
    }

    struct Slot {
        let ticket: Int
        let attack: Attack?
        let units: UInt32
        let amount: UInt64
    }

    struct Goods {
        let stream: GoodsStream
        let content: [UInt8]
        let price: UInt64
        let path: String
    }

    /// One merchant's batch of the day, with the verdict each record must get.
    struct Batch {
        var writer = BatchFileWriter(reservingCapacity: 1 << 16)
        var expected: [UInt8] = []
        var credited: UInt64 = 0
        mutating func add(_ record: [UInt8], _ verdict: Verdict, credited amount: UInt64 = 0) {
            try! writer.append(record)  // every record is far below 65535 bytes
            expected.append(verdict.rawValue)
            credited += amount
        }
    }

    let options: DemoOptions
    let random: SeededRandom
    var state: DemoState
    var outcome = DemoOutcome()
    var lines: [String] = []

    private init(options: DemoOptions, state: DemoState) {
        self.options = options
        self.state = state
        // Day 1 of a seed always makes the same choices; later days differ.
        random = SeededRandom(seed: options.seed &+ UInt64(state.day - 1) &* 0x9E37_79B9_7F4A_7C15)
    }

    static func run(_ options: DemoOptions) throws -> DemoOutcome {
        let fm = FileManager.default
        let statePath = "\(options.dir)/demo.json"
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: options.dir, isDirectory: &isDirectory) {
            let contents = (try? fm.contentsOfDirectory(atPath: options.dir)) ?? []
            guard isDirectory.boolValue, contents.isEmpty || fm.fileExists(atPath: statePath) else {
                throw ToolError(.usage, "\(options.dir): not a demo folder (it has no demo.json); choose another --dir")
            }
            if options.reset {
                do { try fm.removeItem(atPath: options.dir) } catch {
                    throw ToolError(.cannotCreate, "\(options.dir): cannot wipe the folder (\(error.localizedDescription))")
                }
            }
        }
        var state = DemoState()
        if fm.fileExists(atPath: statePath) {
            guard let data = fm.contents(atPath: statePath), let stored = try? JSONDecoder().decode(DemoState.self, from: data) else {
                throw ToolError(.dataError, "\(statePath): cannot read the demo's state (use --reset to start again)")
            }
            state = stored
        }
        for sub in ["bank", "customers", "merchants", "day\(state.day)"] {
            do { try fm.createDirectory(atPath: "\(options.dir)/\(sub)", withIntermediateDirectories: true) } catch {
                throw ToolError(.cannotCreate, "\(options.dir)/\(sub): cannot create the folder")
            }
        }
        let day = DemoDay(options: options, state: state)
        try day.play()
        return day.outcome
    }

    // MARK: - Output

    private func say(_ line: String) {
        print(line)
        fflush(nil)
    }

    private func stageLine(_ name: String, _ what: String, seconds: Double, rate: (Double, String)? = nil) {
        let rateText = rate.map { rate in
            let value = Progress.human(rate.0 / max(seconds, 1e-9))
            return String(repeating: " ", count: max(0, 7 - value.count)) + value + " \(rate.1)/s"
        } ?? ""
        say("  \(pad(name, 9)) \(String(format: "%7.2f s", seconds)) \(pad(rateText, 24)) \(what)")
    }

    /// `text` padded with spaces to `width` (never cut).
    private func pad(_ text: String, _ width: Int) -> String {
        text + String(repeating: " ", count: max(0, width - text.count))
    }

    private func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
        let start = DispatchTime.now().uptimeNanoseconds
        let value = try body()
        return (value, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }

    // MARK: - The day

    private func play() throws {
        let dir = options.dir
        let dayDir = "\(dir)/day\(state.day)"
        let dayStart = state.clock
        let verifyAt = dayStart + 43_200
        let eveningAt = dayStart + 64_800
        let depositAt = dayStart + 80_000
        let lifetime: UInt32 = 86_400
        let totalStart = DispatchTime.now().uptimeNanoseconds
        say("Micropay demo: day \(state.day) in \(dir) (bank \(state.bankID), seed \(options.seed)): \(options.customers) customers, \(options.merchants) merchants, \(options.payments) payment records, fraud rate \(options.fraudRate)")

        // Setup: the bank, accounts, wallets, merchant stores, goods.
        let masterPath = "\(dir)/bank/master.key"
        var goods: [[Goods]] = []
        let ((bank, customers, merchants, master), setupSeconds) = try timed { () throws -> (Bank, [Customer], [Merchant], SecretKey) in
            let bank = try bankCall { () throws(BankError) in
                try Bank.open(ledgerPath: "\(dir)/bank/ledger.db", masterKeyPath: masterPath, bankID: state.bankID)
            }
            guard let master = try bankCall(masterPath, { () throws(BankError) in try MasterKeyFile.load(path: masterPath) }) else {
                throw ToolError(.noInput, "\(masterPath): cannot read the master key")
            }
            while state.customers.count < options.customers {
                let account = try bankCall { () throws(BankError) in try bank.openCustomer() }
                let path = "\(dir)/customers/\(account.number).wallet"
                _ = try customerCall(path) { () throws(CustomerError) in
                    try Customer.create(walletPath: path, bankID: state.bankID, account: account.number, key: account.key)
                }
                state.customers.append(account.number)
            }
            while state.merchants.count < options.merchants {
                let account = try bankCall { () throws(BankError) in try bank.openMerchant() }
                try writeKeyFile("\(dir)/merchants/\(account.number).key", account.key)
                state.merchants.append(account.number)
            }
            try saveState()
            let customers = try state.customers.prefix(options.customers).map { number in
                let path = "\(dir)/customers/\(number).wallet"
                // The demo's wallets survive a crash of the process, not power loss: a payment costs no fsync.
                return try customerCall(path) { () throws(CustomerError) in try Customer.open(walletPath: path, durability: .normal) }
            }
            let merchants = try state.merchants.prefix(options.merchants).map { number in
                let path = "\(dir)/merchants/\(number).db"
                let key = try bankCall { () throws(BankError) in try bank.accountKey(number) }
                let store = try merchantCall(path) { () throws(MerchantError) in try MerchantStore(path: path) }
                return try merchantCall(path) { () throws(MerchantError) in
                    try Merchant(bankID: state.bankID, merchant: number, merchantKey: key, store: store)
                }
            }
            // Each merchant sells two items of information goods, sealed once for every buyer.
            for (m, merchant) in merchants.enumerated() {
                var items: [Goods] = []
                for k in 0..<2 {
                    var content = [UInt8](repeating: 0, count: 8192 + random.below(40_000))
                    content.withUnsafeMutableBytes { random.fill($0) }
                    let price: UInt64 = k == 0 ? 1500 : 4000
                    let itemNumber = UInt64(state.day * 100 + k)
                    let stream = try merchantCall { () throws(MerchantError) in
                        try merchant.sealGoods(itemNumber: itemNumber, content: content, chunk: 4096, price: price)
                    }
                    let path = "\(dayDir)/goods-m\(state.merchants[m])-\(itemNumber).mpg"
                    try writeOutput(path, stream.bytes)
                    items.append(Goods(stream: stream, content: content, price: price, path: path))
                }
                goods.append(items)
            }
            return (bank, customers, merchants, master)
        }
        stageLine("setup", "bank, \(customers.count) wallets, \(merchants.count) merchant stores, \(merchants.count * 2) goods items",
                  seconds: setupSeconds)

        // The plan: who shops where, every payment slot, every attack, from the seed.
        let (tickets, slots) = plan()

        // Funding and tickets.
        var funded: UInt64 = 0
        var escrowed: UInt64 = 0
        let (_, ticketSeconds) = try timed {
            var need = [UInt64](repeating: 0, count: customers.count)
            for t in tickets { need[t.customer] += t.isChain ? t.unit * t.budget : t.budget }
            for (c, customer) in customers.enumerated() {
                let amount = need[c] + 1_000_000
                try bankCall { () throws(BankError) in try bank.fund(customer: customer.account, amount: amount) }
                funded += amount
            }
            let progress = Progress("tickets", total: tickets.count)
            defer { progress.finish() }
            for (n, t) in tickets.enumerated() {
                let customer = customers[t.customer]
                let merchantNumber = merchants[t.merchant].merchantNumber
                let request = try customerCall { () throws(CustomerError) in
                    t.isChain
                        ? try customer.requestChainTicket(merchant: merchantNumber, unit: t.unit,
                                                          chainLength: UInt32(t.budget), lifetime: lifetime)
                        : try customer.requestOrderTicket(merchant: merchantNumber, limit: t.budget, lifetime: lifetime)
                }
                let issued = try bankCall { () throws(BankError) in try bank.issue(request: request.bytes, now: dayStart) }
                let held = try customerCall { () throws(CustomerError) in
                    try customer.accept(envelope: issued.envelope, ticket: issued.ticket)
                }
                t.serial = held.serial
                t.ticketBytes = issued.ticket.bytes
                t.limit = held.limit
                t.chainLength = held.chainLength
                escrowed += held.limit
                // The demo also plays dishonest customers, who know their own K_CM and K_C.
                if !t.isChain {
                    t.sessionMAC = MACKey(macOf: KeyDerivation.sessionKey(master: master, bankID: state.bankID, serial: held.serial))
                    t.customerMAC = MACKey(macOf: KeyDerivation.accountKey(
                        master: master, role: .customer, bankID: state.bankID, account: customer.account))
                }
                progress.update(n + 1)
            }
        }
        let chainCount = tickets.filter(\.isChain).count
        stageLine("tickets", "\(tickets.count) issued (\(chainCount) chain, \(tickets.count - chainCount) order), \(money(escrowed)) escrowed",
                  seconds: ticketSeconds, rate: (Double(tickets.count), "tickets"))

        // The day's payments: honest ones from the wallets, attacks forged beside them.
        var batches = [Batch](repeating: Batch(), count: merchants.count)
        var attacks: [Attack: Int] = [:]
        var honest = 0
        let (_, paySeconds) = try timed {
            let progress = Progress("payments", total: slots.count)
            defer { progress.finish() }
            for (n, slot) in slots.enumerated() {
                if n & 255 == 0 { progress.update(n) }
                let t = tickets[slot.ticket]
                if let attack = slot.attack, forge(attack, on: t, into: &batches, tickets: tickets) {
                    attacks[attack, default: 0] += 1
                    continue
                }
                if !t.forwarded {
                    batches[t.merchant].add(t.ticketBytes, .accepted)
                    t.forwarded = true
                }
                let customer = customers[t.customer]
                let record: [UInt8]
                let credit: UInt64
                if t.isChain {
                    let payment = try customerCall { () throws(CustomerError) in try customer.pay(serial: t.serial, units: slot.units) }
                    record = payment.encoded()
                    credit = UInt64(slot.units) * t.unit
                    t.last = payment.index
                } else {
                    var item = Bytes16()
                    item.withUnsafeMutableBytes { random.fill($0) }
                    let order = try customerCall { () throws(CustomerError) in
                        try customer.payOrder(serial: t.serial, amount: slot.amount, item: item)
                    }
                    record = order.bytes
                    credit = slot.amount
                    t.lastSeq = order.seq
                    t.lastCumulative = order.cumulative
                }
                t.previousAccepted = t.lastAccepted
                t.lastAccepted = record
                batches[t.merchant].add(record, .accepted, credited: credit)
                honest += 1
            }
        }
        let attackCount = attacks.values.reduce(0, +)
        stageLine("payments", "\(honest + attackCount) records: \(honest) honest from the wallets, \(attackCount) attacks",
                  seconds: paySeconds, rate: (Double(honest + attackCount), "records"))

        // Batch files, one per merchant.
        var batchPaths: [String] = []
        let (batchBytes, writeSeconds) = try timed { () throws -> Int in
            var total = 0
            for (m, batch) in batches.enumerated() {
                let path = "\(dayDir)/batch-m\(state.merchants[m]).mpb"
                do { try batch.writer.write(toFile: path) } catch {
                    throw ToolError(.cannotCreate, "\(path): \(error)")
                }
                batchPaths.append(path)
                total += batch.writer.bytes.count
            }
            return total
        }
        let recordCount = batches.reduce(0) { $0 + $1.expected.count }
        stageLine("batches", "\(batches.count) files, \(recordCount) records (tickets too), \(Progress.human(Double(batchBytes)))B",
                  seconds: writeSeconds, rate: (Double(recordCount), "records"))
        batches = batches.map { var b = $0; b.writer = BatchFileWriter(); return b }  // the files hold them now

        // Verification: each merchant verifies its batch file.
        var verdictCounts = [Int](repeating: 0, count: Verdict.allCases.count)
        var acceptedCredit: UInt64 = 0
        let (_, verifySeconds) = try timed {
            let progress = Progress("verifying", total: recordCount)
            defer { progress.finish() }
            var done = 0
            for (m, merchant) in merchants.enumerated() {
                let expected = batches[m].expected
                var index = 0
                var unexpected = 0
                var counts = verdictCounts
                let summary = try merchantCall(batchPaths[m]) { () throws(MerchantError) in
                    try merchant.verifyBatch(file: batchPaths[m], now: verifyAt, tag: "demo day \(state.day)") { _, outcome in
                        if index >= expected.count || expected[index] != outcome.verdict.rawValue { unexpected += 1 }
                        counts[Int(outcome.verdict.rawValue)] += 1
                        index += 1
                        if (done + index) & 1023 == 0 { progress.update(done + index) }
                    }
                }
                verdictCounts = counts
                done += index
                outcome.unexpectedVerdicts += unexpected + abs(expected.count - summary.records)
                if summary.credited != batches[m].credited { outcome.failures += 1 }
                acceptedCredit += summary.credited
            }
        }
        stageLine("verify", "\(recordCount) records at \(merchants.count) merchants, \(money(acceptedCredit)) accepted",
                  seconds: verifySeconds, rate: (Double(recordCount), "records"))

        // Evening: goods with certified delivery, online at the merchant.
        var bought = 0
        var opened = 0
        var goodsCredit: UInt64 = 0
        let buyers = tickets.filter { $0.buysGoods != nil }
        let (_, goodsSeconds) = try timed {
            for t in buyers {
                let item = goods[t.merchant][t.buysGoods!]
                let merchant = merchants[t.merchant]
                let customer = customers[t.customer]
                if !t.forwarded {
                    let registered = try merchantCall { () throws(MerchantError) in try merchant.verify(t.ticketBytes, now: eveningAt) }
                    if registered.verdict != .accepted { outcome.failures += 1 }
                    t.forwarded = true
                }
                let order = try customerCall { () throws(CustomerError) in
                    try customer.buy(goods: item.stream, serial: t.serial, price: item.price)
                }
                let (result, keyEnvelope) = try merchantCall { () throws(MerchantError) in
                    try merchant.purchase(order.bytes, now: eveningAt)
                }
                guard result.verdict == .accepted, let keyEnvelope else { outcome.failures += 1; continue }
                bought += 1
                goodsCredit += result.credited
                // The key travels as bytes; the customer checks it against the stream it holds.
                let received = try KeyEnvelope(decoding: keyEnvelope.bytes)
                let content = try customerCall { () throws(CustomerError) in try customer.openGoods(item.stream, keyEnvelope: received) }
                if content == item.content { opened += 1 } else { outcome.failures += 1 }
            }
        }
        stageLine("goods", "\(bought) items bought with certified delivery, \(opened) opened intact, \(money(goodsCredit))",
                  seconds: goodsSeconds, rate: (Double(bought), "purchases"))

        // Settlement: deposit, settle, apply the receipt; merchants take their money out.
        var settled: UInt64 = 0
        var claims = 0
        var claimCodes: [Verdict: Int] = [:]
        var withdrawn: UInt64 = 0
        let (_, settleSeconds) = try timed {
            for (m, merchant) in merchants.enumerated() {
                let number = state.merchants[m]
                guard let deposit = try merchantCall("merchant", { () throws(MerchantError) in try merchant.makeDeposit(now: depositAt) }) else { continue }
                try writeOutput("\(dayDir)/deposit-m\(number).dep", deposit.bytes)
                let receipt = try bankCall { () throws(BankError) in try bank.settle(deposit: deposit.bytes, now: depositAt) }
                try writeOutput("\(dayDir)/receipt-m\(number).rcpt", receipt.bytes)
                let applied = try merchantCall { () throws(MerchantError) in try merchant.applyReceipt(receipt.bytes) }
                if applied.credited != applied.expectedCredited { outcome.failures += 1 }
                claims += receipt.codes.count
                for code in receipt.codes { claimCodes[code, default: 0] += 1 }
                settled += receipt.credited
                let balance = try bankCall { () throws(BankError) in try bank.balance(of: number) }
                if balance > 0 {
                    try bankCall { () throws(BankError) in try bank.withdraw(account: number, amount: balance) }
                    withdrawn += balance
                }
            }
        }
        if settled != acceptedCredit + goodsCredit { outcome.failures += 1 }
        let codesText = Verdict.allCases.compactMap { v in claimCodes[v].map { "\($0) \(v)" } }.joined(separator: ", ")
        stageLine("settle", "\(merchants.count) deposits, \(claims) claims (\(codesText)), \(money(settled)) paid",
                  seconds: settleSeconds, rate: (Double(claims), "claims"))

        // The clock moves past expires + grace: the bank refunds what was not claimed.
        let refundAt = dayStart + UInt64(lifetime) + bank.policy.grace + 1
        let (refunds, refundSeconds) = try timed {
            try bankCall { () throws(BankError) in try bank.refundExpired(now: refundAt) }
        }
        let refunded = refunds.values.reduce(0, +)
        stageLine("refund", "\(refunds.count) tickets closed at \(refundAt), \(money(refunded)) back to customers",
                  seconds: refundSeconds, rate: (Double(refunds.count), "tickets"))

        let (report, auditSeconds) = try timed { try bankCall { () throws(BankError) in try bank.audit() } }
        stageLine("audit", "the ledger, its journal and every receipt", seconds: auditSeconds)
        let totalSeconds = Double(DispatchTime.now().uptimeNanoseconds - totalStart) / 1e9

        // The report.
        say("")
        say("verdicts at the merchants (\(recordCount) records; \(outcome.unexpectedVerdicts == 0 ? "each one the verdict the record was built to get" : "\(outcome.unexpectedVerdicts) UNEXPECTED"))")
        for verdict in Verdict.allCases where verdictCounts[Int(verdict.rawValue)] > 0 {
            say("  \(verdict.description.padding(toLength: 17, withPad: " ", startingAt: 0)) \(verdictCounts[Int(verdict.rawValue)])")
        }
        say("attacks mixed in: \(attackCount) (" + Attack.allCases.compactMap { a in attacks[a].map { "\(a.rawValue) \($0)" } }.joined(separator: ", ") + "); none credited")
        say("")
        say("money (micro-units µ; 1 000 000 µ = 1 unit of currency)")
        say("  funded by customers        \(money(funded))")
        say("  escrowed in tickets        \(money(escrowed))")
        say("  accepted by merchants      \(money(acceptedCredit + goodsCredit)) (\(money(acceptedCredit)) in batches, \(money(goodsCredit)) for goods)")
        say("  settled to merchants       \(money(settled))")
        say("  refunded to customers      \(money(refunded))")
        say("  withdrawn by merchants     \(money(withdrawn))")
        let balanced = escrowed == settled + refunded
        if !balanced { outcome.failures += 1 }
        say("  escrow = settled + refunded: \(balanced ? "yes" : "NO")")
        say("")
        printAudit(report)
        outcome.auditConsistent = report.isConsistent
        say(String(format: "day %d done in %.2f s; files in %@", state.day, totalSeconds, dayDir))
        say("try: micropay merchant verify \(batchPaths[0]) --bank-id \(state.bankID) --merchant \(state.merchants[0]) --key-file \(dir)/merchants/\(state.merchants[0]).key --now \(verifyAt)")

        state.day += 1
        state.clock = refundAt + 3600
        try saveState()
    }

    private func saveState() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(state)
        try writeOutput("\(options.dir)/demo.json", Array(data), mode: 0o644)
    }

    // MARK: - The plan

    private func plan() -> ([PlannedTicket], [Slot]) {
        let customers = options.customers
        let merchants = options.merchants
        var tickets: [PlannedTicket] = []
        var byCustomer: [[Int]] = []
        let units: [UInt64] = [10, 20, 50, 100]
        for c in 0..<customers {
            var mine: [Int] = []
            var shops = Array(0..<merchants)
            for _ in 0..<(1 + random.below(min(3, merchants))) {
                let m = shops.remove(at: random.below(shops.count))
                mine.append(tickets.count)
                tickets.append(PlannedTicket(customer: c, merchant: m, isChain: true, unit: units[random.below(units.count)]))
                mine.append(tickets.count)
                tickets.append(PlannedTicket(customer: c, merchant: m, isChain: false, unit: 0))
            }
            byCustomer.append(mine)
        }
        let kinds = Attack.allCases
        var slots: [Slot] = []
        slots.reserveCapacity(options.payments)
        for _ in 0..<options.payments {
            let mine = byCustomer[random.below(customers)]
            var index = mine[random.below(mine.count)]
            // A chain near the protocol's 65536 words: pay with the order ticket at the same shop.
            if tickets[index].isChain && tickets[index].budget >= 60_000 { index += 1 }
            let attack: Attack? = random.chance(options.fraudRate) ? kinds[random.below(kinds.count)] : nil
            let unitsPaid = UInt32(random.chance(0.75) ? 1 : 2 + random.below(4))
            let amount = UInt64(10 + random.below(2000))
            let t = tickets[index]
            t.budget += t.isChain ? UInt64(unitsPaid) : amount
            slots.append(Slot(ticket: index, attack: attack, units: unitsPaid, amount: amount))
        }
        for t in tickets {
            if t.isChain {
                // Two words of slack: a forged next word and an overspend past the end still follow the rules.
                t.budget += 2
            } else {
                if random.chance(0.4) { t.buysGoods = random.below(2) }
                t.budget += 4000 + 1000
            }
        }
        return (tickets, slots)
    }

    // MARK: - Attacks

    /// Appends one forged record to a merchant's batch, with the verdict it is
    /// built to get; false if the ticket's state does not allow this attack yet.
    private func forge(_ attack: Attack, on t: PlannedTicket, into batches: inout [Batch], tickets: [PlannedTicket]) -> Bool {
        let bankID = state.bankID
        var randomWord = Bytes32()
        randomWord.withUnsafeMutableBytes { random.fill($0) }
        func order(seq: UInt32, cumulative: UInt64) -> [UInt8] {
            PaymentOrder.make(bankID: bankID, serial: t.serial, seq: seq, cumulative: cumulative, item: Bytes16(),
                              customerMAC: t.customerMAC!, sessionMAC: t.sessionMAC!).bytes
        }
        switch attack {
        case .replay:
            guard t.forwarded, let previous = t.previousAccepted else { return false }
            batches[t.merchant].add(previous, .replay)
        case .retry:
            guard t.forwarded, let last = t.lastAccepted else { return false }
            batches[t.merchant].add(last, .duplicate)
        case .forgedWord:
            guard t.forwarded, t.isChain else { return false }
            let bytes = ChainPayment(bankID: bankID, serial: t.serial, index: t.last + 1, word: randomWord).encoded()
            batches[t.merchant].add(bytes, .badChainWord)
        case .forgedTag:
            guard t.forwarded, !t.isChain else { return false }
            var bytes = order(seq: t.lastSeq + 1, cumulative: t.lastCumulative + 1)
            bytes[60 + random.below(16)] ^= UInt8(1 << random.below(8))
            batches[t.merchant].add(bytes, .badMAC)
        case .overspend:
            guard t.forwarded else { return false }
            if t.isChain {
                let bytes = ChainPayment(bankID: bankID, serial: t.serial, index: t.chainLength + 1, word: randomWord).encoded()
                batches[t.merchant].add(bytes, .overLimit)
            } else {
                batches[t.merchant].add(order(seq: t.lastSeq + 1, cumulative: t.limit + 1), .overLimit)
            }
        case .decreasingOrder:
            guard t.forwarded, !t.isChain, t.lastCumulative >= 1 else { return false }
            batches[t.merchant].add(order(seq: t.lastSeq + 1, cumulative: t.lastCumulative - 1), .decreasingAmount)
        case .wrongMerchant:
            guard options.merchants >= 2 else { return false }
            let other = (t.merchant + 1 + random.below(options.merchants - 1)) % options.merchants
            batches[other].add(t.ticketBytes, .badTicket)
        case .tamperedTicket:
            var bytes = t.ticketBytes
            bytes[8 + random.below(bytes.count - 8)] ^= UInt8(1 << random.below(8))
            batches[t.merchant].add(bytes, .badTicket)
        case .truncated:
            let full = t.lastAccepted ?? t.ticketBytes
            batches[t.merchant].add(Array(full.prefix(1 + random.below(full.count - 1))), .malformed)
        case .unknownSerial:
            let serial = (UInt64(1) << 40) + UInt64(random.below(1 << 20))
            batches[t.merchant].add(ChainPayment(bankID: bankID, serial: serial, index: 1, word: randomWord).encoded(), .unknownTicket)
        }
        return true
    }
}
