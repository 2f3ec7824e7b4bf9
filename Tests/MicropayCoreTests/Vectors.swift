import Foundation
import MicropayCore

/// A hex string of the vectors, decoded.
struct Hex: Decodable, Sendable, Equatable {
    let bytes: [UInt8]

    init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let bytes = [UInt8](hex: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not hex: \(text)"))
        }
        self.bytes = bytes
    }

    func key() throws -> SecretKey { try SecretKey(bytes: bytes) }
    func fixed<T: FixedBytes>(_ type: T.Type = T.self) throws -> T {
        guard let value = T(bytes) else { throw VectorError.wrongSize(bytes.count, T.byteCount) }
        return value
    }
}

enum VectorError: Error { case wrongSize(Int, Int), missing }

/// The known-answer vectors of PROTOCOL.md (the test bundle's copy of
/// vectors/v1.json), the parts the wire tests use. The scenario sections
/// (`batch`, `settle_scenario`, …) are decoded elsewhere.
struct Vectors: Decodable, Sendable {
    struct Keys: Decodable, Sendable {
        struct Session: Decodable, Sendable {
            let serial: UInt64
            let K_CM: Hex
        }
        let master: Hex
        let bank_id: UInt32
        let customer: UInt64
        let merchant: UInt64
        let K_C: Hex
        let K_M: Hex
        let sessions: [Session]
    }

    struct Chain: Decodable, Sendable {
        let wallet_secret: Hex
        let chain_id: Hex
        let chain_len: UInt32
        let words: [Hex]
        let step_input_example: Hex
    }

    struct IssueChain: Decodable, Sendable {
        let serial: UInt64
        let issued: UInt64
        let lifetime: UInt32
        let expires: UInt64
        let limit: UInt64
        let unit: UInt64
        let request_id: Hex
        let request: Hex
        let ticket_nonce: Hex
        let ticket_body: Hex
        let ticket: Hex
        let envelope_nonce: Hex
        let envelope_body: Hex
        let envelope: Hex
    }

    struct ChainPaymentVector: Decodable, Sendable {
        let index: UInt32
        let bytes: Hex
    }

    struct IssueOrder: Decodable, Sendable {
        let serial: UInt64
        let limit: UInt64
        let ticket_nonce: Hex
        let ticket_body: Hex
        let ticket: Hex
    }

    struct OrderVector: Decodable, Sendable {
        let seq: UInt32
        let cumulative: UInt64
        let item: Hex
        let bytes: Hex
    }

    struct Subkeys: Decodable, Sendable {
        let enc_K_C: Hex
        let mac_K_C: Hex
        let enc_K_M: Hex
        let mac_K_M: Hex
        let enc_K_CM_43: Hex
        let mac_K_CM_43: Hex
    }

    struct GoodsOrder: Decodable, Sendable {
        let bytes: Hex
    }

    struct Goods: Decodable, Sendable {
        let serial: UInt64
        let item_number: UInt64
        let goods_key: Hex
        let item_nonce: Hex
        let stream_key: Hex
        let chunk: UInt32
        let content: Hex
        let stream: Hex
        let item: Hex
        let key_envelope_nonce: Hex
        let key_envelope: Hex
        let empty_content_stream: Hex
        let exact_multiple_stream: Hex
    }

    struct Settle: Decodable, Sendable {
        let batch_id: UInt64
        let deposit: Hex
        let receipt: Hex
        let credited: UInt64
    }

    let keys: Keys
    let chain: Chain
    let issue_chain: IssueChain
    let chain_payments: [ChainPaymentVector]
    let issue_order: IssueOrder
    let orders: [OrderVector]
    let subkeys: Subkeys
    let goods_order: GoodsOrder
    let goods: Goods
    let settle: Settle

    /// Loaded once from the test bundle (never from ../shared).
    static let v1: Vectors = {
        do {
            guard let url = Bundle.module.url(forResource: "v1", withExtension: "json") else { throw VectorError.missing }
            return try JSONDecoder().decode(Vectors.self, from: Data(contentsOf: url))
        } catch {
            fatalError("cannot load v1.json from the test bundle: \(error)")
        }
    }()
}

/// The vectors' keys and subkeys as objects, derived once.
struct VectorKeys: Sendable {
    let master: SecretKey
    let bankID: UInt32
    let customer: UInt64
    let merchant: UInt64
    let customerKey: SecretKey
    let merchantKey: SecretKey
    /// K_CM of serial 42 (chain ticket) and 43 (order ticket), from the master.
    let session42: SecretKey
    let session43: SecretKey
    let customerMAC: MACKey
    let merchantMAC: MACKey
    let session43MAC: MACKey

    static let shared = VectorKeys(Vectors.v1)

    init(_ v: Vectors) {
        master = try! v.keys.master.key()
        bankID = v.keys.bank_id
        customer = v.keys.customer
        merchant = v.keys.merchant
        customerKey = try! v.keys.K_C.key()
        merchantKey = try! v.keys.K_M.key()
        session42 = KeyDerivation.sessionKey(master: master, bankID: bankID, serial: 42)
        session43 = KeyDerivation.sessionKey(master: master, bankID: bankID, serial: 43)
        customerMAC = MACKey(macOf: customerKey)
        merchantMAC = MACKey(macOf: merchantKey)
        session43MAC = MACKey(macOf: session43)
    }
}
