import Foundation
import MicropayCore
import MicropayMerchant
import Testing

// MARK: - The reference model

/// §7.2 written as plainly as possible, apart from the Merchant's code: plain
/// dictionaries and byte arrays, chains walked one `HashChain.step` at a
/// time, order tags recomputed with one-shot HMAC and compared as arrays.
final class ReferenceMerchant {
    struct TicketRecord {
        var expires: UInt64
        var chainLength: UInt32
        var chainID: Bytes12
        var unit: UInt64
        var limit: UInt64
        var macKey: [UInt8]
        var last: UInt32 = 0
        var lastWord: [UInt8]
        var lastSeq: UInt32 = 0
        var lastCumulative: UInt64 = 0
        var lastOrder: [UInt8]? = nil
        var credited: UInt64 = 0
    }

    let bankID: UInt32
    let merchant: UInt64
    let merchantKey: SecretKey
    var tickets: [UInt64: TicketRecord] = [:]

    init(bankID: UInt32, merchant: UInt64, merchantKey: SecretKey) {
        self.bankID = bankID
        self.merchant = merchant
        self.merchantKey = merchantKey
    }

    static func be32(_ r: [UInt8], _ at: Int) -> UInt32 { r[at..<at + 4].reduce(0) { $0 << 8 | UInt32($1) } }
    static func be64(_ r: [UInt8], _ at: Int) -> UInt64 { r[at..<at + 8].reduce(0) { $0 << 8 | UInt64($1) } }

    func judge(_ r: [UInt8], now: UInt64) -> (code: UInt8, credited: UInt64) {
        let knownKinds: [UInt8] = [0x01, 0x02, 0x10, 0x11, 0x20, 0x30, 0x31, 0x40, 0x41]
        if r.isEmpty { return (1, 0) }
        if !knownKinds.contains(r[0]) { return (11, 0) }
        let sizes: [UInt8: Int] = [0x01: 52, 0x02: 76, 0x10: 184]
        guard let size = sizes[r[0]], r.count == size, r[1] == 1, r[2] == 1, r[3] == 0 else { return (1, 0) }
        let bank = Self.be32(r, 4)
        let serial = Self.be64(r, 8)
        if r[0] == 0x10 {
            if bank != bankID || Self.be64(r, 16) != merchant { return (3, 0) }
            guard let ticket = try? Ticket(decoding: r), let body = try? ticket.open(merchantKey: merchantKey) else { return (3, 0) }
            if tickets[serial] != nil { return (0, 0) }
            if now > body.expires { return (4, 0) }
            tickets[serial] = TicketRecord(
                expires: body.expires, chainLength: body.chainLength, chainID: body.chainID, unit: body.unit,
                limit: body.limit, macKey: body.sessionKey.macSubkey.withUnsafeBytes { Array($0) }, lastWord: body.root.bytes)
            return (0, 0)
        }
        guard bank == bankID, var t = tickets[serial] else { return (2, 0) }
        if now > t.expires { return (4, 0) }
        if r[0] == 0x01 {
            if t.chainLength == 0 { return (9, 0) }
            let i = Self.be32(r, 16)
            let word = Array(r[20..<52])
            if i == t.last && t.last >= 1 && word == t.lastWord { return (12, 0) }
            if i <= t.last { return (7, 0) }
            if i > t.chainLength { return (8, 0) }
            if i - t.last > 4096 { return (8, 0) }
            var w = Bytes32(word)!
            var j = i
            while j > t.last {
                w = HashChain.step(chainID: t.chainID, index: j, word: w)
                j -= 1
            }
            if w.bytes != t.lastWord { return (6, 0) }
            let credit = UInt64(i - t.last) * t.unit
            t.last = i
            t.lastWord = word
            t.credited += credit
            tickets[serial] = t
            return (0, credit)
        }
        if t.chainLength != 0 { return (9, 0) }
        let mac = HMAC.authenticate(Array("MPO1".utf8) + r[0..<60], key: t.macKey).bytes.prefix(16)
        if Array(mac) != Array(r[60..<76]) { return (5, 0) }
        if t.lastOrder == r { return (12, 0) }
        let seq = Self.be32(r, 16)
        let cumulative = Self.be64(r, 20)
        if seq <= t.lastSeq { return (7, 0) }
        if cumulative < t.lastCumulative { return (10, 0) }
        if cumulative > t.limit { return (8, 0) }
        let credit = cumulative - t.lastCumulative
        t.lastSeq = seq
        t.lastCumulative = cumulative
        t.lastOrder = r
        t.credited += credit
        tickets[serial] = t
        return (0, credit)
    }
}

// MARK: - The world that makes the records: a bank and its customers

/// Tickets issued by a simulated bank (real tickets, real chains, real
/// orders), and customers that pay, retry, replay, forge and reorder.
struct PaymentWorld {
    struct Issued {
        let serial: UInt64
        let ticket: [UInt8]
        let chainID: Bytes12
        let words: [Bytes32]  // words[i] = w_i; empty in order mode
        let sessionMAC: MACKey
        let customerMAC: MACKey
        let limit: UInt64
        var isChain: Bool { !words.isEmpty }
        // What the customer has sent so far.
        var sentIndex: UInt32 = 0
        var sentSeq: UInt32 = 0
        var sentCumulative: UInt64 = 0
        var lastSent: [UInt8]? = nil
    }

    static let bankID: UInt32 = 7
    static let merchant: UInt64 = 2002
    static let start: UInt64 = 1_900_000_000

    var rng: SplitMix64
    let merchantKey: SecretKey
    var tickets: [Issued] = []
    /// Tickets that must come out badTicket or expired.
    var strayTickets: [[UInt8]] = []

    init(seed: UInt64, merchantKey: SecretKey) {
        rng = SplitMix64(seed: seed)
        self.merchantKey = merchantKey
        let customerKey = SecretKey.random()
        for n in 0..<6 {
            let serial = UInt64(100 + n)
            let chain = n % 2 == 0
            let length: UInt32 = n == 0 ? 5000 : UInt32.random(in: 8...40, using: &rng)
            let unit = UInt64.random(in: 1...50, using: &rng)
            var chainID = Bytes12()
            chainID.withUnsafeMutableBytes { for i in 0..<$0.count { $0[i] = UInt8.random(in: 0...255, using: &rng) } }
            var words: [Bytes32] = []
            if chain {
                var w = Bytes32()
                w.withUnsafeMutableBytes { for i in 0..<$0.count { $0[i] = UInt8.random(in: 0...255, using: &rng) } }
                words = [Bytes32](repeating: w, count: Int(length) + 1)
                for i in stride(from: Int(length), through: 1, by: -1) {
                    words[i - 1] = HashChain.step(chainID: chainID, index: UInt32(i), word: words[i])
                }
            }
            let limit = chain ? UInt64(length) * unit : UInt64.random(in: 2000...20000, using: &rng)
            let session = SecretKey.random()
            let body = TicketBody(
                customer: 1001, limit: limit, unit: chain ? unit : 0, chainLength: chain ? length : 0,
                chainID: chain ? chainID : Bytes12(), issued: Self.start,
                expires: Self.start + UInt64.random(in: 100...400, using: &rng),
                root: chain ? words[0] : Bytes32(), sessionKey: session)
            let ticket = Ticket.seal(body: body, bankID: Self.bankID, serial: serial, merchant: Self.merchant,
                                     merchantKey: merchantKey).bytes
            tickets.append(Issued(serial: serial, ticket: ticket, chainID: chainID, words: words,
                                  sessionMAC: MACKey(macOf: session), customerMAC: MACKey(macOf: customerKey), limit: limit))
        }
        // Another merchant's ticket, a tampered one, another bank's, one already expired.
        let body = TicketBody(customer: 1001, limit: 100, unit: 0, chainLength: 0, chainID: Bytes12(), issued: Self.start,
                              expires: Self.start + 1000, root: Bytes32(), sessionKey: .random())
        strayTickets.append(Ticket.seal(body: body, bankID: 7, serial: 200, merchant: 2003, merchantKey: merchantKey).bytes)
        var tampered = Ticket.seal(body: body, bankID: 7, serial: 201, merchant: 2002, merchantKey: merchantKey).bytes
        tampered[100] ^= 0x40
        strayTickets.append(tampered)
        strayTickets.append(Ticket.seal(body: body, bankID: 8, serial: 202, merchant: 2002, merchantKey: merchantKey).bytes)
        var old = body
        old.expires = Self.start - 1
        strayTickets.append(Ticket.seal(body: old, bankID: 7, serial: 203, merchant: 2002, merchantKey: merchantKey).bytes)
    }

    mutating func chance(_ percent: Int) -> Bool { Int.random(in: 0..<100, using: &rng) < percent }
    mutating func randomBytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) } }

    func chainPayment(serial: UInt64, index: UInt32, word: Bytes32, bank: UInt32 = bankID) -> [UInt8] {
        ChainPayment(bankID: bank, serial: serial, index: index, word: word).encoded()
    }

    func order(_ t: Issued, seq: UInt32, cumulative: UInt64, item: Bytes16) -> [UInt8] {
        PaymentOrder.make(bankID: Self.bankID, serial: t.serial, seq: seq, cumulative: cumulative, item: item,
                          customerMAC: t.customerMAC, sessionMAC: t.sessionMAC).bytes
    }

    /// A customer's next payment on ticket `n`, valid as far as the customer knows.
    mutating func nextPayment(_ n: Int) -> [UInt8] {
        var t = tickets[n]
        let record: [UInt8]
        if t.isChain {
            let n = UInt32(t.words.count - 1)
            var step = UInt32.random(in: 1...3, using: &rng)
            if n > 4096 && chance(15) { step = [4095, 4096, 4097][Int.random(in: 0...2, using: &rng)] }
            let i = t.sentIndex &+ step
            let word = i <= n ? t.words[Int(i)] : Bytes32(randomBytes(32))!
            record = chainPayment(serial: t.serial, index: i, word: word)
            if i <= n { t.sentIndex = i }
        } else {
            let seq = t.sentSeq + UInt32.random(in: 1...2, using: &rng)
            var cumulative = t.sentCumulative + UInt64.random(in: 0...400, using: &rng)
            if chance(5) { cumulative = t.limit + 1 }
            if chance(5) && t.sentCumulative > 0 { cumulative = t.sentCumulative - 1 }
            let item = Bytes16([UInt8](repeating: UInt8.random(in: 1...2, using: &rng), count: 16))!
            record = order(t, seq: seq, cumulative: cumulative, item: item)
            t.sentSeq = seq
            if cumulative <= t.limit && cumulative >= t.sentCumulative { t.sentCumulative = cumulative }
        }
        t.lastSent = record
        tickets[n] = t
        return record
    }

    /// The stream's next records, at least `count` of them (a reordered pair
    /// may add one more); on ticket `only` if given.
    mutating func records(atLeast count: Int, only: Int? = nil) -> [[UInt8]] {
        var records: [[UInt8]] = []
        while records.count < count { records += nextRecord(only: only) }
        return records
    }

    /// A batch file of `records`, in order.
    static func batch(_ records: [[UInt8]]) throws -> BatchFileWriter {
        var writer = BatchFileWriter()
        for record in records { try writer.append(record) }
        return writer
    }

    /// One record of the stream: mostly payments, with every kind of fault;
    /// on ticket `only` if given, else on a random one.
    mutating func nextRecord(only: Int? = nil) -> [[UInt8]] {
        let n = only ?? Int.random(in: 0..<tickets.count, using: &rng)
        let t = tickets[n]
        switch Int.random(in: 0..<100, using: &rng) {
        case 0..<8: return [t.ticket]
        case 8..<45: return [nextPayment(n)]
        case 45..<52: return [t.lastSent ?? t.ticket]  // a retry
        case 52..<57:  // reordered: the later payment first
            let a = nextPayment(n), b = nextPayment(n)
            return [b, a]
        case 57..<62:  // replay of an earlier payment, correct in itself
            if t.isChain, t.sentIndex >= 1 {
                let i = UInt32.random(in: 1...t.sentIndex, using: &rng)
                return [chainPayment(serial: t.serial, index: i, word: t.words[Int(i)])]
            }
            return [order(t, seq: UInt32.random(in: 0...t.sentSeq, using: &rng), cumulative: t.sentCumulative, item: Bytes16())]
        case 62..<68:  // a forged word or tag
            if t.isChain {
                return [chainPayment(serial: t.serial, index: t.sentIndex + 1, word: Bytes32(randomBytes(32))!)]
            }
            var forged = order(t, seq: t.sentSeq + 1, cumulative: t.sentCumulative, item: Bytes16())
            forged[Int.random(in: 16..<76, using: &rng)] ^= UInt8(1 << Int.random(in: 0..<8, using: &rng))
            return [forged]
        case 68..<71:  // wrong mode
            if t.isChain { return [order(t, seq: 1, cumulative: 1, item: Bytes16())] }
            return [chainPayment(serial: t.serial, index: 1, word: Bytes32(randomBytes(32))!)]
        case 71..<75:  // unknown ticket, or another bank
            if chance(50) { return [chainPayment(serial: 999, index: 1, word: Bytes32(randomBytes(32))!)] }
            var other = t.lastSent ?? nextPayment(n)
            other[7] ^= 1
            return [other]
        case 75..<79: return [strayTickets[Int.random(in: 0..<strayTickets.count, using: &rng)]]
        case 79..<88:  // malformed: cut, extended, bad version, suite or flags, empty
            var record = t.lastSent ?? t.ticket
            switch Int.random(in: 0..<6, using: &rng) {
            case 0: record = Array(record.prefix(Int.random(in: 1..<record.count, using: &rng)))
            case 1: record.append(0)
            case 2: record[1] = 2
            case 3: record[2] = 0
            case 4: record[3] = 1
            default: record = []
            }
            return [record]
        case 88..<93:  // a known kind that does not belong in a batch
            let kind = [0x11, 0x20, 0x30, 0x31, 0x40, 0x41][Int.random(in: 0..<6, using: &rng)]
            return [[UInt8(kind), 1, 1, 0] + randomBytes(Int.random(in: 0..<120, using: &rng))]
        default:  // unknown kind
            var kind = UInt8.random(in: 0...255, using: &rng)
            while [0x01, 0x02, 0x10, 0x11, 0x20, 0x30, 0x31, 0x40, 0x41].contains(kind) { kind &+= 1 }
            return [[kind] + randomBytes(Int.random(in: 0..<80, using: &rng))]
        }
    }
}

// MARK: - The property

@Suite("Merchant = reference model on random streams")
struct PropertyTests {
    /// Even seeds use a file store reopened between batches; odd seeds one in memory.
    @Test("random batches over six tickets in both modes: same verdicts, credits, tails and final state",
          arguments: 1...8)
    func matchesReference(seed: UInt64) throws {
        let key = SecretKey.random()
        var world = PaymentWorld(seed: seed &* 0x9E37_79B9, merchantKey: key)
        let reference = ReferenceMerchant(bankID: PaymentWorld.bankID, merchant: PaymentWorld.merchant, merchantKey: key)
        let path = TemporaryStorePath("property")
        defer { path.cleanUp() }
        let persistent = seed % 2 == 0
        func open() throws -> Merchant {
            try Merchant(bankID: PaymentWorld.bankID, merchant: PaymentWorld.merchant, merchantKey: key,
                         store: persistent ? MerchantStore(path: path.path) : MerchantStore())
        }
        // Implicitly unwrapped: the old merchant must let go of the store (its lock) before reopening.
        var merchant: Merchant! = try open()
        var verdictsSeen = Set<UInt8>()
        for batchNumber in 0..<7 {
            // Times step past the tickets' expiries (start + 100...400).
            let now = PaymentWorld.start + UInt64(batchNumber) * 70
            let records = world.records(atLeast: 160)
            var writer = try PaymentWorld.batch(records)
            let cut = world.chance(30)
            if cut { writer.appendRaw(world.chance(50) ? [0x00] : [0x00, 0x34, 0x01, 0x01]) }
            let expected = records.map { reference.judge($0, now: now) }
            if batchNumber % 3 == 2 {
                // One record at a time through verify(): the same judgement.
                for (i, record) in records.enumerated() {
                    let outcome = try merchant.verify(record, now: now)
                    #expect(outcome.verdict.rawValue == expected[i].code, "seed \(seed) batch \(batchNumber) record \(i)")
                    #expect(outcome.credited == expected[i].credited, "seed \(seed) batch \(batchNumber) record \(i)")
                }
            } else {
                let report = try merchant.verifyBatchReport(writer.bytes, now: now, tag: "b\(batchNumber)")
                #expect(report.verdictBytes == expected.map(\.code), "seed \(seed) batch \(batchNumber)")
                #expect(report.credited == expected.map(\.credited), "seed \(seed) batch \(batchNumber)")
                #expect(report.summary.truncatedTail == cut)
                #expect(report.summary.credited == expected.reduce(0) { $0 + $1.credited })
            }
            verdictsSeen.formUnion(expected.map(\.code))
            if persistent {
                merchant = nil
                merchant = try open()
            }
        }
        for (serial, t) in reference.tickets {
            let state = try #require(merchant.ticketState(serial: serial))
            #expect(state.credited == t.credited, "serial \(serial)")
            #expect(state.last == t.last && state.lastWord.bytes == t.lastWord, "serial \(serial)")
            #expect(state.lastSeq == t.lastSeq && state.lastCumulative == t.lastCumulative, "serial \(serial)")
            #expect(state.lastOrder == t.lastOrder, "serial \(serial)")
        }
        #expect(merchant.ticketCount == reference.tickets.count)
        // Each stream exercises every verdict of §7.1.
        for code: UInt8 in 0...12 {
            #expect(verdictsSeen.contains(code), "seed \(seed) never produced code \(code)")
        }
    }
}
