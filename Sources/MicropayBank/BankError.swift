import MicropayCore

/// Every refusal of the bank, precise enough that a caller (or a test) can
/// tell exactly which check of PROTOCOL.md §5.3 / §9.2 failed. A refused
/// operation changes nothing in the ledger.
public enum BankError: Error, Equatable, Sendable, CustomStringConvertible {
    // MARK: wire objects
    /// The bytes do not decode as the object expected (length, kind, header, zero fields).
    case malformed(MicropayError)
    /// The object names another bank.
    case wrongBank(UInt32)

    // MARK: ticket requests (§5.3, in check order)
    /// Check 1: the request's tag is wrong under mac(K_C).
    case badRequestTag
    /// The request's customer is not an open customer account of this bank.
    case unknownCustomer(UInt64)
    /// §5.5: this customer already used `requestID` for a request with other bytes.
    case requestIDReused(Bytes16)
    /// Check 2: the merchant is not an open merchant account of this bank.
    case unknownMerchant(UInt64)
    /// Check 3: the §5.1 mode rules do not hold.
    case modeRule(ModeViolation)
    /// Check 3 (policy part): the limit exceeds the policy's `maxLimit`.
    case limitAbovePolicy(limit: UInt64, max: UInt64)
    /// Check 4: lifetime is 0 or above the policy's maximum.
    case lifetimeOutOfRange(UInt32, max: UInt32)
    /// Check 5: this chain root was already used by an issued ticket.
    case rootReused
    /// Check 6 (and withdrawals): the balance does not cover the amount.
    case insufficientFunds(account: UInt64, balance: UInt64, needed: UInt64)

    // MARK: deposits (§9.2)
    /// Check 2: the Deposit's tag is wrong under mac(K_M).
    case badDepositTag
    /// The merchant already has a Receipt for this batch id, for other Deposit bytes.
    case batchReused(merchant: UInt64, batchID: UInt64)
    /// The Deposit's tickets changed while its claims were judged, every time
    /// of `attempts`: nothing was settled, and sending it again settles it.
    case settlementContended(attempts: Int)

    // MARK: disputes (§9.4)
    case unknownTicket(UInt64)
    /// A ruling for a ticket that is not disputed.
    case notDisputed(UInt64)
    /// A ruling pays the merchant more than the ticket's escrow holds.
    case rulingAboveEscrow(amount: UInt64, escrow: UInt64)

    // MARK: accounts and amounts
    case accountExists(UInt64)
    case unknownAccount(UInt64)
    /// The account exists but has the other role.
    case wrongRole(account: UInt64, expected: AccountRole)
    case zeroAmount
    /// A fund's or withdrawal's request id is not 1 to 64 printable ASCII
    /// characters (no spaces).
    case badTransferID(String)
    /// The request id already moved other money: `earlier` is what it moved.
    case transferIDReused(earlier: TransferRecord)
    /// SQLite stores signed 64-bit integers: amounts above Int64.max are refused.
    case amountTooLarge(UInt64)
    /// A balance or the money in circulation would exceed Int64.max.
    case amountOverflow
    /// `now + lifetime` (or `now`) does not fit the ledger's signed 64-bit clock.
    case clockOutOfRange(UInt64)
    case serialsExhausted

    // MARK: master key and ledger
    /// The master key file is readable or writable by group or others.
    case masterKeyTooOpen(path: String, mode: UInt32)
    case masterKeyCorrupt(path: String, length: Int)
    case masterKeyIO(path: String, errno: Int32)
    /// The master key is not the one the ledger was created with: every key
    /// the bank derives from it would differ from those it handed out.
    case masterKeyMismatch
    /// The ledger exists but its master key file does not: a new key would
    /// not match it, so none is created.
    case masterKeyMissing(path: String)
    /// The ledger was created for another bank id.
    case ledgerBankMismatch(stored: UInt32, expected: UInt32)
    /// The storage backend failed; the transaction was rolled back.
    case storage(String)

    /// The ways a request breaks §5.1.
    public enum ModeViolation: Equatable, Sendable {
        /// Chain mode needs 1 ≤ n ≤ 65536.
        case chainLengthOutOfRange(UInt32)
        /// Chain mode needs unit ≥ 1.
        case zeroUnit
        /// n × unit overflows u64.
        case limitOverflow
        /// Chain mode needs limit = n × unit exactly.
        case limitNotChainTimesUnit(limit: UInt64, expected: UInt64)
        /// Order mode needs unit, root and chain_id zero.
        case orderFieldsNotZero
        /// Order mode needs limit ≥ 1.
        case zeroLimit
    }

    public var description: String {
        switch self {
        case .malformed(let e): "malformed: \(e)"
        case .wrongBank(let b): "names bank \(b), not this bank"
        case .badRequestTag: "ticket request tag is wrong"
        case .unknownCustomer(let c): "\(c) is not an open customer account"
        case .requestIDReused(let r): "request_id \(r.hex) already used for another request"
        case .unknownMerchant(let m): "\(m) is not an open merchant account"
        case .modeRule(let v): "mode rule broken: \(v)"
        case .limitAbovePolicy(let l, let m): "limit \(l) above the policy maximum \(m)"
        case .lifetimeOutOfRange(let l, let m): "lifetime \(l) not in 1...\(m)"
        case .rootReused: "chain root already used"
        case .insufficientFunds(let a, let b, let n): "account \(a) holds \(b), needs \(n)"
        case .badDepositTag: "deposit tag is wrong"
        case .batchReused(let m, let b): "merchant \(m) already used batch id \(b) for another deposit"
        case .settlementContended(let n): "the deposit's tickets changed while it was judged, \(n) times: nothing settled, send it again"
        case .unknownTicket(let s): "no ticket \(s)"
        case .notDisputed(let s): "ticket \(s) is not disputed"
        case .rulingAboveEscrow(let a, let e): "the ruling pays \(a) from an escrow of \(e)"
        case .accountExists(let a): "account \(a) already exists"
        case .unknownAccount(let a): "no account \(a)"
        case .wrongRole(let a, let r): "account \(a) is not a \(r) account"
        case .zeroAmount: "amount must be positive"
        case .badTransferID(let r): "request id \"\(r)\" is not 1 to 64 printable ASCII characters without spaces"
        case .transferIDReused(let t):
            "request id \"\(t.requestID)\" was already used to \(t.kind) \(t.amount) (account \(t.account))"
        case .amountTooLarge(let a): "amount \(a) exceeds \(Int64.max)"
        case .amountOverflow: "a balance would exceed \(Int64.max)"
        case .clockOutOfRange(let t): "time \(t) out of range"
        case .serialsExhausted: "no ticket serial left"
        case .masterKeyTooOpen(let p, let m): "\(p) has mode \(String(m, radix: 8)); must not be group/other accessible"
        case .masterKeyCorrupt(let p, let n): "\(p) holds \(n) bytes, not 32"
        case .masterKeyIO(let p, let e): "\(p): errno \(e)"
        case .masterKeyMismatch: "the master key is not the one this ledger was created with"
        case .masterKeyMissing(let p): "\(p): no master key for this existing ledger (restore it; a new one would not match)"
        case .ledgerBankMismatch(let s, let e): "ledger belongs to bank \(s), not \(e)"
        case .storage(let s): "storage: \(s)"
        }
    }
}
