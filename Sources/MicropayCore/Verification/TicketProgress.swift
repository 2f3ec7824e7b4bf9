internal import CEngine

/// A registered ticket's opened body and the merchant's progress on it: what
/// the batch verifier's table holds, and what moves between it and a store.
public struct TicketProgress: Sendable {
    public var serial: UInt64
    public var customer: UInt64
    public var limit: UInt64
    public var unit: UInt64
    public var chainLength: UInt32
    public var chainID: Bytes12
    public var issued: UInt64
    public var expires: UInt64
    public var root: Bytes32
    public var sessionKey: SecretKey
    /// Chain mode: last accepted index and word (`(0, root)` before any payment).
    public var last: UInt32
    public var lastWord: Bytes32
    /// Order mode: last accepted seq, cumulative and the order's 76 bytes.
    public var lastSeq: UInt32
    public var lastCumulative: UInt64
    public var lastOrder: [UInt8]?
    public var credited: UInt64
    /// Index or seq last put in a Deposit; the highest the bank settled, and its worth.
    public var claimed: UInt32
    public var settled: UInt32
    public var settledAmount: UInt64

    public init(
        serial: UInt64, customer: UInt64, limit: UInt64, unit: UInt64, chainLength: UInt32, chainID: Bytes12,
        issued: UInt64, expires: UInt64, root: Bytes32, sessionKey: SecretKey,
        last: UInt32 = 0, lastWord: Bytes32? = nil, lastSeq: UInt32 = 0, lastCumulative: UInt64 = 0,
        lastOrder: [UInt8]? = nil, credited: UInt64 = 0, claimed: UInt32 = 0, settled: UInt32 = 0,
        settledAmount: UInt64 = 0
    ) {
        self.serial = serial; self.customer = customer; self.limit = limit; self.unit = unit
        self.chainLength = chainLength; self.chainID = chainID; self.issued = issued; self.expires = expires
        self.root = root; self.sessionKey = sessionKey; self.last = last; self.lastWord = lastWord ?? root
        self.lastSeq = lastSeq; self.lastCumulative = lastCumulative; self.lastOrder = lastOrder
        self.credited = credited; self.claimed = claimed; self.settled = settled
        self.settledAmount = settledAmount
    }

    /// A ticket just opened, with no progress yet.
    public init(serial: UInt64, body: TicketBody) {
        self.init(serial: serial, customer: body.customer, limit: body.limit, unit: body.unit,
                  chainLength: body.chainLength, chainID: body.chainID, issued: body.issued, expires: body.expires,
                  root: body.root, sessionKey: body.sessionKey)
    }
}

extension TicketProgress {
    /// Appends this ticket's log records (see `BatchVerifier.encodeLog`):
    /// its body first when `withBody`, then its progress.
    public func appendLogRecords(withBody: Bool, to out: inout [UInt8]) {
        var export = mp_ticket_export()
        defer { withUnsafeMutableBytes(of: &export.session_key) { Engine.zero($0) } }
        BatchVerifier.fill(&export, from: self)
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: Int(MP_LOG_TICKET_MAX)))
        let written = out.withUnsafeMutableBufferPointer {
            mp_log_encode(&export, withBody ? 1 : 0, $0.baseAddress! + start)
        }
        out.removeLast(Int(MP_LOG_TICKET_MAX) - written)
    }
}
