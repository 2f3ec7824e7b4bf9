import Foundation
import MicropayCore
import Testing

@testable import MicropayCustomer

/// The known-answer vectors (a copy of the protocol's v1.json in this target's resources).
enum V {
    nonisolated(unsafe) static let json: [String: Any] = {
        let url = Bundle.module.url(forResource: "v1", withExtension: "json")!
        return try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }()
    static func section(_ name: String) -> [String: Any] { json[name] as! [String: Any] }
    static func bytes(_ section: String, _ key: String) -> [UInt8] { [UInt8](hex: V.section(section)[key] as! String)! }
    static func key(_ section: String, _ key: String) -> SecretKey { try! SecretKey(bytes: bytes(section, key)) }
    static func int(_ section: String, _ key: String) -> UInt64 { (V.section(section)[key] as! NSNumber).uint64Value }
}

/// Hands out scripted bytes in order, so requests match the vectors.
final class ScriptedRandom: RandomSource, @unchecked Sendable {
    private var queue: [[UInt8]]
    private let lock = NSLock()
    init(_ queue: [[UInt8]]) { self.queue = queue }
    func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        lock.lock(); defer { lock.unlock() }
        precondition(!queue.isEmpty, "script ran out")
        let next = queue.removeFirst()
        precondition(next.count == buffer.count, "script has \(next.count) bytes, \(buffer.count) asked")
        buffer.copyBytes(from: next)
    }
    var isExhausted: Bool { queue.isEmpty }
}

func temporaryPath(_ name: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("micropay-customer-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.appendingPathComponent(name).path
}

@Suite("Payword chains with checkpoints")
struct PaywordChainTests {
    @Test("the vector chain: every word and the root")
    func vectorChain() throws {
        let words = (V.section("chain")["words"] as! [String]).map { Bytes32(hex: $0)! }
        let chainID = Bytes12(V.bytes("chain", "chain_id"))!
        let seed = HashChain.seed(walletSecret: V.key("chain", "wallet_secret"), chainID: chainID)
        #expect(seed == words[16])
        let (chain, root) = PaywordChain.build(seed: seed, chainID: chainID, length: 16)
        #expect(root == words[0])
        for i in 1...16 { #expect(chain.word(at: UInt32(i)) == words[i], "w_\(i)") }
        #expect(chain.checkpointCount == 4)
    }

    @Test("checkpointed words equal a naively stored chain", arguments: [1, 2, 3, 4, 5, 15, 16, 17, 99, 100, 101, 1000])
    func againstNaive(length: Int) throws {
        var generator = SplitMix64(seed: UInt64(length))
        let chainID = Bytes12((0..<12).map { _ in UInt8.random(in: 0...255, using: &generator) })!
        let seed = Bytes32((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })!
        var naive = [Bytes32](repeating: Bytes32(), count: length + 1)
        naive[length] = seed
        for i in stride(from: length, to: 0, by: -1) {
            naive[i - 1] = HashChain.step(chainID: chainID, index: UInt32(i), word: naive[i])
        }
        let (chain, root) = PaywordChain.build(seed: seed, chainID: chainID, length: UInt32(length))
        #expect(root == naive[0])
        #expect(chain.checkpointCount <= Int(PaywordChain.spacing(for: UInt32(length))) + 1)
        for i in 1...length { #expect(chain.word(at: UInt32(i)) == naive[i]) }
        let restored = chain.withSerializedCheckpoints { PaywordChain(chainID: chainID, length: UInt32(length), serialized: $0) }
        let checkpoints = { (c: PaywordChain?) in (0..<(c?.checkpointCount ?? 0)).map { c!.checkpoint($0) } }
        #expect(checkpoints(restored) == checkpoints(chain) && checkpoints(chain).first == seed)
        for i in 1...length { #expect(restored?.word(at: UInt32(i)) == naive[i]) }
        // A blob one checkpoint short is refused.
        #expect(chain.withSerializedCheckpoints {
            PaywordChain(chainID: chainID, length: UInt32(length), serialized: UnsafeRawBufferPointer(rebasing: $0.dropLast(32)))
        } == nil)
    }
}

@Suite("Customer")
struct CustomerTests {
    static let bankID = UInt32(V.int("keys", "bank_id"))
    static let account = V.int("keys", "customer")
    static let merchant = V.int("keys", "merchant")

    /// A wallet for customer 1001 whose next draws are the vector's chain_id and request_id.
    func vectorCustomer(path: String = temporaryPath("wallet.db")) throws -> Customer {
        let random = ScriptedRandom([V.bytes("chain", "chain_id"), V.bytes("issue_chain", "request_id")])
        return try Customer.create(walletPath: path, bankID: Self.bankID, account: Self.account,
                                   key: V.key("keys", "K_C"), walletSecret: V.key("chain", "wallet_secret"), random: random)
    }

    @Test("a chain request, the envelope and ticket, and every chain payment of the vectors")
    func chainTicketVectors() throws {
        let path = temporaryPath("wallet.db")
        let customer = try vectorCustomer(path: path)
        let request = try customer.requestChainTicket(merchant: Self.merchant, unit: 250, chainLength: 16, lifetime: 86400)
        #expect(request.bytes == V.bytes("issue_chain", "request"))

        let envelope = try Envelope(decoding: V.bytes("issue_chain", "envelope"))
        let ticket = try Ticket(decoding: V.bytes("issue_chain", "ticket"))
        let held = try customer.accept(envelope: envelope, ticket: ticket)
        #expect(held.serial == 42 && held.limit == 4000 && held.unit == 250 && held.chainLength == 16)
        #expect(held.expires == V.int("issue_chain", "expires") && held.ticket == ticket && held.mode == .chain)
        #expect(try customer.accept(envelope: envelope, ticket: ticket) == held)

        let expected = (V.json["chain_payments"] as! [[String: Any]]).map { [UInt8](hex: $0["bytes"] as! String)! }
        #expect(try customer.pay(serial: 42).encoded() == expected[0])
        #expect(try customer.pay(serial: 42, units: 1).encoded() == expected[1])
        // Reopening the wallet continues where it stopped.
        let reopened = try Customer.open(walletPath: path)
        #expect(try reopened.ticket(serial: 42).paidIndex == 2)
        #expect(try reopened.pay(serial: 42, units: 3).encoded() == expected[2])
        #expect(try reopened.pay(serial: 42, units: 11).encoded() == expected[3])
        #expect(try reopened.ticket(serial: 42).spent == 4000)
        #expect(throws: CustomerError.chainExhausted(serial: 42, remaining: 0, requested: 1)) { try reopened.pay(serial: 42) }
        #expect(throws: CustomerError.wrongMode(serial: 42)) { try reopened.payOrder(serial: 42, amount: 1, item: Bytes16()) }
    }

    @Test("a tampered envelope, a foreign one, and one for no request are refused")
    func refusedEnvelopes() throws {
        let customer = try vectorCustomer()
        _ = try customer.requestChainTicket(merchant: Self.merchant, unit: 250, chainLength: 16, lifetime: 86400)
        let ticket = try Ticket(decoding: V.bytes("issue_chain", "ticket"))
        var bytes = V.bytes("issue_chain", "envelope")
        bytes[100] ^= 0x01
        #expect(throws: CustomerError.wire(.authenticationFailed(.envelope))) {
            try customer.accept(envelope: try Envelope(decoding: bytes), ticket: ticket)
        }
        // An envelope for this customer that answers a request it never made.
        let body = EnvelopeBody(merchant: Self.merchant, limit: 10, unit: 0, chainLength: 0, chainID: Bytes12(),
                                issued: 1, expires: 2, sessionKey: .random(), requestID: .random())
        let stray = Envelope.seal(body: body, bankID: Self.bankID, serial: 42, customer: Self.account, customerKey: V.key("keys", "K_C"))
        #expect(throws: CustomerError.noPendingRequest(requestID: body.requestID.hex)) {
            try customer.accept(envelope: stray, ticket: ticket)
        }
        #expect(throws: CustomerError.unknownTicket(42)) { try customer.pay(serial: 42) }
    }

    /// Ticket 43 of the vectors in order mode: the bank's envelope is built here
    /// with K_CM derived from the vector's master key.
    func orderCustomer() throws -> Customer {
        let requestID = Bytes16.random()
        let random = ScriptedRandom([requestID.bytes])
        let customer = try Customer.create(walletPath: temporaryPath("wallet.db"), bankID: Self.bankID, account: Self.account,
                                           key: V.key("keys", "K_C"), walletSecret: .random(), random: random)
        let request = try customer.requestOrderTicket(merchant: Self.merchant, limit: 1_000_000, lifetime: 86400)
        #expect(request.requestID == requestID && request.hasValidTag(customerMAC: MACKey(macOf: V.key("keys", "K_C"))))
        let master = V.key("keys", "master")
        let body = EnvelopeBody(merchant: Self.merchant, limit: 1_000_000, unit: 0, chainLength: 0, chainID: Bytes12(),
                                issued: 1_800_000_000, expires: 1_800_086_400,
                                sessionKey: KeyDerivation.sessionKey(master: master, bankID: Self.bankID, serial: 43),
                                requestID: requestID)
        let envelope = Envelope.seal(body: body, bankID: Self.bankID, serial: 43, customer: Self.account, customerKey: V.key("keys", "K_C"))
        try customer.accept(envelope: envelope, ticket: try Ticket(decoding: V.bytes("issue_order", "ticket")))
        return customer
    }

    @Test("orders reproduce the vectors and stop at the limit")
    func orderVectors() throws {
        let customer = try orderCustomer()
        let orders = (V.json["orders"] as! [[String: Any]]).map { [UInt8](hex: $0["bytes"] as! String)! }
        let item = Bytes16(hex: "bb3a38b4dc54f9079e944e23180dc25d")!
        #expect(try customer.payOrder(serial: 43, amount: 1000, item: item).encoded() == orders[0])
        #expect(try customer.payOrder(serial: 43, amount: 1500, item: item).encoded() == orders[1])
        #expect(try customer.payOrder(serial: 43, amount: 0, item: item).encoded() == orders[2])
        #expect(throws: CustomerError.overLimit(serial: 43, remaining: 997_500, requested: 997_501)) {
            try customer.payOrder(serial: 43, amount: 997_501, item: item)
        }
        #expect(throws: CustomerError.wrongMode(serial: 43)) { try customer.pay(serial: 43) }
        let held = try customer.ticket(serial: 43)
        #expect(held.seq == 3 && held.cumulative == 2500 && held.spent == 2500)
    }

    @Test("goods: the vector stream opens with the vector key envelope only after paying for its item")
    func goods() throws {
        let customer = try orderCustomer()
        let stream = try GoodsStream(decoding: V.bytes("goods", "stream"))
        let keyEnvelope = try KeyEnvelope(decoding: V.bytes("goods", "key_envelope"))
        #expect(stream.item.bytes == V.bytes("goods", "item"))
        #expect(throws: CustomerError.goodsMismatch("no payment for this item on ticket 43")) {
            try customer.openGoods(stream, keyEnvelope: keyEnvelope)
        }
        let order = try customer.buy(goods: stream, serial: 43, price: 1000)
        #expect(order.item == stream.item && order.cumulative == 1000)
        #expect(try customer.openGoods(stream, keyEnvelope: keyEnvelope) == V.bytes("goods", "content"))
        // The same key envelope does not unlock another stream.
        let other = try GoodsStream(decoding: V.bytes("goods", "exact_multiple_stream"))
        #expect(throws: CustomerError.goodsMismatch("the key is for another item")) {
            try customer.openGoods(other, keyEnvelope: keyEnvelope)
        }
    }

    @Test("a wallet file is owner-only and never overwritten")
    func walletFile() throws {
        let path = temporaryPath("wallet.db")
        _ = try Customer.create(walletPath: path, bankID: 1, account: 5, key: .random())
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as! NSNumber
        #expect(mode.intValue & 0o077 == 0)
        #expect(throws: CustomerError.storage("\(path) already exists")) {
            try Customer.create(walletPath: path, bankID: 1, account: 5, key: .random())
        }
        let reopened = try Customer.open(walletPath: path)
        #expect(reopened.account == 5 && reopened.bankID == 1)
    }
}
