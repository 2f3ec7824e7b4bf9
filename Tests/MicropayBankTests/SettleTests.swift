import Foundation
import MicropayBank
import MicropayCore
import Testing

/// A bank with a funded customer 1001, merchant 2002 and one chain ticket
/// (n = 10, unit 5) whose words the test can compute.
struct SettleFixture {
    let bank: Bank
    let merchantMAC: MACKey
    let chainID = Bytes12(hex: "00112233445566778899aabb")!
    let seed = Bytes32(hex: String(repeating: "42", count: 32))!
    let serial: UInt64

    init(bank: Bank? = nil) throws {
        self.bank = try bank ?? makeBank(firstSerial: 500)
        let bank = self.bank
        let customer = try bank.openCustomer(number: 1001)
        let merchant = try bank.openMerchant(number: 2002)
        _ = try bank.openCustomer(number: 1002)
        try bank.fund(customer: 1001, amount: 10_000)
        merchantMAC = MACKey(macOf: merchant.key)
        let root = HashChain.walk(chainID: chainID, from: 10, word: seed, to: 0)
        let request = TicketRequest.make(bankID: 7, customer: 1001, merchant: 2002, limit: 50, unit: 5, chainLength: 10,
                                         lifetime: 3600, root: root, chainID: chainID, requestID: .random(),
                                         customerMAC: MACKey(macOf: customer.key))
        serial = try bank.issue(request: request.bytes, now: 1_800_000_000).serial
    }

    func word(_ index: UInt32) -> Deposit.Claim {
        .chain(ChainPayment(bankID: 7, serial: serial, index: index, word: HashChain.walk(chainID: chainID, from: 10, word: seed, to: index)))
    }

    func deposit(batch: UInt64, _ claims: [Deposit.Claim], bankID: UInt32 = 7, merchant: UInt64 = 2002, mac: MACKey? = nil) -> [UInt8] {
        Deposit.make(bankID: bankID, batchID: batch, merchant: merchant, claims: claims, merchantMAC: mac ?? merchantMAC).bytes
    }

    /// Re-tags bytes the caller altered, as a merchant would after building them.
    func retag(_ bytes: [UInt8]) -> [UInt8] {
        let body = Array(bytes.dropLast(16))
        return body + merchantMAC.mac128(label: .deposit, body).bytes
    }
}

struct DepositRefusal: Sendable, CustomTestStringConvertible {
    let name: String
    let expected: BankError
    let build: @Sendable (SettleFixture) -> [UInt8]
    init(_ name: String, _ expected: BankError, _ build: @escaping @Sendable (SettleFixture) -> [UInt8]) {
        self.name = name
        self.expected = expected
        self.build = build
    }
    var testDescription: String { name }
}

/// A store that runs the next of `interferences`, if any, just before each
/// write transaction: what another process can do between the moment a
/// Deposit's claims are judged and the moment the judgement commits. It
/// counts its transactions.
final class InterferingStore: LedgerStore, @unchecked Sendable {
    let inner: SQLiteLedgerStore
    var interferences: [() throws -> Void] = []
    var reads = 0, writes = 0

    init(inner: SQLiteLedgerStore) { self.inner = inner }

    func read<T>(_ body: (any LedgerTransaction) throws -> T) throws -> T {
        reads += 1
        return try inner.read(body)
    }

    func write<T>(_ body: (any LedgerTransaction) throws -> T) throws -> T {
        writes += 1
        if !interferences.isEmpty { try interferences.removeFirst()() }
        return try inner.write(body)
    }
}

@Suite("Settlement (§9)")
struct SettleTests {
    static let refusals: [DepositRefusal] = [
        DepositRefusal("too short", .malformed(.wrongLength(.deposit, expected: 48, actual: 1))) { _ in [0x30] },
        DepositRefusal("not a Deposit", .malformed(.unexpectedKind(expected: .deposit, found: .receipt))) { f in
            var d = f.deposit(batch: 1, [f.word(1)]); d[0] = 0x31; return d
        },
        DepositRefusal("merchant unknown", .unknownMerchant(9999)) { f in
            let master = try! SecretKey(hex: Vectors.section("keys")["master"] as? String ?? "")
            let key = KeyDerivation.accountKey(master: master, role: .merchant, bankID: 7, account: 9999)
            return f.deposit(batch: 1, [f.word(1)], merchant: 9999, mac: MACKey(macOf: key))
        },
        DepositRefusal("merchant field names a customer", .unknownMerchant(1002)) { f in f.deposit(batch: 1, [f.word(1)], merchant: 1002) },
        DepositRefusal("tag", .badDepositTag) { f in var d = f.deposit(batch: 1, [f.word(1)]); d[d.count - 1] ^= 1; return d },
        DepositRefusal("tag before bank", .badDepositTag) { f in var d = f.deposit(batch: 1, [f.word(1)], bankID: 8); d[40] ^= 1; return d },
        DepositRefusal("another bank", .wrongBank(8)) { f in f.deposit(batch: 1, [f.word(1)], bankID: 8) },
        DepositRefusal("zero field", .malformed(.nonZeroField(.deposit, offset: 30))) { f in
            var d = f.deposit(batch: 1, [f.word(1)]); d[30] = 1; return f.retag(d)
        },
        DepositRefusal("count larger than the claims", .malformed(.wrongLength(.deposit, expected: 152, actual: 100))) { f in
            var d = f.deposit(batch: 1, [f.word(1)]); d[27] = 2; return f.retag(d)
        },
        DepositRefusal("a claim of another kind", .malformed(.invalidField(.deposit, field: "claim 0 kind", reason: "0x10 at offset 32 is neither a ChainPayment nor a PaymentOrder"))) { f in
            var d = f.deposit(batch: 1, [f.word(1)]); d[32] = 0x10; return f.retag(d)
        },
        DepositRefusal("a claim with version 2", .malformed(.unsupportedVersion(.chainPayment, 2))) { f in
            var d = f.deposit(batch: 1, [f.word(1)]); d[33] = 2; return f.retag(d)
        },
    ]

    @Test(arguments: refusals)
    func refusedDepositChangesNothingAndLeavesBatchUnused(_ refusal: DepositRefusal) throws {
        let f = try SettleFixture()
        let before = try f.bank.audit()
        #expect(throws: refusal.expected) { try f.bank.settle(deposit: refusal.build(f), now: 1_800_000_100) }
        #expect(try f.bank.audit() == before)
        #expect(try f.bank.receipts(merchant: 2002).isEmpty)
        // Batch 1 is still free, and the ticket still unclaimed.
        let receipt = try f.bank.settle(deposit: f.deposit(batch: 1, [f.word(3)]), now: 1_800_000_100)
        #expect(receipt.codes == [.accepted] && receipt.credited == 15)
    }

    @Test func depositSentTwicePaysOnce() throws {
        let f = try SettleFixture()
        let bytes = f.deposit(batch: 77, [f.word(2), f.word(6)])
        let first = try f.bank.settle(deposit: bytes, now: 1_800_000_100)
        #expect(first.codes == [.accepted, .accepted] && first.credited == 30)
        let again = try f.bank.settle(deposit: bytes, now: 1_800_000_200)
        #expect(again.bytes == first.bytes)
        #expect(try f.bank.balance(of: 2002) == 30)
        // The same claims under a new batch id are replays at the bank.
        let replay = try f.bank.settle(deposit: f.deposit(batch: 78, [f.word(2), f.word(6)]), now: 1_800_000_100)
        #expect(replay.codes == [.replay, .replay] && replay.credited == 0)
        #expect(try f.bank.balance(of: 2002) == 30)
        #expect(try f.bank.receipts(merchant: 2002).map(\.batchID) == [77, 78])
        #expect(try f.bank.audit().isConsistent)
    }

    @Test func claimsSeeEarlierClaimsOfTheSameDeposit() throws {
        let f = try SettleFixture()
        var wrong = HashChain.walk(chainID: f.chainID, from: 10, word: f.seed, to: 7)
        wrong.withUnsafeMutableBytes { $0[0] ^= 1 }
        let claims: [Deposit.Claim] = [
            f.word(4), f.word(4), f.word(3),
            .chain(ChainPayment(bankID: 7, serial: f.serial, index: 7, word: wrong)),
            .chain(ChainPayment(bankID: 7, serial: f.serial, index: 11, word: Bytes32())), f.word(10),
            .chain(ChainPayment(bankID: 7, serial: f.serial + 1, index: 1, word: Bytes32())),
        ]
        let receipt = try f.bank.settle(deposit: f.deposit(batch: 1, claims), now: 1_800_000_100)
        #expect(receipt.codes == [.accepted, .replay, .replay, .badChainWord, .overLimit, .accepted, .unknownTicket])
        #expect(receipt.credited == 50)
        #expect(try f.bank.ticket(serial: f.serial)?.settledAmount == 50)
    }

    @Test func claimsJudgedBeforeAnotherSettlementOfTheirTicketAreJudgedAgain() throws {
        // Two banks over one ledger file, as two processes: the claims of a
        // Deposit are judged outside the write lock, so another settlement
        // can land in between. If it touched a ticket the judging read, the
        // write commits nothing and the claims are judged again, still
        // outside the lock; if not, the judgement stands.
        let path = try temporaryDirectory().appendingPathComponent("ledger.sqlite").path
        let master = SecretKey.random()
        let other = try Bank(store: SQLiteLedgerStore(path: path, durability: .off), master: master, bankID: 7, firstSerial: 500)
        let f = try SettleFixture(bank: other)
        let store = InterferingStore(inner: try SQLiteLedgerStore(path: path, durability: .off))
        let bank = try Bank(store: store, master: master, bankID: 7)

        // Something in between on no ticket the claims read: judged once, committed.
        store.interferences = [{ try other.fund(customer: 1002, amount: 7) }]
        (store.reads, store.writes) = (0, 0)
        #expect(try bank.settle(deposit: f.deposit(batch: 1, [f.word(2)]), now: 1_800_000_100).codes == [.accepted])
        #expect((store.reads, store.writes) == (1, 1), "the judgement was reused")

        // A settlement of the same ticket in between: judged again, index 5 after 7 is a replay.
        store.interferences = [{ _ = try other.settle(deposit: f.deposit(batch: 2, [f.word(7)]), now: 1_800_000_100) }]
        (store.reads, store.writes) = (0, 0)
        let receipt = try bank.settle(deposit: f.deposit(batch: 3, [f.word(5)]), now: 1_800_000_100)
        #expect(receipt.codes == [.replay], "nothing more to pay")
        #expect(receipt.credited == 0)
        #expect((store.reads, store.writes) == (2, 2), "judged twice, both times outside the write lock")
        #expect(try other.ticket(serial: f.serial)?.settledAmount == 35)
        #expect(try other.balance(of: 2002) == 35)

        // What the claims read changed before every write (each time a ticket
        // is issued under a serial a claim names): refused as contended,
        // nothing settled; the same Deposit settles once it is left alone.
        let before = try other.audit()
        let customerMAC = MACKey(macOf: try other.accountKey(1001))
        store.interferences = (1...Bank.settleAttempts).map { _ in
            {
                let request = TicketRequest.make(bankID: 7, customer: 1001, merchant: 2002, limit: 5, unit: 0, chainLength: 0,
                                                 lifetime: 3600, requestID: .random(), customerMAC: customerMAC)
                _ = try other.issue(request: request.bytes, now: 1_800_000_000)
            }
        }
        let unissued = (1...UInt64(Bank.settleAttempts)).map { Deposit.Claim.chain(ChainPayment(bankID: 7, serial: f.serial + $0, index: 1, word: Bytes32())) }
        let contended = f.deposit(batch: 4, [f.word(9)] + unissued)
        #expect(throws: BankError.settlementContended(attempts: Bank.settleAttempts)) {
            try bank.settle(deposit: contended, now: 1_800_000_100)
        }
        #expect(try other.balance(of: 2002) == 35)
        #expect(try other.ticket(serial: f.serial)?.settledAmount == 35)
        #expect(try other.receipts(merchant: 2002).map(\.batchID) == [1, 2, 3], "batch 4 unused")
        #expect(try other.audit().escrowTotal == before.escrowTotal + 5 * UInt64(Bank.settleAttempts))
        let settled = try bank.settle(deposit: contended, now: 1_800_000_100)
        #expect(settled.codes == [.accepted] + Array(repeating: .wrongMode, count: Bank.settleAttempts))
        #expect(try other.balance(of: 2002) == 45)
        let audit = try other.audit()
        #expect(audit.isConsistent, "\(audit.problems)")
    }

    @Test func ticketExpiringAtTheLedgersLastSecondIsRefunded() throws {
        // expires = Int64.max, the latest the ledger's clock holds: any later `now` refunds it.
        let bank = try makeBank()
        let customer = try bank.openCustomer(number: 1001)
        _ = try bank.openMerchant(number: 2002)
        try bank.fund(customer: 1001, amount: 1000)
        let request = TicketRequest.make(bankID: 7, customer: 1001, merchant: 2002, limit: 100, unit: 0, chainLength: 0,
                                         lifetime: 3600, requestID: .random(), customerMAC: MACKey(macOf: customer.key))
        let serial = try bank.issue(request: request.bytes, now: UInt64(Int64.max) - 3600).serial
        #expect(try bank.ticket(serial: serial)?.expires == UInt64(Int64.max))
        #expect(try bank.balance(of: 1001) == 900)
        #expect(try bank.refundExpired(now: UInt64(Int64.max) + 86_400).isEmpty, "not yet past expires + grace")
        #expect(try bank.refundExpired(now: UInt64.max) == [serial: 100])
        #expect(try bank.balance(of: 1001) == 1000)
        #expect(try bank.audit().isConsistent)
    }

    @Test func expiryIsStrictAfterExpiresPlusGrace() throws {
        let f = try SettleFixture()
        let deadline: UInt64 = 1_800_000_000 + 3600 + 86400
        #expect(try f.bank.settle(deposit: f.deposit(batch: 1, [f.word(1)]), now: deadline).codes == [.accepted])
        #expect(try f.bank.refundExpired(now: deadline).isEmpty)
        #expect(try f.bank.settle(deposit: f.deposit(batch: 2, [f.word(2)]), now: deadline + 1).codes == [.expired])
        #expect(try f.bank.refundExpired(now: deadline + 1) == [f.serial: 45])
        #expect(try f.bank.balance(of: 1001) == 10_000 - 5)
        // Refunded: even a claim judged at an earlier clock is `expired` now.
        #expect(try f.bank.settle(deposit: f.deposit(batch: 3, [f.word(3)]), now: 1_800_000_100).codes == [.expired])
        #expect(try f.bank.audit().isConsistent)
    }
}
