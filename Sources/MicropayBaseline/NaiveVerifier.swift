import COpenSSL
import Foundation
import MicropayCore

// The naive baseline: the batch verifier a plain program would be. Each
// record is copied out and parsed on its own, per-serial state lives in a
// Swift Dictionary<UInt64, State> of value types, every chain step is one
// OpenSSL SHA256() call on a freshly built message, and every order tag one
// HMAC(EVP_sha256(), ...) call with the raw key (no cached key states).
// Tickets are opened with the same Core API as the merchant
// (Ticket(decoding:).open(encryptionKey:)).
//
// It gives the verdicts of PROTOCOL.md §7.2 for the record kinds a batch
// holds (tickets, chain payments, payment orders, and the malformed or
// unknown records an attacker sends); goods purchases are not tracked.
// Its results are checked against the real verifier's before its numbers count.

struct NaiveState {
    var ticketBytes: [UInt8]
    var expires: UInt64
    var chainLength: UInt32
    var chainID: [UInt8]
    var unit: UInt64
    var limit: UInt64
    /// mac(K_CM) as plain bytes (order mode), for HMAC().
    var macKey: [UInt8]
    var last: UInt32 = 0
    var lastWord: [UInt8]
    var lastSeq: UInt32 = 0
    var lastCumulative: UInt64 = 0
    var lastOrder: [UInt8] = []
    var credited: UInt64 = 0
}

/// One record, parsed.
enum NaiveRecord {
    case ticket(bankID: UInt32, serial: UInt64, merchant: UInt64, bytes: [UInt8])
    case chain(bankID: UInt32, serial: UInt64, index: UInt32, word: [UInt8], bytes: [UInt8])
    case order(bankID: UInt32, serial: UInt64, seq: UInt32, cumulative: UInt64, bytes: [UInt8])
    case rejected(Verdict)
}

/// What a verifier made of a batch: the figures compared between verifiers.
public struct BatchOutcome: Codable, Equatable, Sendable, CustomStringConvertible {
    public var records = 0
    public var accepted = 0
    public var credited: UInt64 = 0
    /// Verdict name → count, zero counts left out.
    public var verdicts: [String: Int] = [:]

    public init(records: Int = 0, accepted: Int = 0, credited: UInt64 = 0, verdicts: [String: Int] = [:]) {
        self.records = records
        self.accepted = accepted
        self.credited = credited
        self.verdicts = verdicts
    }

    public var description: String {
        "records \(records), accepted \(accepted), credited \(credited), verdicts \(verdicts.sorted { $0.key < $1.key })"
    }
}

public final class NaiveVerifier {
    public let bankID: UInt32
    public let merchant: UInt64
    let encryptionKey: SecretKey
    var states: [UInt64: NaiveState] = [:]

    private static let knownKinds: Set<UInt8> = [0x01, 0x02, 0x10, 0x11, 0x20, 0x30, 0x31, 0x40, 0x41]

    public init(bankID: UInt32, merchant: UInt64, merchantKey: SecretKey) {
        self.bankID = bankID
        self.merchant = merchant
        encryptionKey = merchantKey.encryptionSubkey
    }

    public func verify(batch: UnsafeRawBufferPointer, now: UInt64) -> BatchOutcome {
        var outcome = BatchOutcome()
        precondition(batch.count >= 4 && Array(batch[0..<4]) == Array("MPB1".utf8), "not a batch file")
        var counts = [Int](repeating: 0, count: 13)
        var offset = 4
        while offset < batch.count {
            guard offset + 2 <= batch.count else { break }
            let length = Int(batch[offset]) << 8 | Int(batch[offset + 1])
            guard offset + 2 + length <= batch.count else { break }
            let record = Array(batch[(offset + 2)..<(offset + 2 + length)])
            offset += 2 + length
            let (verdict, credit) = judge(parse(record), now: now)
            outcome.records += 1
            counts[Int(verdict.rawValue)] += 1
            outcome.credited &+= credit
        }
        outcome.accepted = counts[Int(Verdict.accepted.rawValue)]
        for (code, n) in counts.enumerated() where n > 0 { outcome.verdicts[Verdict(rawValue: UInt8(code))!.description] = n }
        return outcome
    }

    func parse(_ r: [UInt8]) -> NaiveRecord {
        guard let kind = r.first else { return .rejected(.malformed) }
        guard Self.knownKinds.contains(kind) else { return .rejected(.unknownKind) }
        let size: Int
        switch kind {
        case 0x01: size = 52
        case 0x02: size = 76
        case 0x10: size = 184
        default: return .rejected(.malformed)
        }
        guard r.count == size, r[1] == 1, r[2] == 1, r[3] == 0 else { return .rejected(.malformed) }
        let bankID = readBE32(r, 4)
        let serial = readBE64(r, 8)
        switch kind {
        case 0x01:
            return .chain(bankID: bankID, serial: serial, index: readBE32(r, 16), word: Array(r[20..<52]), bytes: r)
        case 0x02:
            return .order(bankID: bankID, serial: serial, seq: readBE32(r, 16), cumulative: readBE64(r, 20), bytes: r)
        default:
            return .ticket(bankID: bankID, serial: serial, merchant: readBE64(r, 16), bytes: r)
        }
    }

    func judge(_ record: NaiveRecord, now: UInt64) -> (Verdict, UInt64) {
        switch record {
        case .rejected(let verdict):
            return (verdict, 0)

        case .ticket(let bankID, let serial, let merchant, let bytes):
            guard bankID == self.bankID, merchant == self.merchant,
                  let ticket = try? Ticket(decoding: bytes), let body = try? ticket.open(encryptionKey: encryptionKey)
            else { return (.badTicket, 0) }
            if states[serial] != nil { return (.accepted, 0) }
            guard now <= body.expires else { return (.expired, 0) }
            states[serial] = NaiveState(
                ticketBytes: bytes, expires: body.expires, chainLength: body.chainLength, chainID: body.chainID.bytes,
                unit: body.unit, limit: body.limit,
                macKey: body.chainLength == 0 ? body.sessionKey.macSubkey.withUnsafeBytes { Array($0) } : [],
                lastWord: body.root.bytes)
            return (.accepted, 0)

        case .chain(let bankID, let serial, let index, let word, _):
            guard bankID == self.bankID, var s = states[serial] else { return (.unknownTicket, 0) }
            guard now <= s.expires else { return (.expired, 0) }
            guard s.chainLength > 0 else { return (.wrongMode, 0) }
            if index == s.last && s.last >= 1 && word == s.lastWord { return (.duplicate, 0) }
            guard index > s.last else { return (.replay, 0) }
            guard index <= s.chainLength, index - s.last <= 4096 else { return (.overLimit, 0) }
            let reached = naiveChainWalk(chainID: s.chainID, from: index, word: word, to: s.last)
            guard CRYPTO_memcmp(reached, s.lastWord, 32) == 0 else { return (.badChainWord, 0) }
            let (credit, o1) = UInt64(index - s.last).multipliedReportingOverflow(by: s.unit)
            let (total, o2) = s.credited.addingReportingOverflow(credit)
            guard !o1, !o2 else { return (.overLimit, 0) }
            s.last = index
            s.lastWord = word
            s.credited = total
            states[serial] = s
            return (.accepted, credit)

        case .order(let bankID, let serial, let seq, let cumulative, let bytes):
            guard bankID == self.bankID, var s = states[serial] else { return (.unknownTicket, 0) }
            guard now <= s.expires else { return (.expired, 0) }
            guard s.chainLength == 0 else { return (.wrongMode, 0) }
            guard naiveTagIsValid(key: s.macKey, record: bytes) else { return (.badMAC, 0) }
            if !s.lastOrder.isEmpty && s.lastOrder == bytes { return (.duplicate, 0) }
            guard seq > s.lastSeq else { return (.replay, 0) }
            guard cumulative >= s.lastCumulative else { return (.decreasingAmount, 0) }
            guard cumulative <= s.limit else { return (.overLimit, 0) }
            let credit = cumulative - s.lastCumulative
            let (total, overflow) = s.credited.addingReportingOverflow(credit)
            guard !overflow else { return (.overLimit, 0) }
            s.lastSeq = seq
            s.lastCumulative = cumulative
            s.lastOrder = bytes
            s.credited = total
            states[serial] = s
            return (.accepted, credit)
        }
    }
}

// MARK: - One token at a time through OpenSSL

private let stepLabel = Array("MPC1".utf8)
private let orderLabel = Array("MPO1".utf8)

/// Walks a chain from (index, word) down to `last` with one OpenSSL
/// `SHA256()` call per step on a freshly built 52-byte message.
public func naiveChainWalk(chainID: [UInt8], from index: UInt32, word: [UInt8], to last: UInt32) -> [UInt8] {
    var w = word
    var k = index
    while k > last {
        var message: [UInt8] = []
        message.append(contentsOf: stepLabel)
        message.append(contentsOf: chainID)
        message += [UInt8(k >> 24), UInt8(truncatingIfNeeded: k >> 16), UInt8(truncatingIfNeeded: k >> 8), UInt8(truncatingIfNeeded: k)]
        message.append(contentsOf: w)
        var out = [UInt8](repeating: 0, count: 32)
        _ = SHA256(message, message.count, &out)
        w = out
        k -= 1
    }
    return w
}

/// MAC128(key, "MPO1", first 60 bytes) by one `HMAC(EVP_sha256(), ...)` call
/// with the raw key, compared with `CRYPTO_memcmp`.
public func naiveTagIsValid(key: [UInt8], record: [UInt8]) -> Bool {
    var message: [UInt8] = orderLabel
    message.append(contentsOf: record[0..<60])
    var out = [UInt8](repeating: 0, count: 32)
    var length: UInt32 = 0
    _ = HMAC(EVP_sha256(), key, Int32(key.count), message, message.count, &out, &length)
    let tag = Array(record[60..<76])
    return CRYPTO_memcmp(out, tag, 16) == 0
}

func readBE32(_ b: [UInt8], _ at: Int) -> UInt32 {
    UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
}

func readBE64(_ b: [UInt8], _ at: Int) -> UInt64 {
    var v: UInt64 = 0
    for i in 0..<8 { v = v << 8 | UInt64(b[at + i]) }
    return v
}
