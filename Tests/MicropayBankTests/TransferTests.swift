import Foundation
import MicropayBank
import MicropayCore
import Synchronization
import Testing

/// Funds and withdrawals under the caller's request id: a retry moves no
/// money a second time, and an id is never taken for another transfer.
@Suite("Transfers with request ids")
struct TransferTests {
    @Test func aRepeatedFundOrWithdrawalMovesMoneyOnce() throws {
        let bank = try makeBank()
        let customer = try bank.openCustomer(number: 1001).number
        #expect(try bank.fund(customer: customer, amount: 10_000, requestID: "in-1") == .moved)
        #expect(try bank.fund(customer: customer, amount: 10_000, requestID: "in-1") == .alreadyDone)
        #expect(try bank.balance(of: customer) == 10_000)
        #expect(try bank.withdraw(account: customer, amount: 3_000, requestID: "out-1") == .moved)
        #expect(try bank.withdraw(account: customer, amount: 3_000, requestID: "out-1") == .alreadyDone)
        #expect(try bank.balance(of: customer) == 7_000)
        // Drained since: the retry of out-1 is still the transfer already done, not a refusal.
        try bank.withdraw(account: customer, amount: 7_000)
        #expect(try bank.withdraw(account: customer, amount: 3_000, requestID: "out-1") == .alreadyDone)
        // Without an id every call moves money, as before.
        try bank.fund(customer: customer, amount: 5)
        try bank.fund(customer: customer, amount: 5)
        #expect(try bank.balance(of: customer) == 10)
        let audit = try bank.audit()
        #expect(audit.isConsistent, "\(audit.problems)")
        #expect(audit.funded == 10_010 && audit.withdrawn == 10_000)
    }

    @Test func anIdTakenByOneTransferIsRefusedForAnyOther() throws {
        let bank = try makeBank()
        let a = try bank.openCustomer(number: 1001).number
        let b = try bank.openCustomer(number: 1002).number
        let merchant = try bank.openMerchant(number: 2002).number
        try bank.fund(customer: a, amount: 1_000, requestID: "x")
        let earlier = TransferRecord(requestID: "x", kind: .fund, account: a, amount: 1_000)
        #expect(throws: BankError.transferIDReused(earlier: earlier)) { try bank.fund(customer: a, amount: 999, requestID: "x") }
        #expect(throws: BankError.transferIDReused(earlier: earlier)) { try bank.fund(customer: b, amount: 1_000, requestID: "x") }
        #expect(throws: BankError.transferIDReused(earlier: earlier)) { try bank.withdraw(account: a, amount: 1_000, requestID: "x") }
        #expect(throws: BankError.transferIDReused(earlier: earlier)) { try bank.withdraw(account: merchant, amount: 1, requestID: "x") }
        // Ids are compared byte for byte.
        #expect(try bank.fund(customer: b, amount: 1, requestID: "X") == .moved)
        #expect(try bank.balance(of: a) == 1_000 && bank.balance(of: b) == 1)
        #expect(try bank.audit().funded == 1_001)
    }

    @Test func aRefusedTransferLeavesItsIdFree() throws {
        let bank = try makeBank()
        let customer = try bank.openCustomer(number: 1001).number
        #expect(throws: BankError.insufficientFunds(account: customer, balance: 0, needed: 50)) {
            try bank.withdraw(account: customer, amount: 50, requestID: "out")
        }
        #expect(throws: BankError.unknownAccount(9)) { try bank.fund(customer: 9, amount: 50, requestID: "in") }
        #expect(throws: BankError.zeroAmount) { try bank.fund(customer: customer, amount: 0, requestID: "in") }
        // The refused calls recorded nothing: both ids now move money, once.
        #expect(try bank.fund(customer: customer, amount: 80, requestID: "in") == .moved)
        #expect(try bank.withdraw(account: customer, amount: 50, requestID: "out") == .moved)
        #expect(try bank.withdraw(account: customer, amount: 50, requestID: "out") == .alreadyDone)
        #expect(try bank.balance(of: customer) == 30)
    }

    @Test(arguments: ["", "a b", "tab\there", "café", "line\n", String(repeating: "z", count: 65)])
    func idsThatAreNotPrintableASCIIAreRefused(_ id: String) throws {
        let bank = try makeBank()
        let customer = try bank.openCustomer().number
        #expect(throws: BankError.badTransferID(id)) { try bank.fund(customer: customer, amount: 1, requestID: id) }
        #expect(throws: BankError.badTransferID(id)) { try bank.withdraw(account: customer, amount: 1, requestID: id) }
        #expect(try bank.balance(of: customer) == 0)
    }

    @Test func theLongestIdAndAUUIDAreTaken() throws {
        let bank = try makeBank()
        let customer = try bank.openCustomer().number
        #expect(try bank.fund(customer: customer, amount: 1, requestID: String(repeating: "~", count: 64)) == .moved)
        #expect(try bank.fund(customer: customer, amount: 1, requestID: UUID().uuidString) == .moved)
        #expect(try bank.balance(of: customer) == 2)
    }

    @Test func concurrentRetriesOfOneTransferMoveItOnce() throws {
        // Several clients (each its own connection to the ledger file) send the same
        // transfer at once, as retries racing a slow first attempt would.
        let dir = try temporaryDirectory()
        let ledger = dir.appendingPathComponent("ledger.sqlite").path
        let key = SecretKey.random()
        let first = try Bank(store: SQLiteLedgerStore(path: ledger, durability: .off), master: key, bankID: 7)
        let customer = try first.openCustomer().number
        for round in 0..<10 {
            let outcomes = Mutex<[Bank.TransferOutcome]>([])
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 4) { _ in
                do {
                    let bank = try Bank(store: SQLiteLedgerStore(path: ledger, durability: .off), master: key, bankID: 7)
                    let outcome = try bank.fund(customer: customer, amount: 100, requestID: "round-\(round)")
                    outcomes.withLock { $0.append(outcome) }
                } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
            #expect(failures.withLock { $0 }.isEmpty)
            #expect(outcomes.withLock { $0.filter { $0 == .moved }.count } == 1, "round \(round)")
            #expect(try first.balance(of: customer) == UInt64(round + 1) * 100)
        }
    }

    @Test func aLedgerFromBeforeRequestIdsOpensAndTakesThem() throws {
        // A bank's folder written by the release before this one: its ledger has no
        // transfers table until it is opened here.
        guard let fixture = Bundle.module.url(forResource: "ledger-v1", withExtension: nil) else {
            Issue.record("Resources/ledger-v1 is missing")
            return
        }
        let dir = try temporaryDirectory()
        for name in ["ledger.db", "master.key"] {
            try FileManager.default.copyItem(at: fixture.appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
        let keyPath = dir.appendingPathComponent("master.key").path
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyPath)
        let bank = try Bank.open(ledgerPath: dir.appendingPathComponent("ledger.db").path, masterKeyPath: keyPath, bankID: 7)
        #expect(try bank.balance(of: 1001) == 5_000, "the fixture's one funding")
        #expect(try bank.fund(customer: 1001, amount: 700, requestID: "after-upgrade") == .moved)
        #expect(try bank.fund(customer: 1001, amount: 700, requestID: "after-upgrade") == .alreadyDone)
        #expect(try bank.withdraw(account: 1001, amount: 200) == .moved)
        let audit = try bank.audit()
        #expect(audit.isConsistent, "\(audit.problems)")
        #expect(audit.funded == 5_700 && audit.withdrawn == 200)
    }
}
