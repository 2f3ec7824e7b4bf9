import MicropayCore

/// Which side of the protocol an account is on.
public enum AccountRole: String, Sendable, Equatable, CustomStringConvertible {
    case customer
    case merchant
    public var description: String { rawValue }
}

/// A journal side. `external` is the world outside the bank: funding comes
/// from it and withdrawals go to it, so its net flow is deposits − withdrawals.
public enum LedgerAccount: Hashable, Sendable, CustomStringConvertible {
    case external
    case customer(UInt64)
    case merchant(UInt64)
    /// The escrow of one ticket.
    case escrow(serial: UInt64)

    /// Stable text form stored in the journal, e.g. "customer:1001".
    public var description: String {
        switch self {
        case .external: "external"
        case .customer(let n): "customer:\(n)"
        case .merchant(let n): "merchant:\(n)"
        case .escrow(let s): "escrow:\(s)"
        }
    }

    public init?(_ text: String) {
        if text == "external" { self = .external; return }
        let parts = text.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, let n = UInt64(parts[1]) else { return nil }
        switch parts[0] {
        case "customer": self = .customer(n)
        case "merchant": self = .merchant(n)
        case "escrow": self = .escrow(serial: n)
        default: return nil
        }
    }
}

/// A sum of amounts over the ledger's life: 128 bits, exact however much
/// has moved (each amount is at most Int64.max, a sum of many need not be).
public struct LedgerSum: Sendable, Equatable {
    public private(set) var high: UInt64
    public private(set) var low: UInt64

    public init(_ value: UInt64 = 0) { (high, low) = (0, value) }
    public init(high: UInt64, low: UInt64) { (self.high, self.low) = (high, low) }

    public mutating func add(_ value: UInt64) {
        let (sum, carry) = low.addingReportingOverflow(value)
        low = sum
        if carry { high &+= 1 }
    }

    /// self − other, if that is a UInt64 (nil if negative or larger).
    public func minus(_ other: LedgerSum) -> UInt64? {
        let (low, borrow) = self.low.subtractingReportingOverflow(other.low)
        let (high, under) = self.high.subtractingReportingOverflow(other.high)
        guard !under, high == (borrow ? 1 : 0) else { return nil }
        return low
    }

    /// The sum, or UInt64.max if it is larger: for reports.
    public var clamped: UInt64 { high == 0 ? low : .max }
}

/// What a journal line records.
public enum MovementKind: String, Sendable {
    /// external → customer
    case fund
    /// customer or merchant → external
    case withdraw
    /// customer → escrow (ticket issued)
    case issue
    /// escrow → merchant (claim accepted)
    case settle
    /// escrow → customer (expired ticket closed)
    case refund
    /// escrow → merchant and customer (the operator's ruling on a dispute, §9.4)
    case ruling
}

/// One line of the append-only double-entry journal: `amount` leaves `debit`
/// and enters `credit`. Every balance is the sum of what entered minus what left.
public struct JournalEntry: Sendable, Equatable {
    public var debit: LedgerAccount
    public var credit: LedgerAccount
    public var amount: UInt64
    public var kind: MovementKind
    /// What caused it: "serial 42", "batch 9001 serial 42", ...
    public var reference: String

    public init(debit: LedgerAccount, credit: LedgerAccount, amount: UInt64, kind: MovementKind, reference: String) {
        self.debit = debit
        self.credit = credit
        self.amount = amount
        self.kind = kind
        self.reference = reference
    }
}

public struct AccountRecord: Sendable, Equatable {
    public var number: UInt64
    public var role: AccountRole
    public var balance: UInt64
}

/// The life of a ticket's escrow.
public enum TicketState: String, Sendable, Equatable {
    /// Escrow held; claims are paid from it.
    case open
    /// A claim had a right `tag` and a wrong `bank_tag` (§9.4): escrow frozen.
    case disputed
    /// Closed: by refundExpired, the remainder back to the customer; or by
    /// the operator's ruling on a dispute, between merchant and customer.
    case refunded
}

/// The bank's record of an issued ticket and its settled position (§9.3).
public struct TicketRecord: Sendable, Equatable {
    public var serial: UInt64
    public var customer: UInt64
    public var merchant: UInt64
    public var limit: UInt64
    public var unit: UInt64
    /// 0 in order mode.
    public var chainLength: UInt32
    public var chainID: Bytes12
    public var root: Bytes32
    public var issued: UInt64
    public var expires: UInt64
    public var state: TicketState
    /// Chain mode: the settled index; order mode: the settled `seq`.
    public var settledPosition: UInt64
    /// Chain mode: the settled word (initially the root); order mode: zero.
    public var settledWord: Bytes32
    /// What the merchant has been credited on this ticket.
    public var settledAmount: UInt64

    public var isChainMode: Bool { chainLength > 0 }
    /// What is still held for this ticket: 0 once refunded.
    public var escrow: UInt64 { state == .refunded ? 0 : limit - settledAmount }

    public init(
        serial: UInt64, customer: UInt64, merchant: UInt64, limit: UInt64, unit: UInt64, chainLength: UInt32,
        chainID: Bytes12, root: Bytes32, issued: UInt64, expires: UInt64, state: TicketState = .open,
        settledPosition: UInt64 = 0, settledWord: Bytes32? = nil, settledAmount: UInt64 = 0
    ) {
        self.serial = serial
        self.customer = customer
        self.merchant = merchant
        self.limit = limit
        self.unit = unit
        self.chainLength = chainLength
        self.chainID = chainID
        self.root = root
        self.issued = issued
        self.expires = expires
        self.state = state
        self.settledPosition = settledPosition
        self.settledWord = settledWord ?? root
        self.settledAmount = settledAmount
    }
}

/// The reply stored for a request_id (§5.5), returned again on a retry.
public struct StoredIssue: Sendable, Equatable {
    public var request: [UInt8]
    public var serial: UInt64
    public var envelope: [UInt8]
    public var ticket: [UInt8]
}

/// A fund or withdrawal made under the caller's request id: what it moved,
/// kept so that the same id sent again (a retry after a timeout or a
/// crash) moves nothing a second time.
public struct TransferRecord: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case fund
        case withdraw
    }

    public var requestID: String
    public var kind: Kind
    public var account: UInt64
    public var amount: UInt64

    public init(requestID: String, kind: Kind, account: UInt64, amount: UInt64) {
        self.requestID = requestID
        self.kind = kind
        self.account = account
        self.amount = amount
    }
}

/// The Receipt stored for a batch id (§9.2), bound to the Deposit's bytes by
/// their full SHA-256.
public struct StoredReceipt: Sendable, Equatable {
    public var merchant: UInt64
    public var batchID: UInt64
    public var depositSHA256: Bytes32
    public var receipt: [UInt8]
    public var credited: UInt64
}

/// The ledger operations the bank logic needs, inside one transaction. A
/// backend (SQLite now, PostgreSQL later) implements these and `LedgerStore`;
/// the bank logic never sees SQL.
public protocol LedgerTransaction {
    // Ledger identity and counters.
    func bankID() throws -> UInt32?
    func initialize(bankID: UInt32, firstSerial: UInt64, firstAccount: UInt64) throws
    /// The check value of the master key the ledger belongs to
    /// (`KeyDerivation.masterKeyCheck`); nil in a ledger written before it was kept.
    func masterKeyCheck() throws -> UInt64?
    func setMasterKeyCheck(_ check: UInt64) throws
    /// Returns the next serial and advances the counter durably.
    func allocateSerial() throws -> UInt64
    /// The next number `allocateAccount` would consider.
    func nextAccountNumber() throws -> UInt64
    func setNextAccountNumber(_ number: UInt64) throws

    // Accounts.
    func account(_ number: UInt64) throws -> AccountRecord?
    func insertAccount(_ number: UInt64, role: AccountRole) throws
    func accounts() throws -> [AccountRecord]

    /// Appends `entry` to the journal and applies it to the balances it names
    /// (accounts; escrow is applied through the ticket record by the caller).
    func post(_ entry: JournalEntry) throws
    /// Money held in the bank: deposits − withdrawals (kept as a counter).
    func circulation() throws -> UInt64
    func setCirculation(_ value: UInt64) throws
    /// Net flow per journal account: Σ entered − Σ left (signed: `external` is negative).
    func journalNet() throws -> [LedgerAccount: Int64]
    /// Σ funded and Σ withdrawn, from the journal.
    func journalTotals() throws -> (funded: LedgerSum, withdrawn: LedgerSum)
    /// Σ of the journal's settle lines crediting `merchant`.
    func settledCredits(merchant: UInt64) throws -> LedgerSum

    // Tickets.
    func ticket(_ serial: UInt64) throws -> TicketRecord?
    func insertTicket(_ ticket: TicketRecord) throws
    func updateTicket(_ ticket: TicketRecord) throws
    func tickets() throws -> [TicketRecord]
    /// Open tickets whose `expires` is strictly below `bound`.
    func openTickets(expiringBefore bound: UInt64) throws -> [TicketRecord]
    func chainRootUsed(_ root: Bytes32) throws -> Bool

    // Idempotency.
    func storedIssue(customer: UInt64, requestID: Bytes16) throws -> StoredIssue?
    func insertIssue(customer: UInt64, requestID: Bytes16, _ issue: StoredIssue) throws
    func storedReceipt(merchant: UInt64, batchID: UInt64) throws -> StoredReceipt?
    func insertReceipt(_ receipt: StoredReceipt) throws
    func receipts(merchant: UInt64) throws -> [StoredReceipt]
    func transfer(requestID: String) throws -> TransferRecord?
    func insertTransfer(_ transfer: TransferRecord) throws
}

/// A ledger that runs each body in one transaction: `write` commits
/// everything the body did or, if it throws, nothing.
public protocol LedgerStore: Sendable {
    func write<T>(_ body: (any LedgerTransaction) throws -> T) throws -> T
    func read<T>(_ body: (any LedgerTransaction) throws -> T) throws -> T
}
