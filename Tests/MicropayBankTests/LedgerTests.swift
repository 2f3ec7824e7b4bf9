import Foundation
import MicropayBank
import MicropayCore
import Synchronization
import Testing

/// A new folder, and the paths of a ledger and a master key in it.
private func bankFiles() throws -> (dir: URL, ledger: String, key: String) {
    let dir = try temporaryDirectory()
    return (dir, dir.appendingPathComponent("ledger.sqlite").path, dir.appendingPathComponent("master.key").path)
}

@Suite("Accounts, amounts, master key, ledger file")
struct LedgerTests {
    @Test func accountNumbersExplicitOrNextFree() throws {
        let bank = try makeBank()
        #expect(try bank.openCustomer().number == 1)
        #expect(try bank.openMerchant(number: 3).number == 3)
        #expect(try bank.openMerchant().number == 2)
        #expect(try bank.openCustomer().number == 4, "3 is taken: skipped")
        #expect(throws: BankError.accountExists(3)) { try bank.openCustomer(number: 3) }
        #expect(try bank.account(3)?.role == .merchant)
        #expect(try bank.account(4)?.role == .customer)
    }

    @Test func amountsAreCheckedAndNeverGoBelowZero() throws {
        let bank = try makeBank()
        let customer = try bank.openCustomer(number: 1001)
        let merchant = try bank.openMerchant(number: 2002)
        #expect(throws: BankError.zeroAmount) { try bank.fund(customer: customer.number, amount: 0) }
        #expect(throws: BankError.amountTooLarge(UInt64(Int64.max) + 1)) {
            try bank.fund(customer: customer.number, amount: UInt64(Int64.max) + 1)
        }
        #expect(throws: BankError.wrongRole(account: 2002, expected: .customer)) { try bank.fund(customer: merchant.number, amount: 5) }
        #expect(throws: BankError.unknownAccount(7)) { try bank.fund(customer: 7, amount: 5) }
        try bank.fund(customer: customer.number, amount: UInt64(Int64.max) - 10)
        #expect(throws: BankError.amountOverflow) { try bank.fund(customer: customer.number, amount: 11) }
        try bank.fund(customer: customer.number, amount: 10)
        #expect(try bank.balance(of: 1001) == UInt64(Int64.max))
        #expect(throws: BankError.insufficientFunds(account: 2002, balance: 0, needed: 1)) { try bank.withdraw(account: 2002, amount: 1) }
        try bank.withdraw(account: 1001, amount: UInt64(Int64.max) - 3)
        #expect(throws: BankError.insufficientFunds(account: 1001, balance: 3, needed: 4)) { try bank.withdraw(account: 1001, amount: 4) }
        try bank.withdraw(account: 1001, amount: 3)
        #expect(try bank.balance(of: 1001) == 0)
        let audit = try bank.audit()
        #expect(audit.isConsistent, "\(audit.problems)")
        #expect(audit.funded == UInt64(Int64.max) && audit.withdrawn == UInt64(Int64.max))
    }

    @Test func auditHoldsWhenTheJournalHasMovedMoreThanInt64MaxOrUInt64Max() throws {
        // Each amount fits; their sums over the journal's life do not fit SQLite's integers.
        let bank = try makeBank()
        let customer = try bank.openCustomer()
        let big: UInt64 = 1 << 62
        try bank.fund(customer: customer.number, amount: big)
        try bank.withdraw(account: customer.number, amount: big)
        try bank.fund(customer: customer.number, amount: big)
        try bank.withdraw(account: customer.number, amount: big - 5)
        try bank.fund(customer: customer.number, amount: big)
        let audit = try bank.audit()
        #expect(audit.isConsistent, "\(audit.problems)")
        #expect(audit.funded == 3 * big && audit.withdrawn == 2 * big - 5)
        #expect(audit.customerTotal == big + 5)
        #expect(try bank.balance(of: customer.number) == big + 5)

        // Past 2^64 in all: the totals stop at UInt64.max, the checks stay exact.
        let other = try makeBank()
        let c = try other.openCustomer()
        let max = UInt64(Int64.max)
        for _ in 0..<2 {
            try other.fund(customer: c.number, amount: max)
            try other.withdraw(account: c.number, amount: max)
        }
        try other.fund(customer: c.number, amount: 2)
        let past = try other.audit()
        #expect(past.isConsistent, "\(past.problems)")
        #expect(past.funded == UInt64.max && past.withdrawn == 2 * max && past.customerTotal == 2)
        try other.withdraw(account: c.number, amount: 1)
        #expect(try other.audit().isConsistent)
        // ... and still find money booked in under another kind.
        try other.store.write { tx in
            try tx.post(JournalEntry(debit: .external, credit: .customer(c.number), amount: 9, kind: .settle, reference: "x"))
            try tx.setCirculation(tx.circulation() + 9)
        }
        #expect(try other.audit().problems.contains { $0.hasPrefix("external") })
    }

    @Test func auditHoldsWhenAMerchantHasSettledMoreThanUInt64Max() throws {
        // Three whole tickets of Int64.max settled and withdrawn: receipts and settle lines agree past 2^64.
        let master = SecretKey.random()
        let bank = try makeBank(policy: BankPolicy(maxLimit: UInt64(Int64.max)), master: master)
        let customer = try bank.openCustomer(), merchant = try bank.openMerchant()
        let max = UInt64(Int64.max)
        for round in UInt64(0)..<3 {
            try bank.fund(customer: customer.number, amount: max)
            let request = TicketRequest.make(bankID: 7, customer: customer.number, merchant: merchant.number, limit: max,
                                             unit: 0, chainLength: 0, lifetime: 3600, requestID: .random(),
                                             customerMAC: MACKey(macOf: customer.key))
            let serial = try bank.issue(request: request.bytes, now: 1_800_000_000).serial
            let session = MACKey(macOf: KeyDerivation.sessionKey(master: master, bankID: 7, serial: serial))
            let order = PaymentOrder.make(bankID: 7, serial: serial, seq: 1, cumulative: max, item: .random(),
                                          customerMAC: MACKey(macOf: customer.key), sessionMAC: session)
            let deposit = Deposit.make(bankID: 7, batchID: round, merchant: merchant.number, claims: [.order(order)],
                                       merchantMAC: MACKey(macOf: merchant.key))
            #expect(try bank.settle(deposit: deposit.bytes, now: 1_800_000_100).credited == max)
            try bank.withdraw(account: merchant.number, amount: max)
            let audit = try bank.audit()
            #expect(audit.isConsistent, "round \(round): \(audit.problems)")
        }
    }

    @Test func ledgerSumIsExactPast64Bits() {
        var sum = LedgerSum(UInt64.max)
        sum.add(1)
        #expect(sum == LedgerSum(high: 1, low: 0) && sum.clamped == UInt64.max)
        sum.add(UInt64.max)
        #expect(sum == LedgerSum(high: 1, low: UInt64.max))
        #expect(sum.minus(LedgerSum(high: 1, low: 5)) == UInt64.max - 5)
        #expect(sum.minus(LedgerSum(high: 0, low: 7)) == nil, "larger than a UInt64")
        #expect(LedgerSum(high: 1, low: 2).minus(LedgerSum(high: 0, low: 3)) == UInt64.max, "a borrow from the high word")
        #expect(LedgerSum(5).minus(LedgerSum(6)) == nil, "negative")
        #expect(LedgerSum(6).minus(LedgerSum(6)) == 0)
    }

    @Test func auditFindsEachKindOfTampering() throws {
        // The audit's checks, each broken once behind the bank's back through the store.
        func tampered(_ change: (any LedgerTransaction, UInt64) throws -> Void) throws -> [String] {
            let f = try SettleFixture()
            _ = try f.bank.settle(deposit: f.deposit(batch: 1, [f.word(3)]), now: 1_800_000_100)
            #expect(try f.bank.audit().isConsistent)
            try f.bank.store.write { try change($0, f.serial) }
            return try f.bank.audit().problems
        }
        let circulation = try tampered { tx, _ in try tx.setCirculation(tx.circulation() + 1) }
        #expect(circulation.count == 1 && circulation[0].hasPrefix("circulation counter"), "\(circulation)")
        let escrow = try tampered { tx, serial in
            var ticket = try #require(try tx.ticket(serial))
            ticket.settledAmount += 5
            try tx.updateTicket(ticket)
        }
        #expect(escrow.contains { $0.hasPrefix("escrow:500: escrow 30, journal 35") }, "\(escrow)")
        #expect(escrow.contains { $0.hasPrefix("invariant") }, "\(escrow)")
        let sneaked = try tampered { tx, _ in
            // Money in from outside, booked as a settlement: balances agree with the journal, the totals do not.
            try tx.post(JournalEntry(debit: .external, credit: .customer(1002), amount: 9, kind: .settle, reference: "x"))
            try tx.setCirculation(tx.circulation() + 9)
        }
        #expect(sneaked.contains { $0.hasPrefix("external") }, "\(sneaked)")
        let receipts = try tampered { tx, serial in
            try tx.post(JournalEntry(debit: .escrow(serial: serial), credit: .merchant(2002), amount: 5, kind: .settle, reference: "x"))
            var ticket = try #require(try tx.ticket(serial))
            ticket.settledAmount += 5
            try tx.updateTicket(ticket)
        }
        #expect(receipts.count == 1 && receipts[0].hasPrefix("merchant 2002: receipts credit"), "\(receipts)")
    }

    @Test func defaultPolicy() {
        let policy = BankPolicy()
        #expect(policy.maxLifetime == 604_800 && policy.grace == 86_400 && policy.maxChainLength == 65_536)
        #expect(policy.maxLimit == 1_000_000_000_000)
        #expect(policy.maxLimit < UInt64(Int64.max) / 1_000_000)
    }

    @Test func ledgerRefusesAnotherOrAMissingMasterKey() throws {
        let (dir, ledger, keyPath) = try bankFiles()
        let customerKey: SecretKey
        do {
            let bank = try Bank.open(ledgerPath: ledger, masterKeyPath: keyPath, bankID: 9, durability: .off)
            let customer = try bank.openCustomer()
            try bank.fund(customer: customer.number, amount: 500)
            customerKey = customer.key
        }
        let original = try #require(try MasterKeyFile.load(path: keyPath))
        // The key file moved away: refused, and no new key is made for the old ledger.
        let aside = dir.appendingPathComponent("aside.key").path
        try FileManager.default.moveItem(atPath: keyPath, toPath: aside)
        #expect(throws: BankError.masterKeyMissing(path: keyPath)) {
            try Bank.open(ledgerPath: ledger, masterKeyPath: keyPath, bankID: 9, durability: .off)
        }
        #expect(!FileManager.default.fileExists(atPath: keyPath))
        // Another key in its place: refused, through `open` and through `init` alike.
        let other = try MasterKeyFile.loadOrCreate(path: keyPath)
        #expect(other != original)
        #expect(throws: BankError.masterKeyMismatch) {
            try Bank.open(ledgerPath: ledger, masterKeyPath: keyPath, bankID: 9, durability: .off)
        }
        #expect(throws: BankError.masterKeyMismatch) {
            try Bank(store: SQLiteLedgerStore(path: ledger, durability: .off), master: other, bankID: 9)
        }
        // The right key back: everything as it was.
        try FileManager.default.removeItem(atPath: keyPath)
        try FileManager.default.moveItem(atPath: aside, toPath: keyPath)
        let bank = try Bank.open(ledgerPath: ledger, masterKeyPath: keyPath, bankID: 9, durability: .off)
        #expect(try bank.accountKey(1) == customerKey)
        #expect(try bank.balance(of: 1) == 500)
    }

    @Test func storesOpenedAtOnceOnANewLedgerFileAllSucceed() throws {
        // Several processes' first open of one new file race to create its tables.
        for round in 0..<20 {
            let path = try temporaryDirectory().appendingPathComponent("ledger.sqlite").path
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 6) { _ in
                do { _ = try SQLiteLedgerStore(path: path, durability: .off) } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
            #expect(failures.withLock { $0 }.isEmpty, "round \(round)")
        }
    }

    @Test func ledgerWithoutAKeyCheckTakesTheFirstKeyItIsOpenedWith() throws {
        // A ledger written before the check value was kept: set up by hand, as that code did.
        let dir = try temporaryDirectory()
        let store = try SQLiteLedgerStore(path: dir.appendingPathComponent("ledger.sqlite").path, durability: .off)
        try store.write { try $0.initialize(bankID: 9, firstSerial: 1, firstAccount: 1) }
        #expect(try store.read { try $0.masterKeyCheck() } == nil)
        let key = SecretKey.random()
        _ = try Bank(store: store, master: key, bankID: 9)
        #expect(try store.read { try $0.masterKeyCheck() } == KeyDerivation.masterKeyCheck(master: key))
        _ = try Bank(store: store, master: key, bankID: 9)
        #expect(throws: BankError.masterKeyMismatch) { try Bank(store: store, master: .random(), bankID: 9) }
    }

    @Test func masterKeyCheckIsHMACOfItsLabel() throws {
        // Through the general HMAC (any key length), not the fixed-label subkey path it uses.
        let key = SecretKey.random()
        let mac = key.withUnsafeBytes { HMAC.authenticate(Array("MPKC".utf8), key: Array($0)) }
        #expect(KeyDerivation.masterKeyCheck(master: key) == mac.bytes.prefix(8).reduce(0) { $0 << 8 | UInt64($1) })
    }

    @Test func masterKeyFileIsCreatedPrivateAndReused() throws {
        let dir = try temporaryDirectory()
        let path = dir.appendingPathComponent("master.key").path
        let key = try MasterKeyFile.loadOrCreate(path: path)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        #expect((attributes[.size] as? NSNumber)?.intValue == 32)
        #expect(try MasterKeyFile.loadOrCreate(path: path) == key)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["master.key"], "no temporary file left")

        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: path)
        #expect(throws: BankError.masterKeyTooOpen(path: path, mode: 0o640)) { try MasterKeyFile.loadOrCreate(path: path) }
        try FileManager.default.setAttributes([.posixPermissions: 0o604], ofItemAtPath: path)
        #expect(throws: BankError.masterKeyTooOpen(path: path, mode: 0o604)) { try MasterKeyFile.loadOrCreate(path: path) }

        let short = dir.appendingPathComponent("short.key").path
        #expect(FileManager.default.createFile(atPath: short, contents: Data(repeating: 1, count: 31), attributes: [.posixPermissions: 0o600]))
        #expect(throws: BankError.masterKeyCorrupt(path: short, length: 31)) { try MasterKeyFile.loadOrCreate(path: short) }
    }

    @Test func reopenedLedgerKeepsEverythingAndDerivesTheSameKeys() throws {
        let (_, ledger, keyPath) = try bankFiles()
        let customerKey: SecretKey
        do {
            let bank = try Bank.open(ledgerPath: ledger, masterKeyPath: keyPath, bankID: 9, firstSerial: 1000)
            let customer = try bank.openCustomer()
            _ = try bank.openMerchant()
            try bank.fund(customer: customer.number, amount: 500)
            customerKey = customer.key
            let request = TicketRequest.make(bankID: 9, customer: 1, merchant: 2, limit: 200, unit: 0, chainLength: 0,
                                             lifetime: 60, requestID: .random(), customerMAC: MACKey(macOf: customer.key))
            #expect(try bank.issue(request: request.bytes, now: 1_800_000_000).serial == 1000)
        }
        let bank = try Bank.open(ledgerPath: ledger, masterKeyPath: keyPath, bankID: 9, firstSerial: 1)
        #expect(try bank.accountKey(1) == customerKey)
        #expect(try bank.balance(of: 1) == 300)
        #expect(try bank.ticket(serial: 1000)?.limit == 200)
        #expect(try bank.openCustomer().number == 3)
        #expect(throws: BankError.ledgerBankMismatch(stored: 9, expected: 10)) {
            try Bank.open(ledgerPath: ledger, masterKeyPath: keyPath, bankID: 10)
        }
    }
}
