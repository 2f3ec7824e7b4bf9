import MicropayCore
import Testing

/// What the wire tests need of every wire object, to run one test over all kinds.
protocol WireObject: Sendable {
    static var wireKind: WireKind { get }
    init(decoding bytes: [UInt8]) throws(MicropayError)
    init(decoding buffer: UnsafeRawBufferPointer) throws(MicropayError)
    func encoded() -> [UInt8]
}

extension ChainPayment: WireObject { static var wireKind: WireKind { .chainPayment } }
extension PaymentOrder: WireObject { static var wireKind: WireKind { .paymentOrder } }
extension TicketRequest: WireObject { static var wireKind: WireKind { .ticketRequest } }
extension Ticket: WireObject { static var wireKind: WireKind { .ticket } }
extension Envelope: WireObject { static var wireKind: WireKind { .envelope } }
extension KeyEnvelope: WireObject { static var wireKind: WireKind { .keyEnvelope } }
extension GoodsStream: WireObject { static var wireKind: WireKind { .goodsStream } }
extension Deposit: WireObject { static var wireKind: WireKind { .deposit } }
extension Receipt: WireObject { static var wireKind: WireKind { .receipt } }

enum Wire {
    static func type(of kind: WireKind) -> any WireObject.Type {
        switch kind {
        case .chainPayment: ChainPayment.self
        case .paymentOrder: PaymentOrder.self
        case .ticket: Ticket.self
        case .envelope: Envelope.self
        case .ticketRequest: TicketRequest.self
        case .deposit: Deposit.self
        case .receipt: Receipt.self
        case .keyEnvelope: KeyEnvelope.self
        case .goodsStream: GoodsStream.self
        }
    }

    /// The decoder of `kind` over an array, as a Result.
    static func decode(_ kind: WireKind, _ bytes: [UInt8]) -> Result<any WireObject, MicropayError> {
        let type = type(of: kind)
        return Result { () throws(MicropayError) -> any WireObject in try type.init(decoding: bytes) }
    }

    /// The same decoder through its buffer overload.
    static func decodeBuffer(_ kind: WireKind, _ bytes: [UInt8]) -> Result<any WireObject, MicropayError> {
        let type = type(of: kind)
        return bytes.withUnsafeBytes { buffer in
            Result { () throws(MicropayError) -> any WireObject in try type.init(decoding: buffer) }
        }
    }

    /// The fields of a decoded object, as text, leaving out any stored copy of
    /// its bytes: two objects with the same fingerprint decoded the same
    /// fields, so a flipped bit that keeps the fingerprint was ignored.
    static func fingerprint(_ value: Any) -> String {
        if let fixed = value as? any FixedBytes { return fixed.hex }
        let mirror = Mirror(reflecting: value)
        if mirror.children.isEmpty { return String(describing: value) }
        let parts = mirror.children.compactMap { child -> String? in
            if child.label == "bytes" { return nil }
            return "\(child.label ?? "")=\(fingerprint(child.value))"
        }
        return "{" + parts.joined(separator: ",") + "}"
    }

    /// Whether the vectors' keys authenticate `object`: its tag(s) verify, or
    /// it opens. Nil for a ChainPayment, which carries no MAC. Opening may
    /// fail only with `.authenticationFailed` of the object's kind.
    static func authenticates(_ object: any WireObject) -> Bool? {
        let k = VectorKeys.shared
        func opens(_ kind: WireKind, _ body: () throws(MicropayError) -> Void) -> Bool {
            do throws(MicropayError) {
                try body()
                return true
            } catch {
                #expect(error == .authenticationFailed(kind))
                return false
            }
        }
        switch object {
        case is ChainPayment:
            return nil
        case let order as PaymentOrder:
            return order.hasValidTag(sessionMAC: k.session43MAC) && order.hasValidBankTag(customerMAC: k.customerMAC)
        case let request as TicketRequest:
            return request.hasValidTag(customerMAC: k.customerMAC)
        case let ticket as Ticket:
            return opens(.ticket) { () throws(MicropayError) in _ = try ticket.open(merchantKey: k.merchantKey) }
        case let envelope as Envelope:
            return opens(.envelope) { () throws(MicropayError) in _ = try envelope.open(customerKey: k.customerKey) }
        case let envelope as KeyEnvelope:
            return opens(.keyEnvelope) { () throws(MicropayError) in _ = try envelope.open(sessionKey: k.session43) }
        case let stream as GoodsStream:
            let key = try! SecretKey(bytes: Vectors.v1.goods.stream_key.bytes)
            return opens(.goodsStream) { () throws(MicropayError) in _ = try stream.open(streamKey: key) }
        case let deposit as Deposit:
            return deposit.hasValidTag(merchantMAC: k.merchantMAC)
        case let receipt as Receipt:
            return receipt.hasValidTag(merchantMAC: k.merchantMAC)
        default:
            Issue.record("no authenticity check for \(Swift.type(of: object))")
            return false
        }
    }
}

/// One wire object of the vectors, for parameterised tests.
struct WireVector: Sendable, CustomTestStringConvertible {
    let name: String
    let kind: WireKind
    let bytes: [UInt8]

    var testDescription: String { name }

    static let all: [WireVector] = {
        let v = Vectors.v1
        var all: [WireVector] = []
        for payment in v.chain_payments {
            all.append(.init(name: "chain payment \(payment.index)", kind: .chainPayment, bytes: payment.bytes.bytes))
        }
        for order in v.orders {
            all.append(.init(name: "order seq \(order.seq)", kind: .paymentOrder, bytes: order.bytes.bytes))
        }
        all.append(.init(name: "goods order", kind: .paymentOrder, bytes: v.goods_order.bytes.bytes))
        all.append(.init(name: "request", kind: .ticketRequest, bytes: v.issue_chain.request.bytes))
        all.append(.init(name: "chain ticket", kind: .ticket, bytes: v.issue_chain.ticket.bytes))
        all.append(.init(name: "order ticket", kind: .ticket, bytes: v.issue_order.ticket.bytes))
        all.append(.init(name: "envelope", kind: .envelope, bytes: v.issue_chain.envelope.bytes))
        all.append(.init(name: "key envelope", kind: .keyEnvelope, bytes: v.goods.key_envelope.bytes))
        all.append(.init(name: "goods stream", kind: .goodsStream, bytes: v.goods.stream.bytes))
        all.append(.init(name: "empty content stream", kind: .goodsStream, bytes: v.goods.empty_content_stream.bytes))
        all.append(.init(name: "exact multiple stream", kind: .goodsStream, bytes: v.goods.exact_multiple_stream.bytes))
        all.append(.init(name: "deposit", kind: .deposit, bytes: v.settle.deposit.bytes))
        all.append(.init(name: "receipt", kind: .receipt, bytes: v.settle.receipt.bytes))
        return all
    }()
}

extension MicropayError {
    /// The wire kind an error names, if it names one.
    var namedKind: WireKind? {
        switch self {
        case .wrongLength(let kind, _, _), .unsupportedVersion(let kind, _), .unsupportedSuite(let kind, _),
             .nonZeroFlags(let kind, _), .nonZeroField(let kind, _), .invalidField(let kind, _, _):
            kind
        case .authenticationFailed(let kind):
            kind
        case .unexpectedKind(let expected, _):
            expected
        default:
            nil
        }
    }
}

/// SplitMix64: a small seeded generator, so fuzz runs repeat exactly.
struct WireFuzzRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &self) }
    }
}
