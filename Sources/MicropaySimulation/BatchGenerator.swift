import Foundation
import MicropayCore
import MicropayCustomer

/// What to generate: a merchant's batch file of tickets and payments with a
/// share of attacks mixed in.
public struct BatchSpec: Sendable {
    public enum Mode: String, Sendable, CaseIterable { case chain, order, mixed }
    public var tickets: Int
    /// Payment records after the tickets, valid and fraudulent together.
    public var payments: Int
    /// Share of the payment records that are attacks.
    public var fraudRate: Double
    public var seed: UInt64
    public var mode: Mode
    public var bankID: UInt32
    public var merchant: UInt64
    /// The time the batch is meant to be verified at: every ticket is valid then.
    public var now: UInt64

    public init(tickets: Int, payments: Int, fraudRate: Double = 0, seed: UInt64 = 1, mode: Mode = .mixed,
                bankID: UInt32 = 7, merchant: UInt64 = 2002, now: UInt64 = 1_800_000_000) {
        self.tickets = tickets; self.payments = payments; self.fraudRate = fraudRate; self.seed = seed
        self.mode = mode; self.bankID = bankID; self.merchant = merchant; self.now = now
    }
}

/// What verifying a generated batch must give, known by construction.
public struct BatchExpectation: Sendable, Codable, Equatable {
    public var records = 0
    public var accepted = 0
    public var credited: UInt64 = 0
    /// Verdict name → count (`accepted` and `duplicate` apart).
    public var verdicts: [String: Int] = [:]

    mutating func count(_ verdict: Verdict, credited amount: UInt64 = 0) {
        records += 1
        if verdict == .accepted { accepted += 1 }
        credited += amount
        verdicts[verdict.description, default: 0] += 1
    }
}

public struct GeneratedBatch: Sendable {
    public let merchantKey: SecretKey
    public let expectation: BatchExpectation
    /// The §7 code each record must get, in record order (when asked for).
    public let expectedVerdicts: [UInt8]?
}

/// Generates batch files whose verdicts are known in advance: it plays the
/// bank (sealing tickets), the customers (paying chain words and orders at
/// distance 1) and the attackers, and tracks the merchant's state as §7 says
/// so that every injected record's verdict is predictable.
public enum BatchGenerator {
    /// The attacks mixed in; each has one verdict by construction.
    enum Attack: CaseIterable {
        case replay, duplicate, forgedWord, forgedTag, overspend, wrongMerchant, tamperedTicket,
             truncated, unknownKind, unknownSerial, wrongMode
    }

    private final class SimTicket {
        let serial: UInt64
        let chain: PaywordChain?
        let unit: UInt64
        let limit: UInt64
        let sessionMAC: MACKey?
        let customerMAC: MACKey
        var last: UInt32 = 0
        var lastWord: Bytes32
        var seq: UInt32 = 0
        var cumulative: UInt64 = 0
        var lastAccepted: [UInt8]?

        init(serial: UInt64, chain: PaywordChain?, root: Bytes32, unit: UInt64, limit: UInt64,
             sessionMAC: MACKey?, customerMAC: MACKey) {
            self.serial = serial; self.chain = chain; lastWord = root; self.unit = unit; self.limit = limit
            self.sessionMAC = sessionMAC; self.customerMAC = customerMAC
        }
        var isChain: Bool { chain != nil }
    }

    /// Streams the batch's bytes ("MPB1", then records) to `sink`.
    public static func generate(
        _ spec: BatchSpec, keepVerdicts: Bool = false,
        progress: ((_ done: Int, _ total: Int) -> Void)? = nil,
        sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> GeneratedBatch {
        precondition(spec.tickets >= 1 && spec.payments >= 0)
        let random = SeededRandom(seed: spec.seed)
        let master = random.secretKey()
        let merchantKey = KeyDerivation.accountKey(master: master, role: .merchant, bankID: spec.bankID, account: spec.merchant)
        let strangerKey = KeyDerivation.accountKey(master: master, role: .merchant, bankID: spec.bankID, account: spec.merchant &+ 1)
        let customers = (0..<16).map { UInt64(1000 + $0) }
        let customerMACs = customers.map {
            MACKey(macOf: KeyDerivation.accountKey(master: master, role: .customer, bankID: spec.bankID, account: $0))
        }
        var expectation = BatchExpectation()
        var verdicts: [UInt8] = []
        if keepVerdicts { verdicts.reserveCapacity(spec.tickets + spec.payments) }
        var buffer: [UInt8] = []
        buffer.reserveCapacity(1 << 20)
        func emit(_ record: [UInt8], _ verdict: Verdict, credited: UInt64 = 0) throws {
            buffer.append(UInt8(record.count >> 8))
            buffer.append(UInt8(record.count & 0xff))
            buffer += record
            expectation.count(verdict, credited: credited)
            if keepVerdicts { verdicts.append(verdict.rawValue) }
            if buffer.count >= 1 << 20 {
                try buffer.withUnsafeBytes(sink)
                buffer.removeAll(keepingCapacity: true)
            }
        }
        buffer += Array("MPB1".utf8)

        // Which ticket each payment slot goes to, so chains are made just long enough.
        let slots = (0..<spec.payments).map { _ in UInt32(random.below(spec.tickets)) }
        var uses = [UInt32](repeating: 0, count: spec.tickets)
        for slot in slots { uses[Int(slot)] += 1 }

        let issued = spec.now - 3600
        let expires = spec.now + 86400
        var tickets: [SimTicket] = []
        tickets.reserveCapacity(spec.tickets)
        let total = spec.tickets + spec.payments
        for t in 0..<spec.tickets {
            let serial = UInt64(t + 1)
            let isChain = switch spec.mode {
            case .chain: true
            case .order: false
            case .mixed: t % 3 != 2
            }
            let customerIndex = t % customers.count
            let sessionKey = KeyDerivation.sessionKey(master: master, bankID: spec.bankID, serial: serial)
            let ticket: SimTicket
            let body: TicketBody
            if isChain {
                // Two words of slack: a forged word and an overspend still fit the rules.
                let length = uses[t] + 2
                let chainID: Bytes12 = random.bytes()
                let (chain, root) = PaywordChain.build(seed: random.bytes(), chainID: chainID, length: length)
                let unit = UInt64(1 + random.below(5))
                ticket = SimTicket(serial: serial, chain: chain, root: root, unit: unit, limit: unit * UInt64(length),
                                   sessionMAC: nil, customerMAC: customerMACs[customerIndex])
                body = TicketBody(customer: customers[customerIndex], limit: ticket.limit, unit: unit, chainLength: length,
                                  chainID: chainID, issued: issued, expires: expires, root: root, sessionKey: sessionKey)
            } else {
                let limit = UInt64(uses[t] + 2) * 1000
                ticket = SimTicket(serial: serial, chain: nil, root: Bytes32(), unit: 0, limit: limit,
                                   sessionMAC: MACKey(macOf: sessionKey), customerMAC: customerMACs[customerIndex])
                body = TicketBody(customer: customers[customerIndex], limit: limit, unit: 0, chainLength: 0,
                                  chainID: Bytes12(), issued: issued, expires: expires, root: Bytes32(), sessionKey: sessionKey)
            }
            tickets.append(ticket)
            let sealed = Ticket.seal(body: body, bankID: spec.bankID, serial: serial, merchant: spec.merchant,
                                     merchantKey: merchantKey, nonce: random.bytes())
            try emit(sealed.bytes, .accepted)
            if t % 4096 == 0 { progress?(t, total) }
        }

        func order(_ ticket: SimTicket, seq: UInt32, cumulative: UInt64) -> PaymentOrder {
            PaymentOrder.make(bankID: spec.bankID, serial: ticket.serial, seq: seq, cumulative: cumulative,
                              item: Bytes16(), customerMAC: ticket.customerMAC, sessionMAC: ticket.sessionMAC!)
        }

        /// Emits one attack on `ticket` (or on the merchant) if its preconditions hold.
        func attack(random: SeededRandom, ticket: SimTicket, spec: BatchSpec, tickets: [SimTicket],
                    merchantKey: SecretKey, strangerKey: SecretKey,
                    emit: ([UInt8], Verdict, UInt64) throws -> Void) throws -> Bool {
            let kinds = Attack.allCases
            switch kinds[random.below(kinds.count)] {
            case .replay:
                if let chain = ticket.chain {
                    guard ticket.last >= 2 else { return false }
                    let index = ticket.last - 1
                    try emit(ChainPayment(bankID: spec.bankID, serial: ticket.serial, index: index, word: chain.word(at: index)).encoded(), .replay, 0)
                } else {
                    guard ticket.seq >= 1 else { return false }
                    // Same seq, same amount, another item: not a retry, a replay.
                    let bytes = PaymentOrder.make(bankID: spec.bankID, serial: ticket.serial, seq: ticket.seq, cumulative: ticket.cumulative,
                                              item: Bytes16(hex: "ff" + String(repeating: "00", count: 15))!,
                                              customerMAC: ticket.customerMAC, sessionMAC: ticket.sessionMAC!).bytes
                    try emit(bytes, .replay, 0)
                }
            case .duplicate:
                guard let last = ticket.lastAccepted else { return false }
                try emit(last, .duplicate, 0)
            case .forgedWord:
                guard ticket.isChain else { return false }
                let word: Bytes32 = random.bytes()
                try emit(ChainPayment(bankID: spec.bankID, serial: ticket.serial, index: ticket.last + 1, word: word).encoded(), .badChainWord, 0)
            case .forgedTag:
                guard !ticket.isChain else { return false }
                var bytes = order(ticket, seq: ticket.seq + 1, cumulative: ticket.cumulative + 1).bytes
                bytes[60 + random.below(16)] ^= UInt8(1 << random.below(8))
                try emit(bytes, .badMAC, 0)
            case .overspend:
                if let chain = ticket.chain {
                    try emit(ChainPayment(bankID: spec.bankID, serial: ticket.serial, index: chain.length + 1, word: random.bytes()).encoded(), .overLimit, 0)
                } else {
                    try emit(order(ticket, seq: ticket.seq + 1, cumulative: ticket.limit + 1).bytes, .overLimit, 0)
                }
            case .wrongMerchant:
                let body = TicketBody(customer: 1000, limit: 10, unit: 0, chainLength: 0, chainID: Bytes12(), issued: spec.now - 10,
                                      expires: spec.now + 10, root: Bytes32(), sessionKey: random.secretKey())
                let foreign = Ticket.seal(body: body, bankID: spec.bankID, serial: UInt64(tickets.count + 1 + random.below(1000)),
                                          merchant: spec.merchant + 1, merchantKey: strangerKey, nonce: random.bytes())
                try emit(foreign.bytes, .badTicket, 0)
            case .tamperedTicket:
                let body = TicketBody(customer: 1000, limit: 10, unit: 0, chainLength: 0, chainID: Bytes12(), issued: spec.now - 10,
                                      expires: spec.now + 10, root: Bytes32(), sessionKey: random.secretKey())
                var bytes = Ticket.seal(body: body, bankID: spec.bankID, serial: ticket.serial, merchant: spec.merchant,
                                        merchantKey: merchantKey, nonce: random.bytes()).bytes
                bytes[48 + random.below(136)] ^= UInt8(1 << random.below(8))
                try emit(bytes, .badTicket, 0)
            case .truncated:
                let full = ChainPayment(bankID: spec.bankID, serial: ticket.serial, index: ticket.last + 1, word: random.bytes()).encoded()
                try emit(Array(full.prefix(1 + random.below(51))), .malformed, 0)
            case .unknownKind:
                var bytes = ChainPayment(bankID: spec.bankID, serial: ticket.serial, index: 1, word: random.bytes()).encoded()
                bytes[0] = 0x7f
                try emit(bytes, .unknownKind, 0)
            case .unknownSerial:
                let serial = UInt64(tickets.count + 1_000_000 + random.below(1000))
                try emit(ChainPayment(bankID: spec.bankID, serial: serial, index: 1, word: random.bytes()).encoded(), .unknownTicket, 0)
            case .wrongMode:
                if ticket.isChain {
                    let bytes = PaymentOrder.make(bankID: spec.bankID, serial: ticket.serial, seq: 1, cumulative: 1, item: Bytes16(),
                                                  customerMAC: ticket.customerMAC, sessionMAC: MACKey(SecretKey.random())).bytes
                    try emit(bytes, .wrongMode, 0)
                } else {
                    try emit(ChainPayment(bankID: spec.bankID, serial: ticket.serial, index: 1, word: random.bytes()).encoded(), .wrongMode, 0)
                }
            }
            return true
        }

        for (p, slot) in slots.enumerated() {
            if p % 4096 == 0 { progress?(spec.tickets + p, total) }
            let ticket = tickets[Int(slot)]
            if random.chance(spec.fraudRate), try attack(random: random, ticket: ticket, spec: spec, tickets: tickets,
                                                          merchantKey: merchantKey, strangerKey: strangerKey, emit: emit) {
                continue
            }
            // A valid payment at distance 1.
            if let chain = ticket.chain {
                guard ticket.last < chain.length - 2 else { continue }
                let index = ticket.last + 1
                let payment = ChainPayment(bankID: spec.bankID, serial: ticket.serial, index: index, word: chain.word(at: index))
                let bytes = payment.encoded()
                ticket.last = index
                ticket.lastWord = payment.word
                ticket.lastAccepted = bytes
                try emit(bytes, .accepted, credited: ticket.unit)
            } else {
                let price = UInt64(1 + random.below(1000))
                guard ticket.cumulative + price <= ticket.limit - 2000 else { continue }
                let next = order(ticket, seq: ticket.seq + 1, cumulative: ticket.cumulative + price)
                ticket.seq = next.seq
                ticket.cumulative = next.cumulative
                ticket.lastAccepted = next.bytes
                try emit(next.bytes, .accepted, credited: price)
            }
        }
        if !buffer.isEmpty { try buffer.withUnsafeBytes(sink) }
        progress?(total, total)
        return GeneratedBatch(merchantKey: merchantKey, expectation: expectation, expectedVerdicts: keepVerdicts ? verdicts : nil)

    }

    /// Writes the batch to `path` and, beside it, `path.json` with what
    /// verifying it needs and what the verdicts must be.
    public static func write(
        _ spec: BatchSpec, to path: String, progress: ((Int, Int) -> Void)? = nil
    ) throws -> GeneratedBatch {
        guard FileManager.default.createFile(atPath: path, contents: nil) else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: path])
        }
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        let batch = try generate(spec, progress: progress) { chunk in try handle.write(contentsOf: Data(chunk)) }
        let meta = BatchMeta(bankID: spec.bankID, merchant: spec.merchant, key: batch.merchantKey.hexExposingSecret,
                             now: spec.now, seed: spec.seed, expected: batch.expectation)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(meta).write(to: URL(fileURLWithPath: path + ".json"))
        return batch
    }
}

/// The `.json` file beside a generated batch.
public struct BatchMeta: Codable, Sendable, Equatable {
    public var bankID: UInt32
    public var merchant: UInt64
    /// K_M in hex: generated batches are for trying the verifier, not for money.
    public var key: String
    public var now: UInt64
    public var seed: UInt64
    public var expected: BatchExpectation

    enum CodingKeys: String, CodingKey {
        case bankID = "bank_id", merchant, key, now, seed, expected
    }
}
