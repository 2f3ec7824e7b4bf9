import MicropayCore

/// Every failure of the merchant role outside a verdict: a payment that fails
/// a check gets a `Verdict`, never an error; errors are for the store, the
/// batch file as a whole, goods, and settlement.
public enum MerchantError: Error, Equatable, Sendable, CustomStringConvertible {
    /// SQLite (through GRDB) failed; the message is SQLite's.
    case database(String)
    /// The store was created for another bank or merchant number.
    case storeBelongsToAnotherMerchant(bankID: UInt32, merchant: UInt64)
    /// The store was created under another K_M (its key check differs).
    case wrongMerchantKey
    /// A stored ticket no longer opens under K_M: the store was altered.
    case storedTicketDoesNotOpen(serial: UInt64)
    /// The ticket log beside the store was altered, cut, or belongs to another store.
    case ticketLog(path: String, String)
    /// The ticket log (or the store's lock file) could not be opened, read or
    /// written: an I/O failure (a full disk, say), not bad data.
    case ticketLogIO(path: String, String)
    /// Another process holds the store's lock file: try again when it is done.
    case storeInUse(path: String)
    /// The batch file was refused whole (§10) or could not be read.
    case batchFile(BatchFileError)
    /// No ticket with this serial is registered.
    case unknownTicket(serial: UInt64)
    /// No goods item with this digest is registered.
    case unknownGoods(item: Bytes16)
    /// No order buying `item` was accepted on ticket `serial`.
    case notPurchased(serial: UInt64, item: Bytes16)
    /// The goods key given does not open the stream.
    case goodsKeyDoesNotOpenStream
    /// Sealing or decoding goods failed in the core.
    case goods(MicropayError)
    /// A Deposit with this batch id was already made.
    case batchIDInUse(UInt64)
    /// The Receipt does not decode.
    case malformedReceipt(MicropayError)
    /// The Receipt's tag is wrong under mac(K_M).
    case receiptTagInvalid
    /// The Receipt names another bank or merchant.
    case receiptForAnotherMerchant(bankID: UInt32, merchant: UInt64)
    /// No Deposit with the Receipt's batch id was made.
    case unknownDeposit(batchID: UInt64)
    /// The Receipt's digest is not the digest of the Deposit we sent.
    case receiptDigestMismatch(batchID: UInt64)
    /// The Receipt has another number of codes than the Deposit has claims.
    case receiptCountMismatch(batchID: UInt64, claims: Int, codes: Int)
    /// Another Receipt was already applied for this batch id.
    case receiptConflict(batchID: UInt64)
    /// The Deposit's Receipt was already applied: it is no longer pending.
    case depositAlreadySettled(batchID: UInt64)

    public var description: String {
        switch self {
        case .database(let m): "merchant store: \(m)"
        case .storeBelongsToAnotherMerchant(let b, let m): "the store belongs to merchant \(m) at bank \(b)"
        case .wrongMerchantKey: "the store was created under another merchant key"
        case .storedTicketDoesNotOpen(let s): "stored ticket \(s) does not open under K_M"
        case .ticketLog(let path, let m), .ticketLogIO(let path, let m): "ticket log \(path): \(m)"
        case .storeInUse(let path): "\(path): the store is in use by another process; try again when it is done"
        case .batchFile(let e): "\(e)"
        case .unknownTicket(let s): "no ticket \(s)"
        case .unknownGoods(let i): "no goods item \(i)"
        case .notPurchased(let s, let i): "item \(i) was not bought on ticket \(s)"
        case .goodsKeyDoesNotOpenStream: "the goods key does not open the stream"
        case .goods(let e): "goods: \(e)"
        case .batchIDInUse(let b): "batch id \(b) is already used by a Deposit"
        case .malformedReceipt(let e): "receipt: \(e)"
        case .receiptTagInvalid: "receipt tag is wrong under mac(K_M)"
        case .receiptForAnotherMerchant(let b, let m): "receipt for merchant \(m) at bank \(b)"
        case .unknownDeposit(let b): "no Deposit with batch id \(b)"
        case .receiptDigestMismatch(let b): "receipt \(b) does not answer the Deposit we sent"
        case .receiptCountMismatch(let b, let c, let n): "receipt \(b) has \(n) codes for \(c) claims"
        case .receiptConflict(let b): "another receipt was already applied for batch \(b)"
        case .depositAlreadySettled(let b): "deposit batch \(b) is settled: its receipt was already applied"
        }
    }
}
