import MicropayCore

/// A registered ticket and the merchant's progress on it (§6.1), held in
/// memory keyed by serial. A class, so the hot path finds it once and
/// updates it in place.
final class TicketEntry {
    let serial: UInt64
    let customer: UInt64
    let limit: UInt64
    let unit: UInt64
    let chainLength: UInt32
    let chainID: Bytes12
    let issued: UInt64
    let expires: UInt64
    let root: Bytes32
    /// K_CM: for KeyEnvelopes.
    let sessionKey: SecretKey
    /// MACKey(mac(K_CM)), order mode only: the tag check costs three compressions.
    let sessionMAC: MACKey?

    var last: UInt32 = 0
    var lastWord: Bytes32
    var lastSeq: UInt32 = 0
    var lastCumulative: UInt64 = 0
    /// The 76 bytes of the last accepted order; empty before the first.
    var lastOrder: [UInt8] = []
    var credited: UInt64 = 0
    /// Index or seq last put in a Deposit.
    var claimed: UInt32 = 0
    /// Highest index or seq the bank accepted, and what it is worth.
    var settled: UInt32 = 0
    var settledAmount: UInt64 = 0

    /// Registered since the last commit: its body is not in the ticket log yet.
    var isNew: Bool
    /// State changed since the last commit (the entry is in the dirty list).
    var dirty = false

    /// §5.1: chain mode exactly when `chain_len ≥ 1`.
    var isChainMode: Bool { chainLength > 0 }

    /// A ticket just registered from its opened body: new to the log.
    convenience init(serial: UInt64, body: TicketBody) {
        self.init(TicketProgress(serial: serial, body: body))
        isNew = true
    }

    /// A ticket as the batch verifier's table or the log holds it.
    init(_ p: TicketProgress) {
        serial = p.serial
        customer = p.customer
        limit = p.limit
        unit = p.unit
        chainLength = p.chainLength
        chainID = p.chainID
        issued = p.issued
        expires = p.expires
        root = p.root
        sessionKey = p.sessionKey
        sessionMAC = p.chainLength == 0 ? MACKey(macOf: p.sessionKey) : nil
        last = p.last
        lastWord = p.lastWord
        lastSeq = p.lastSeq
        lastCumulative = p.lastCumulative
        lastOrder = p.lastOrder ?? []
        credited = p.credited
        claimed = p.claimed
        settled = p.settled
        settledAmount = p.settledAmount
        isNew = false
    }

    /// The form the batch verifier's table and the ticket log take.
    var progress: TicketProgress {
        TicketProgress(
            serial: serial, customer: customer, limit: limit, unit: unit, chainLength: chainLength, chainID: chainID,
            issued: issued, expires: expires, root: root, sessionKey: sessionKey, last: last, lastWord: lastWord,
            lastSeq: lastSeq, lastCumulative: lastCumulative, lastOrder: lastOrder.isEmpty ? nil : lastOrder,
            credited: credited, claimed: claimed, settled: settled, settledAmount: settledAmount)
    }

    var snapshot: TicketState {
        TicketState(
            serial: serial, customer: customer, limit: limit, unit: unit, chainLength: chainLength,
            issued: issued, expires: expires, isChainMode: isChainMode,
            last: last, lastWord: lastWord, lastSeq: lastSeq, lastCumulative: lastCumulative,
            lastOrder: lastOrder.isEmpty ? nil : lastOrder, credited: credited,
            claimed: claimed, settled: settled, settledAmount: settledAmount)
    }

    /// The best claim on this ticket: the last accepted payment, if any.
    func lastAcceptedClaim(bankID: UInt32) -> (claim: Deposit.Claim, position: UInt32, amount: UInt64)? {
        if isChainMode {
            guard last > 0 else { return nil }
            let payment = ChainPayment(bankID: bankID, serial: serial, index: last, word: lastWord)
            return (.chain(payment), last, UInt64(last).multipliedReportingOverflow(by: unit).partialValue)
        }
        guard lastSeq > 0, let order = try? PaymentOrder(decoding: lastOrder) else { return nil }
        return (.order(order), lastSeq, lastCumulative)
    }
}

/// A ticket's public fields and the merchant's progress on it.
public struct TicketState: Sendable, Equatable {
    public let serial: UInt64
    public let customer: UInt64
    public let limit: UInt64
    public let unit: UInt64
    public let chainLength: UInt32
    public let issued: UInt64
    public let expires: UInt64
    public let isChainMode: Bool
    /// Chain mode: last accepted index and its word (the root before any payment).
    public let last: UInt32
    public let lastWord: Bytes32
    /// Order mode: last accepted seq, cumulative and order bytes.
    public let lastSeq: UInt32
    public let lastCumulative: UInt64
    public let lastOrder: [UInt8]?
    /// Total accepted on this ticket.
    public let credited: UInt64
    /// Index or seq last put in a Deposit.
    public let claimed: UInt32
    /// Highest index or seq the bank accepted, and its worth.
    public let settled: UInt32
    public let settledAmount: UInt64
}
