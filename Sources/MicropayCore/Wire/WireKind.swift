/// The first byte of every wire object (PROTOCOL.md §7).
public enum WireKind: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case chainPayment = 0x01
    case paymentOrder = 0x02
    case ticket = 0x10
    case envelope = 0x11
    case ticketRequest = 0x20
    case deposit = 0x30
    case receipt = 0x31
    case keyEnvelope = 0x40
    case goodsStream = 0x41

    public var description: String {
        switch self {
        case .chainPayment: "ChainPayment"
        case .paymentOrder: "PaymentOrder"
        case .ticket: "Ticket"
        case .envelope: "Envelope"
        case .ticketRequest: "TicketRequest"
        case .deposit: "Deposit"
        case .receipt: "Receipt"
        case .keyEnvelope: "KeyEnvelope"
        case .goodsStream: "GoodsStream"
        }
    }

    /// The fixed size of this kind, or nil for the variable-length ones.
    public var fixedSize: Int? {
        switch self {
        case .chainPayment: 52
        case .paymentOrder: 76
        case .ticket: 184
        case .envelope: 168
        case .ticketRequest: 128
        case .keyEnvelope: 104
        case .deposit, .receipt, .goodsStream: nil
        }
    }
}

/// The verdict on a payment, a ticket or a claim (PROTOCOL.md §7), one byte on the wire.
public enum Verdict: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case accepted = 0
    case malformed = 1
    case unknownTicket = 2
    case badTicket = 3
    case expired = 4
    case badMAC = 5
    case badChainWord = 6
    case replay = 7
    case overLimit = 8
    case wrongMode = 9
    case decreasingAmount = 10
    case unknownKind = 11
    case duplicate = 12

    /// The name used in vectors, JSON output and summaries.
    public var description: String {
        switch self {
        case .accepted: "accepted"
        case .malformed: "malformed"
        case .unknownTicket: "unknownTicket"
        case .badTicket: "badTicket"
        case .expired: "expired"
        case .badMAC: "badMAC"
        case .badChainWord: "badChainWord"
        case .replay: "replay"
        case .overLimit: "overLimit"
        case .wrongMode: "wrongMode"
        case .decreasingAmount: "decreasingAmount"
        case .unknownKind: "unknownKind"
        case .duplicate: "duplicate"
        }
    }
}
