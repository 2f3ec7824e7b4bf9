import Foundation
import MicropayBank
import MicropayCore
import Testing

/// A bank with customers 1001 (funded 100 000) and 1002, merchant 2002,
/// and a policy capping limits at 1 000 000.
struct IssueFixture {
    static let policy = BankPolicy(maxLimit: 1_000_000)
    let bank: Bank
    let customerMAC: MACKey

    init(policy: BankPolicy = IssueFixture.policy) throws {
        bank = try makeBank(firstSerial: 100, policy: policy)
        let customer = try bank.openCustomer(number: 1001)
        _ = try bank.openCustomer(number: 1002)
        _ = try bank.openMerchant(number: 2002)
        try bank.fund(customer: 1001, amount: 100_000)
        customerMAC = MACKey(macOf: customer.key)
    }

    /// An order-mode request for 1000 by default; chain mode when `chainLength` > 0.
    func request(
        bankID: UInt32 = 7, customer: UInt64 = 1001, merchant: UInt64 = 2002, limit: UInt64 = 1000, unit: UInt64 = 0,
        chainLength: UInt32 = 0, lifetime: UInt32 = 3600, root: Bytes32 = Bytes32(), chainID: Bytes12 = Bytes12(),
        requestID: Bytes16 = .random(), mac: MACKey? = nil
    ) -> [UInt8] {
        TicketRequest.make(bankID: bankID, customer: customer, merchant: merchant, limit: limit, unit: unit,
                           chainLength: chainLength, lifetime: lifetime, root: root, chainID: chainID,
                           requestID: requestID, customerMAC: mac ?? customerMAC).bytes
    }
}

/// One way to get a TicketRequest refused, with the exact error expected.
struct Refusal: Sendable, CustomTestStringConvertible {
    let name: String
    let expected: BankError
    let policy: BankPolicy
    let build: @Sendable (IssueFixture) -> [UInt8]

    init(_ name: String, _ expected: BankError, policy: BankPolicy = IssueFixture.policy,
         _ build: @escaping @Sendable (IssueFixture) -> [UInt8]) {
        self.name = name
        self.expected = expected
        self.policy = policy
        self.build = build
    }

    var testDescription: String { name }
}

let someRoot = Bytes32(hex: String(repeating: "ab", count: 32))!
let someChainID = Bytes12(hex: String(repeating: "cd", count: 12))!

@Suite("Ticket issue (§5)")
struct IssueTests {
    static let refusals: [Refusal] = [
        Refusal("malformed: one byte short", .malformed(.wrongLength(.ticketRequest, expected: 128, actual: 127))) {
            Array($0.request().dropLast())
        },
        Refusal("tag", .badRequestTag) { f in var r = f.request(); r[127] ^= 1; return r },
        Refusal("tag is checked first", .badRequestTag) { f in var r = f.request(merchant: 9999, lifetime: 0); r[120] ^= 0x80; return r },
        Refusal("tag under another customer's key", .badRequestTag) { f in
            f.request(customer: 1002)  // tagged with 1001's key
        },
        Refusal("another bank", .wrongBank(8)) { $0.request(bankID: 8) },
        Refusal("customer without an account", .unknownCustomer(5555)) { f in
            let master = try! SecretKey(hex: Vectors.section("keys")["master"] as? String ?? "")
            let key = KeyDerivation.accountKey(master: master, role: .customer, bankID: 7, account: 5555)
            return f.request(customer: 5555, mac: MACKey(macOf: key))
        },
        Refusal("merchant unknown", .unknownMerchant(9999)) { $0.request(merchant: 9999) },
        Refusal("merchant is a customer account", .unknownMerchant(1002)) { $0.request(merchant: 1002) },
        Refusal("merchant checked before mode", .unknownMerchant(9999)) { $0.request(merchant: 9999, unit: 5) },
        Refusal("order mode with a unit", .modeRule(.orderFieldsNotZero)) { $0.request(unit: 5) },
        Refusal("order mode with a chain id", .modeRule(.orderFieldsNotZero)) { $0.request(chainID: someChainID) },
        Refusal("order mode with a root", .modeRule(.orderFieldsNotZero)) { $0.request(root: someRoot) },
        Refusal("order mode, zero limit", .modeRule(.zeroLimit)) { $0.request(limit: 0) },
        Refusal("chain of 65537", .modeRule(.chainLengthOutOfRange(65537))) {
            $0.request(limit: 65537, unit: 1, chainLength: 65537, root: someRoot, chainID: someChainID)
        },
        Refusal("chain longer than the policy's", .modeRule(.chainLengthOutOfRange(1001)), policy: BankPolicy(maxChainLength: 1000)) {
            $0.request(limit: 1001, unit: 1, chainLength: 1001, root: someRoot, chainID: someChainID)
        },
        Refusal("chain with unit 0", .modeRule(.zeroUnit)) {
            $0.request(limit: 0, unit: 0, chainLength: 4, root: someRoot, chainID: someChainID)
        },
        Refusal("n × unit overflows", .modeRule(.limitOverflow)) {
            $0.request(limit: 1000, unit: UInt64.max / 2, chainLength: 4, root: someRoot, chainID: someChainID)
        },
        Refusal("limit ≠ n × unit", .modeRule(.limitNotChainTimesUnit(limit: 41, expected: 40))) {
            $0.request(limit: 41, unit: 10, chainLength: 4, root: someRoot, chainID: someChainID)
        },
        Refusal("limit above policy", .limitAbovePolicy(limit: 1_000_001, max: 1_000_000)) { $0.request(limit: 1_000_001) },
        Refusal("mode checked before lifetime", .modeRule(.zeroLimit)) { $0.request(limit: 0, lifetime: 0) },
        Refusal("lifetime 0", .lifetimeOutOfRange(0, max: 604_800)) { $0.request(lifetime: 0) },
        Refusal("lifetime a second over 7 days", .lifetimeOutOfRange(604_801, max: 604_800)) { $0.request(lifetime: 604_801) },
        Refusal("lifetime checked before balance", .lifetimeOutOfRange(0, max: 604_800)) { $0.request(limit: 200_000, lifetime: 0) },
        Refusal("balance", .insufficientFunds(account: 1001, balance: 100_000, needed: 100_001)) { $0.request(limit: 100_001) },
    ]

    @Test(arguments: refusals)
    func refusedRequestChangesNothing(_ refusal: Refusal) throws {
        let fixture = try IssueFixture(policy: refusal.policy)
        let before = try fixture.bank.audit()
        #expect(throws: refusal.expected) { try fixture.bank.issue(request: refusal.build(fixture), now: 1_800_000_000) }
        #expect(try fixture.bank.audit() == before)
        // No serial was burnt: the next good request gets the first one.
        #expect(try fixture.bank.issue(request: fixture.request(), now: 1_800_000_000).serial == 100)
    }

    @Test func issueEscrowsTheLimitAndSealsForBothParties() throws {
        let f = try IssueFixture()
        let chainID = Bytes12(hex: "0102030405060708090a0b0c")!
        let seed = Bytes32(hex: String(repeating: "11", count: 32))!
        let root = HashChain.walk(chainID: chainID, from: 100, word: seed, to: 0)
        let requestID = Bytes16(hex: "ffeeddccbbaa99887766554433221100")!
        let issued = try f.bank.issue(request: f.request(limit: 700, unit: 7, chainLength: 100, lifetime: 600, root: root,
                                                         chainID: chainID, requestID: requestID), now: 1_800_000_000)
        #expect(issued.serial == 100)
        #expect(try f.bank.balance(of: 1001) == 100_000 - 700)
        let master = try SecretKey(hex: Vectors.section("keys")["master"] as? String ?? "")
        let sessionKey = KeyDerivation.sessionKey(master: master, bankID: 7, serial: 100)

        let envelope = try issued.envelope.open(customerKey: try f.bank.accountKey(1001))
        #expect(envelope.merchant == 2002 && envelope.limit == 700 && envelope.unit == 7 && envelope.chainLength == 100)
        #expect(envelope.issued == 1_800_000_000 && envelope.expires == 1_800_000_600)
        #expect(envelope.requestID == requestID && envelope.chainID == chainID && envelope.sessionKey == sessionKey)
        let ticket = try issued.ticket.open(merchantKey: try f.bank.accountKey(2002))
        #expect(ticket.customer == 1001 && ticket.root == root && ticket.expires == 1_800_000_600 && ticket.sessionKey == sessionKey)
        #expect(issued.ticket.merchant == 2002 && issued.envelope.customer == 1001 && issued.ticket.bankID == 7)
        #expect(try f.bank.audit().escrowTotal == 700)
    }

    @Test func retryReturnsStoredBytesAndDebitsOnce() throws {
        let f = try IssueFixture()
        let request = f.request(limit: 60_000, unit: 60, chainLength: 1000, root: someRoot, chainID: someChainID)
        let first = try f.bank.issue(request: request, now: 1_800_000_000)
        #expect(try f.bank.balance(of: 1001) == 40_000)
        // The retry arrives later, when the root is known and the balance could
        // not pay again: it sits before both checks, so it still succeeds.
        let again = try f.bank.issue(request: request, now: 1_800_000_500)
        #expect(again.isRetry && !first.isRetry)
        #expect(again.envelope.bytes == first.envelope.bytes)
        #expect(again.ticket.bytes == first.ticket.bytes)
        #expect(again.serial == first.serial)
        #expect(try f.bank.balance(of: 1001) == 40_000)
        #expect(try f.bank.audit().escrowTotal == 60_000)
    }

    @Test func requestIDReusedForOtherBytesIsRefused() throws {
        let f = try IssueFixture()
        let requestID = Bytes16.random()
        _ = try f.bank.issue(request: f.request(limit: 1000, requestID: requestID), now: 1_800_000_000)
        #expect(throws: BankError.requestIDReused(requestID)) {
            try f.bank.issue(request: f.request(limit: 1001, requestID: requestID), now: 1_800_000_000)
        }
        // Another customer may use the same request_id: ids are per customer.
        try f.bank.fund(customer: 1002, amount: 5000)
        let key1002 = MACKey(macOf: try f.bank.accountKey(1002))
        #expect(try f.bank.issue(request: f.request(customer: 1002, requestID: requestID, mac: key1002), now: 1_800_000_000).serial == 101)
        #expect(try f.bank.balance(of: 1001) == 99_000)
    }

    @Test func reusedRootIsRefusedBeforeBalance() throws {
        let f = try IssueFixture()
        _ = try f.bank.issue(request: f.request(limit: 40, unit: 10, chainLength: 4, root: someRoot, chainID: someChainID),
                             now: 1_800_000_000)
        // Other chain_id, same root, and more than the balance: check 5 comes before 6.
        #expect(throws: BankError.rootReused) {
            try f.bank.issue(request: f.request(limit: 400_000, unit: 100_000, chainLength: 4, root: someRoot), now: 1_800_000_000)
        }
        // An order-mode ticket's all-zero root is no chain root.
        _ = try f.bank.issue(request: f.request(), now: 1_800_000_000)
        _ = try f.bank.issue(request: f.request(), now: 1_800_000_000)
    }
}
