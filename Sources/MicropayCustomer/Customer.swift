import Foundation
import GRDB
import MicropayCore

/// A ticket in the wallet, with what has been paid on it so far.
public struct WalletTicket: Sendable, Equatable {
    public enum Mode: Sendable, Equatable { case chain, order }
    public let serial: UInt64
    public let merchant: UInt64
    public let limit: UInt64
    public let unit: UInt64
    public let chainLength: UInt32
    public let chainID: Bytes12
    public let issued: UInt64
    public let expires: UInt64
    /// The bank's ticket, to forward to the merchant.
    public let ticket: Ticket
    /// Chain mode: the highest index revealed.
    public let paidIndex: UInt32
    /// Order mode: the last order's seq and cumulative amount.
    public let seq: UInt32
    public let cumulative: UInt64

    public var mode: Mode { chainLength == 0 ? .order : .chain }
    /// What has been paid so far, in micro-units.
    public var spent: UInt64 { mode == .chain ? UInt64(paidIndex) * unit : cumulative }
}

/// What a wallet commit waits for (SQLite's `synchronous`, in WAL mode).
public enum WalletDurability: String, Sendable {
    /// fsync at every commit: a payment handed out survives power loss.
    case full = "FULL"
    /// fsync at checkpoints only: survives a crash of the process, may lose the last commits on power loss.
    case normal = "NORMAL"
}

/// The customer of PROTOCOL.md: asks the bank for tickets, opens envelopes,
/// pays merchants with chain words or MAC'd orders, and buys goods.
public final class Customer: @unchecked Sendable {
    public let bankID: UInt32
    public let account: UInt64
    private let key: SecretKey
    private let walletSecret: SecretKey
    private let customerMAC: MACKey
    private let wallet: Wallet
    private let random: RandomSource
    // Serialises payments: each reads and advances a ticket's position.
    private let lock = NSLock()

    private init(wallet: Wallet, identity: Wallet.Identity, random: RandomSource) {
        self.wallet = wallet
        bankID = identity.bankID
        account = identity.account
        key = identity.key
        walletSecret = identity.walletSecret
        customerMAC = MACKey(macOf: identity.key)
        self.random = random
    }

    /// Creates a new wallet file for an account the bank opened (number and K_C).
    public static func create(
        walletPath: String, bankID: UInt32, account: UInt64, key: SecretKey,
        walletSecret: SecretKey? = nil, random: RandomSource = SystemRandom()
    ) throws(CustomerError) -> Customer {
        let identity = Wallet.Identity(bankID: bankID, account: account, key: key,
                                       walletSecret: walletSecret ?? random.secretKey())
        let wallet = try Wallet.create(path: walletPath, identity: identity)
        return Customer(wallet: wallet, identity: identity, random: random)
    }

    /// Opens an existing wallet. `.full` (the default) makes every payment's
    /// new position survive power loss before the payment is handed out;
    /// `.normal` only a crash of the process (simulations and demos).
    public static func open(
        walletPath: String, random: RandomSource = SystemRandom(), durability: WalletDurability = .full
    ) throws(CustomerError) -> Customer {
        guard FileManager.default.fileExists(atPath: walletPath) else { throw .storage("\(walletPath) does not exist") }
        let wallet = try Wallet.open(path: walletPath, durability: durability)
        return Customer(wallet: wallet, identity: try wallet.identity(), random: random)
    }

    /// Whether `candidate` is this wallet's K_C (compared in constant time).
    public func hasKey(_ candidate: SecretKey) -> Bool { candidate == key }

    // MARK: Tickets

    /// A chain-mode request: `chainLength` words of `unit` each. The chain is
    /// walked once here (to its root); only √n checkpoints are kept.
    public func requestChainTicket(
        merchant: UInt64, unit: UInt64, chainLength: UInt32, lifetime: UInt32
    ) throws(CustomerError) -> TicketRequest {
        guard chainLength >= 1 && chainLength <= HashChain.maxLength else {
            throw .invalidArgument("chain length must be 1...\(HashChain.maxLength), got \(chainLength)")
        }
        guard unit >= 1 else { throw .invalidArgument("unit must be at least 1") }
        let (limit, overflow) = unit.multipliedReportingOverflow(by: UInt64(chainLength))
        guard !overflow else { throw .wire(.amountOverflow) }
        let chainID: Bytes12 = random.bytes()
        let seed = HashChain.seed(walletSecret: walletSecret, chainID: chainID)
        let (chain, root) = PaywordChain.build(seed: seed, chainID: chainID, length: chainLength)
        return try storeRequest(
            TicketRequest.make(bankID: bankID, customer: account, merchant: merchant, limit: limit, unit: unit,
                               chainLength: chainLength, lifetime: lifetime, root: root, chainID: chainID,
                               requestID: random.bytes(), customerMAC: customerMAC),
            chain: chain)
    }

    /// An order-mode request for up to `limit`.
    public func requestOrderTicket(merchant: UInt64, limit: UInt64, lifetime: UInt32) throws(CustomerError) -> TicketRequest {
        guard limit >= 1 else { throw .invalidArgument("limit must be at least 1") }
        return try storeRequest(
            TicketRequest.make(bankID: bankID, customer: account, merchant: merchant, limit: limit, unit: 0,
                               chainLength: 0, lifetime: lifetime, requestID: random.bytes(), customerMAC: customerMAC),
            chain: nil)
    }

    private func storeRequest(_ request: TicketRequest, chain: PaywordChain?) throws(CustomerError) -> TicketRequest {
        try wallet.write { db in
            // The checkpoints are bound from the chain's own buffer (SQLite copies them).
            func insert(_ checkpoints: Data?) throws {
                try db.execute(sql: "INSERT INTO request (request_id, bytes, checkpoints) VALUES (?, ?, ?)",
                               arguments: [Data(request.requestID.bytes), Data(request.bytes), checkpoints])
            }
            guard let chain else { return try insert(nil) }
            try chain.withSerializedCheckpoints { try Wallet.binding($0, insert) }
        }
        return request
    }

    /// Opens the bank's answer, checks it against the request it answers,
    /// and keeps the ticket. Accepting the same answer twice is harmless.
    @discardableResult
    public func accept(envelope: Envelope, ticket: Ticket) throws(CustomerError) -> WalletTicket {
        let body: EnvelopeBody
        do { body = try envelope.open(customerKey: key) } catch { throw .wire(error) }
        guard envelope.bankID == bankID else { throw .envelopeMismatch(field: "bank_id") }
        guard envelope.customer == account else { throw .envelopeMismatch(field: "customer") }
        guard ticket.bankID == bankID, ticket.serial == envelope.serial else { throw .envelopeMismatch(field: "ticket serial") }
        guard ticket.merchant == body.merchant else { throw .envelopeMismatch(field: "ticket merchant") }
        let serial = envelope.serial
        try wallet.write { db in
            // Inside the write lock: another process may be accepting the same answer.
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM ticket WHERE serial = ?", arguments: [serial.stored]) ?? false { return }
            guard let row = try Row.fetchOne(db, sql: "SELECT bytes FROM request WHERE request_id = ?",
                                             arguments: [Data(body.requestID.bytes)]) else {
                throw CustomerError.noPendingRequest(requestID: body.requestID.hex)
            }
            let requestBytes: Data = row["bytes"]
            let request = try TicketRequest(decoding: [UInt8](requestBytes))
            for (name, matches) in [("merchant", request.merchant == body.merchant), ("limit", request.limit == body.limit),
                                    ("unit", request.unit == body.unit), ("chain_len", request.chainLength == body.chainLength),
                                    ("chain_id", request.chainID == body.chainID),
                                    ("lifetime", body.expires &- body.issued == UInt64(request.lifetime))] where !matches {
                throw CustomerError.envelopeMismatch(field: name)
            }
            // The chain's checkpoints (secret words) move from the request within SQLite.
            try Wallet.binding(body.sessionKey) { sessionKey in
                try db.execute(sql: """
                    INSERT INTO ticket (serial, merchant, "limit", unit, chain_length, chain_id, issued, expires,
                                        session_key, ticket, checkpoints)
                    SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, checkpoints FROM request WHERE request_id = ?
                    """, arguments: [serial.stored, body.merchant.stored, body.limit.stored, body.unit.stored,
                                     Int64(body.chainLength), Data(body.chainID.bytes), body.issued.stored, body.expires.stored,
                                     sessionKey, Data(ticket.bytes), Data(body.requestID.bytes)])
            }
            try db.execute(sql: "DELETE FROM request WHERE request_id = ?", arguments: [Data(body.requestID.bytes)])
        }
        return try self.ticket(serial: serial)
    }

    public func ticket(serial: UInt64) throws(CustomerError) -> WalletTicket {
        try wallet.read { db in try Self.ticket(serial, db) }
    }

    private static func ticket(_ serial: UInt64, _ db: Database) throws -> WalletTicket {
        guard let row = try Row.fetchOne(db, sql: "SELECT \(ticketColumns) FROM ticket WHERE serial = ?", arguments: [serial.stored]) else {
            throw CustomerError.unknownTicket(serial)
        }
        return try walletTicket(row)
    }

    public func tickets() throws(CustomerError) -> [WalletTicket] {
        try wallet.read { db in
            try Row.fetchAll(db, sql: "SELECT \(Self.ticketColumns) FROM ticket ORDER BY serial").map(Self.walletTicket)
        }
    }

    /// What a WalletTicket shows, and no more: not K_CM or the chain's
    /// checkpoints, which a fetched row would copy into Data nothing zeroes.
    private static let ticketColumns = """
        serial, merchant, "limit", unit, chain_length, chain_id, issued, expires, ticket, paid_index, seq, cumulative
        """

    private static func walletTicket(_ row: Row) throws -> WalletTicket {
        let chainID: Data = row["chain_id"], ticket: Data = row["ticket"]
        return WalletTicket(
            serial: UInt64(bitPattern: row["serial"]), merchant: UInt64(bitPattern: row["merchant"]),
            limit: UInt64(bitPattern: row["limit"]), unit: UInt64(bitPattern: row["unit"]),
            chainLength: UInt32(row["chain_length"] as Int64), chainID: Bytes12(chainID)!,
            issued: UInt64(bitPattern: row["issued"]), expires: UInt64(bitPattern: row["expires"]),
            ticket: try Ticket(decoding: [UInt8](ticket)),
            paidIndex: UInt32(row["paid_index"] as Int64), seq: UInt32(row["seq"] as Int64),
            cumulative: UInt64(bitPattern: row["cumulative"]))
    }

    private func sessionKey(serial: UInt64) throws(CustomerError) -> SecretKey {
        try wallet.read { db in try Self.sessionKey(serial, db) }
    }

    private static func sessionKey(_ serial: UInt64, _ db: Database) throws -> SecretKey {
        let rows = try Row.fetchCursor(db, sql: "SELECT session_key FROM ticket WHERE serial = ?", arguments: [serial.stored])
        guard let row = try rows.next() else { throw CustomerError.unknownTicket(serial) }
        return try Wallet.secretKey(row, "session_key")
    }

    // MARK: Paying

    /// Pays `units` more units on a chain ticket: reveals the word at the new
    /// index (O(√n) hashes from the nearest checkpoint). At most
    /// `HashChain.maxGap` units at once: the merchant refuses a longer step
    /// (§7.2), and a wallet past it could never pay on the ticket again.
    ///
    /// The ticket's position is read, advanced and stored, with the payment's
    /// bytes (`lastPayment`), in one transaction: two processes paying on one
    /// wallet never reveal the same word as two payments.
    public func pay(serial: UInt64, units: UInt32 = 1) throws(CustomerError) -> ChainPayment {
        guard units >= 1 else { throw .invalidArgument("pay at least one unit") }
        guard units <= HashChain.maxGap else {
            throw .invalidArgument("pay at most \(HashChain.maxGap) units at once (the merchant's gap rule), got \(units)")
        }
        lock.lock(); defer { lock.unlock() }
        return try wallet.write { db in
            let ticket = try Self.ticket(serial, db)
            guard ticket.mode == .chain else { throw CustomerError.wrongMode(serial: serial) }
            let remaining = ticket.chainLength - ticket.paidIndex
            guard units <= remaining else {
                throw CustomerError.chainExhausted(serial: serial, remaining: remaining, requested: units)
            }
            let index = ticket.paidIndex + units
            // Read in place from SQLite's buffer into the chain's zeroed one.
            let rows = try Row.fetchCursor(db, sql: "SELECT checkpoints FROM ticket WHERE serial = ?", arguments: [serial.stored])
            let stored = try rows.next()?.withUnsafeData(atIndex: 0) { data in
                data?.withUnsafeBytes { PaywordChain(chainID: ticket.chainID, length: ticket.chainLength, serialized: $0) }
            }
            guard let chain = stored ?? nil else {
                throw CustomerError.storage("ticket \(serial) has no valid chain checkpoints")
            }
            let payment = ChainPayment(bankID: bankID, serial: serial, index: index, word: chain.word(at: index))
            try db.execute(sql: "UPDATE ticket SET paid_index = ?, last_payment = ? WHERE serial = ?",
                           arguments: [Int64(index), Data(payment.encoded()), serial.stored])
            return payment
        }
    }

    /// Pays `amount` more on an order ticket, bound to `item`; in one
    /// transaction, as `pay`: no two orders share a seq.
    public func payOrder(serial: UInt64, amount: UInt64, item: Bytes16) throws(CustomerError) -> PaymentOrder {
        lock.lock(); defer { lock.unlock() }
        return try wallet.write { db in
            let ticket = try Self.ticket(serial, db)
            guard ticket.mode == .order else { throw CustomerError.wrongMode(serial: serial) }
            let remaining = ticket.limit - ticket.cumulative
            guard amount <= remaining, ticket.seq < UInt32.max else {
                throw CustomerError.overLimit(serial: serial, remaining: remaining, requested: amount)
            }
            let sessionMAC = MACKey(macOf: try Self.sessionKey(serial, db))
            let order = PaymentOrder.make(bankID: bankID, serial: serial, seq: ticket.seq + 1,
                                          cumulative: ticket.cumulative + amount, item: item,
                                          customerMAC: customerMAC, sessionMAC: sessionMAC)
            try db.execute(sql: "UPDATE ticket SET seq = ?, cumulative = ?, last_payment = ? WHERE serial = ?",
                           arguments: [Int64(order.seq), order.cumulative.stored, Data(order.bytes), serial.stored])
            try db.execute(sql: "INSERT OR IGNORE INTO purchase (serial, item) VALUES (?, ?)",
                           arguments: [serial.stored, Data(item.bytes)])
            return order
        }
    }

    /// The wire bytes of the last payment made on the ticket (a ChainPayment
    /// or a PaymentOrder), nil before the first. Sending them again is safe:
    /// the merchant takes a payment byte-identical to the last one it
    /// accepted as a `duplicate` (§7.1), with no second credit; a payment that
    /// never reached it is accepted then.
    public func lastPayment(serial: UInt64) throws(CustomerError) -> [UInt8]? {
        try wallet.read { db in
            _ = try Self.ticket(serial, db)
            return try Data.fetchOne(db, sql: "SELECT last_payment FROM ticket WHERE serial = ?", arguments: [serial.stored])
                .map { [UInt8]($0) }
        }
    }

    // MARK: Information goods

    /// Pays `price` for the goods stream the customer holds: the order is
    /// bound to the stream's `item`, the hash of exactly these bytes.
    public func buy(goods stream: GoodsStream, serial: UInt64, price: UInt64) throws(CustomerError) -> PaymentOrder {
        try payOrder(serial: serial, amount: price, item: stream.item)
    }

    /// Opens the merchant's KeyEnvelope and decrypts every chunk of the
    /// stream; checks first that both are for an item this wallet paid for.
    public func openGoods(_ stream: GoodsStream, keyEnvelope: KeyEnvelope) throws(CustomerError) -> [UInt8] {
        guard keyEnvelope.item == stream.item else { throw .goodsMismatch("the key is for another item") }
        guard keyEnvelope.bankID == bankID else { throw .goodsMismatch("the key names another bank") }
        let serial = keyEnvelope.serial
        let paid = try wallet.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM purchase WHERE serial = ? AND item = ?",
                              arguments: [serial.stored, Data(stream.item.bytes)]) ?? false
        }
        guard paid else { throw .goodsMismatch("no payment for this item on ticket \(serial)") }
        do {
            let streamKey = try keyEnvelope.open(sessionKey: try sessionKey(serial: serial))
            return try stream.open(streamKey: streamKey)
        } catch let error as CustomerError {
            throw error
        } catch let error as MicropayError {
            throw .wire(error)
        } catch {
            throw .storage("\(error)")
        }
    }
}
