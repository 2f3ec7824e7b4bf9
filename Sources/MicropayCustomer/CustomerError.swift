import MicropayCore

/// What can go wrong on the customer's side, precisely enough to act on.
public enum CustomerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No ticket with this serial in the wallet.
    case unknownTicket(UInt64)
    /// An envelope whose request_id matches no request this wallet made.
    case noPendingRequest(requestID: String)
    /// The bank's envelope or ticket disagrees with what was requested.
    case envelopeMismatch(field: String)
    /// A chain payment on an order ticket, or the reverse.
    case wrongMode(serial: UInt64)
    /// Paying `requested` more units would pass the chain's end.
    case chainExhausted(serial: UInt64, remaining: UInt32, requested: UInt32)
    /// The payment would take the ticket past its limit.
    case overLimit(serial: UInt64, remaining: UInt64, requested: UInt64)
    /// A KeyEnvelope or stream that is not for what this wallet paid.
    case goodsMismatch(String)
    case invalidArgument(String)
    /// A wire object failed to decode, open or verify.
    case wire(MicropayError)
    /// The wallet file could not be read or written.
    case storage(String)

    public var description: String {
        switch self {
        case .unknownTicket(let s): "no ticket \(s) in the wallet"
        case .noPendingRequest(let id): "no pending request with id \(id)"
        case .envelopeMismatch(let f): "the bank's answer does not match the request: \(f)"
        case .wrongMode(let s): "ticket \(s) is not in that payment mode"
        case .chainExhausted(let s, let r, let q): "ticket \(s): \(q) units asked, \(r) left on the chain"
        case .overLimit(let s, let r, let q): "ticket \(s): \(q) asked, \(r) left under the limit"
        case .goodsMismatch(let why): "goods: \(why)"
        case .invalidArgument(let why): why
        case .wire(let e): e.description
        case .storage(let why): "wallet storage: \(why)"
        }
    }
}
