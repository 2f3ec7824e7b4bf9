import Foundation
import GRDB
import MicropayCore
import Synchronization
import Testing

@testable import MicropayCustomer

/// What keeps a wallet from paying twice, or paying what no merchant can take:
/// one transaction per payment, across handles and processes; the merchant's
/// gap rule; the last payment kept to send again.
@Suite("Payment safety")
struct PaymentSafetyTests {
    static let bankID = UInt32(V.int("keys", "bank_id"))
    static let merchant = V.int("keys", "merchant")

    /// A customer holding ticket 43 (the vectors' order ticket bytes stand in for
    /// the merchant's copy) in chain mode of `length` × 1 or in order mode; and
    /// the request it was issued for.
    func customer(chainLength length: UInt32?, path: String = temporaryPath("wallet.db")) throws -> (Customer, TicketRequest) {
        let customer = try Customer.create(walletPath: path, bankID: Self.bankID, account: V.int("keys", "customer"),
                                           key: V.key("keys", "K_C"))
        let request = try length.map { try customer.requestChainTicket(merchant: Self.merchant, unit: 1, chainLength: $0, lifetime: 3600) }
            ?? customer.requestOrderTicket(merchant: Self.merchant, limit: 1_000_000, lifetime: 3600)
        let body = EnvelopeBody(merchant: Self.merchant, limit: request.limit, unit: request.unit, chainLength: request.chainLength,
                                chainID: request.chainID, issued: 1_800_000_000, expires: 1_800_003_600,
                                sessionKey: .random(), requestID: request.requestID)
        let envelope = Envelope.seal(body: body, bankID: Self.bankID, serial: 43, customer: customer.account,
                                     customerKey: V.key("keys", "K_C"))
        try customer.accept(envelope: envelope, ticket: try Ticket(decoding: V.bytes("issue_order", "ticket")))
        return (customer, request)
    }

    @Test("a step longer than the merchant's gap rule is refused and pays nothing")
    func stepsAboveTheGapAreRefused() throws {
        let (customer, request) = try customer(chainLength: 5000)
        #expect(throws: CustomerError.invalidArgument("pay at most 4096 units at once (the merchant's gap rule), got 4097")) {
            try customer.pay(serial: 43, units: 4097)
        }
        #expect(try customer.ticket(serial: 43).paidIndex == 0)
        let payment = try customer.pay(serial: 43, units: 4096)
        #expect(payment.index == 4096)
        #expect(HashChain.walk(chainID: request.chainID, from: 4096, word: payment.word, to: 0) == request.root)
    }

    @Test("handles accepting the bank's answer at once all keep the one ticket")
    func concurrentAccepts() throws {
        let path = temporaryPath("wallet.db")
        let customer = try Customer.create(walletPath: path, bankID: Self.bankID, account: V.int("keys", "customer"),
                                           key: V.key("keys", "K_C"))
        let request = try customer.requestOrderTicket(merchant: Self.merchant, limit: 5000, lifetime: 3600)
        let body = EnvelopeBody(merchant: Self.merchant, limit: 5000, unit: 0, chainLength: 0, chainID: Bytes12(),
                                issued: 1_800_000_000, expires: 1_800_003_600, sessionKey: .random(), requestID: request.requestID)
        let envelope = Envelope.seal(body: body, bankID: Self.bankID, serial: 43, customer: customer.account,
                                     customerKey: V.key("keys", "K_C"))
        let ticket = try Ticket(decoding: V.bytes("issue_order", "ticket"))
        let handles = try (0..<4).map { _ in try Customer.open(walletPath: path) }
        let failures = Mutex<[String]>([])
        // All four find no ticket yet while another writer holds the wallet, then take turns.
        try whileAnotherWriterHolds(path) {
            DispatchQueue.concurrentPerform(iterations: 4) { i in
                do { _ = try handles[i].accept(envelope: envelope, ticket: ticket) } catch {
                    failures.withLock { $0.append("\(error)") }
                }
            }
        }
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(try customer.tickets().map(\.serial) == [43])
        #expect(try customer.payOrder(serial: 43, amount: 10, item: Bytes16()).seq == 1)
    }

    @Test("the last payment's bytes are kept: none before the first, then each one's")
    func lastPaymentIsKept() throws {
        let (chain, _) = try customer(chainLength: 100)
        #expect(try chain.lastPayment(serial: 43) == nil)
        let first = try chain.pay(serial: 43, units: 2)
        #expect(try chain.lastPayment(serial: 43) == first.encoded())
        let second = try chain.pay(serial: 43, units: 5)
        #expect(try chain.lastPayment(serial: 43) == second.encoded())
        #expect(throws: CustomerError.unknownTicket(44)) { try chain.lastPayment(serial: 44) }

        let (orders, _) = try customer(chainLength: nil)
        let order = try orders.payOrder(serial: 43, amount: 250, item: Bytes16())
        #expect(try orders.lastPayment(serial: 43) == order.bytes)
        // A refused payment leaves the last one in place.
        #expect(throws: CustomerError.overLimit(serial: 43, remaining: 999_750, requested: 1_000_000)) {
            try orders.payOrder(serial: 43, amount: 1_000_000, item: Bytes16())
        }
        #expect(try orders.lastPayment(serial: 43) == order.bytes)
    }

    @Test("two handles on one wallet paying at once never hand out one word or one seq twice")
    func concurrentHandlesNeverReuseAPosition() throws {
        for chainMode in [true, false] {
            let path = temporaryPath("wallet.db")
            _ = try customer(chainLength: chainMode ? 1000 : nil, path: path)
            // Separate handles are separate SQLite connections, as two processes would hold.
            let handles = try (0..<2).map { _ in try Customer.open(walletPath: path) }
            let positions = Mutex<[(UInt32, UInt64)]>([])
            let failures = Mutex<[String]>([])
            DispatchQueue.concurrentPerform(iterations: 4) { thread in
                for _ in 0..<50 {
                    do {
                        let handle = handles[thread % 2]
                        let position: (UInt32, UInt64) = chainMode
                            ? try { let p = try handle.pay(serial: 43); return (p.index, UInt64(p.index)) }()
                            : try { let o = try handle.payOrder(serial: 43, amount: 1, item: Bytes16()); return (o.seq, o.cumulative) }()
                        positions.withLock { $0.append(position) }
                    } catch {
                        failures.withLock { $0.append("\(error)") }
                    }
                }
            }
            #expect(failures.withLock { $0 }.isEmpty, "chain mode \(chainMode)")
            let handedOut = positions.withLock { $0 }
            // 200 payments of one unit or one micro-unit: positions 1...200, each once, each
            // order's cumulative its seq (no two orders were built on one stale position).
            #expect(handedOut.map(\.0).sorted() == Array(1...200), "chain mode \(chainMode)")
            #expect(handedOut.allSatisfy { UInt64($0.0) == $0.1 }, "chain mode \(chainMode)")
            let held = try handles[0].ticket(serial: 43)
            #expect(held.spent == 200)
        }
    }

    @Test("handles opening an old wallet at once all upgrade it, while another writer holds it")
    func concurrentUpgradesOfAnOldWallet() throws {
        let fixture = try #require(Bundle.module.url(forResource: "wallet-v1", withExtension: nil))
        for round in 0..<3 {
            let path = temporaryPath("wallet.db")
            try FileManager.default.copyItem(at: fixture.appendingPathComponent("wallet.db"), to: URL(fileURLWithPath: path))
            // Another process's write transaction: every opener reads the schema as old, then waits.
            let failures = Mutex<[String]>([])
            try whileAnotherWriterHolds(path) {
                DispatchQueue.concurrentPerform(iterations: 4) { _ in
                    do { _ = try Customer.open(walletPath: path).lastPayment(serial: 1) } catch {
                        failures.withLock { $0.append("\(error)") }
                    }
                }
            }
            #expect(failures.withLock { $0 }.isEmpty, "round \(round)")
        }
    }

    @Test("a wallet written before wallets kept their last payments opens and goes on paying")
    func walletFromBeforeLastPayments() throws {
        // Written by the previous release: ticket 1, a chain of 100 × 10 paid to word 2;
        // ticket 2, orders, one of 700.
        let fixture = try #require(Bundle.module.url(forResource: "wallet-v1", withExtension: nil))
        let path = temporaryPath("wallet.db")
        try FileManager.default.copyItem(at: fixture.appendingPathComponent("wallet.db"), to: URL(fileURLWithPath: path))
        let customer = try Customer.open(walletPath: path)
        #expect(try customer.ticket(serial: 1).paidIndex == 2)
        #expect(try customer.ticket(serial: 2).cumulative == 700)
        #expect(try customer.lastPayment(serial: 1) == nil, "made before the wallet kept them")
        let payment = try customer.pay(serial: 1)
        #expect(payment.index == 3)
        #expect(try customer.lastPayment(serial: 1) == payment.encoded())
        let order = try customer.payOrder(serial: 2, amount: 5, item: Bytes16())
        #expect(order.seq == 2 && order.cumulative == 705)
    }

    /// Runs `body` while another connection holds the wallet's write lock for
    /// its first 0.3 s, as another process paying would.
    func whileAnotherWriterHolds(_ path: String, _ body: () throws -> Void) throws {
        let holder = try DatabaseQueue(path: path)
        let held = DispatchSemaphore(value: 0), released = DispatchSemaphore(value: 0)
        let failure = Mutex<String?>(nil)
        DispatchQueue.global().async {
            do {
                try holder.inTransaction(.immediate) { _ in
                    held.signal()
                    usleep(300_000)
                    return .commit
                }
            } catch {
                failure.withLock { $0 = "\(error)" }
                held.signal()
            }
            released.signal()
        }
        held.wait()
        defer { released.wait() }
        try body()
        #expect(failure.withLock { $0 } == nil)
    }
}
