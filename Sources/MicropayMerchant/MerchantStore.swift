import Foundation
import GRDB
import MicropayCore

/// The merchant's SQLite file (WAL, `synchronous = FULL`): goods, purchases,
/// deposits and receipts, a log of the batches verified, and where the
/// ticket log beside it (`<path>.tickets.<generation>`, see `TicketLog`)
/// ends. Every change the merchant makes is one transaction, so a crash
/// leaves either all of it or none of it.
///
/// Secrets: the ticket log holds K_CM sealed (XChaCha20-Poly1305) under a
/// key derived from K_M; goods keys are stored wrapped under another, so
/// the files alone give neither.
///
/// SQLite integers are signed 64-bit: u64 values are stored as their bit
/// pattern (`Int64(bitPattern:)`).
public final class MerchantStore: Sendable {
    let queue: DatabaseQueue
    /// The SQLite file; the ticket log sits beside it. Nil in memory.
    public let path: String?

    /// Opens (creating if needed) the store at `path`.
    public init(path: String) throws(MerchantError) {
        var config = Configuration()
        config.journalMode = .wal
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            // FULL: a committed batch survives power loss, not only a crash.
            try db.execute(sql: "PRAGMA synchronous = FULL")
        }
        self.path = path
        queue = try database { try DatabaseQueue(path: path, configuration: config) }
        try migrate()
    }

    /// A store in memory (tests): same schema, nothing survives the process.
    public init() throws(MerchantError) {
        path = nil
        queue = try database { try DatabaseQueue() }
        try migrate()
    }

    private func migrate() throws(MerchantError) {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("merchant-v1") { db in
            try db.execute(sql: """
                CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
                -- The ticket as received (K_CM inside, sealed under enc(K_M)) and its public fields.
                CREATE TABLE ticket (
                    bank_id INTEGER NOT NULL, serial INTEGER NOT NULL,
                    bytes BLOB NOT NULL,
                    customer INTEGER NOT NULL, limit_amount INTEGER NOT NULL, unit INTEGER NOT NULL,
                    chain_len INTEGER NOT NULL, chain_id BLOB NOT NULL,
                    issued INTEGER NOT NULL, expires INTEGER NOT NULL, root BLOB NOT NULL,
                    PRIMARY KEY (bank_id, serial)) WITHOUT ROWID;
                -- §6.1 progress, and settlement progress (claimed: the index or seq last put in a Deposit;
                -- settled: the highest the bank accepted, settled_amount what that position is worth).
                CREATE TABLE ticket_state (
                    bank_id INTEGER NOT NULL, serial INTEGER NOT NULL,
                    last INTEGER NOT NULL, w_last BLOB NOT NULL,
                    last_seq INTEGER NOT NULL, last_cumulative INTEGER NOT NULL, last_order BLOB,
                    credited INTEGER NOT NULL,
                    claimed INTEGER NOT NULL, settled INTEGER NOT NULL, settled_amount INTEGER NOT NULL,
                    PRIMARY KEY (bank_id, serial)) WITHOUT ROWID;
                -- Goods: K_g wrapped under the store key; K_s is derived when a key is issued.
                CREATE TABLE goods (
                    item BLOB PRIMARY KEY, item_number INTEGER NOT NULL, item_nonce BLOB NOT NULL,
                    price INTEGER NOT NULL, wrap_nonce BLOB NOT NULL, wrapped_key BLOB NOT NULL);
                -- An accepted order on (bank_id, serial) that bought `item`.
                CREATE TABLE purchase (
                    bank_id INTEGER NOT NULL, serial INTEGER NOT NULL, item BLOB NOT NULL,
                    PRIMARY KEY (bank_id, serial, item)) WITHOUT ROWID;
                CREATE TABLE deposit (
                    batch_id INTEGER PRIMARY KEY, bytes BLOB NOT NULL, digest BLOB NOT NULL,
                    settled INTEGER NOT NULL DEFAULT 0, receipt BLOB, credited INTEGER);
                CREATE TABLE deposit_claim (
                    batch_id INTEGER NOT NULL, position INTEGER NOT NULL,
                    bank_id INTEGER NOT NULL, serial INTEGER NOT NULL, kind INTEGER NOT NULL,
                    claim_position INTEGER NOT NULL, amount INTEGER NOT NULL, result INTEGER,
                    PRIMARY KEY (batch_id, position)) WITHOUT ROWID;
                -- One row per batch committed, written in the batch's own transaction.
                CREATE TABLE batch_log (
                    id INTEGER PRIMARY KEY AUTOINCREMENT, tag TEXT NOT NULL, now INTEGER NOT NULL,
                    records INTEGER NOT NULL, accepted INTEGER NOT NULL, duplicates INTEGER NOT NULL,
                    credited INTEGER NOT NULL, truncated INTEGER NOT NULL);
                """)
        }
        // Tickets moved to the ticket log (`TicketLog`), which holds them opened
        // and sealed under a key from K_M; the rows left, if any, are moved into
        // it by the Merchant, which has the key.
        migrator.registerMigration("merchant-v2-ticket-log") { db in
            try db.execute(sql: """
                ALTER TABLE ticket RENAME TO legacy_ticket;
                ALTER TABLE ticket_state RENAME TO legacy_ticket_state;
                """)
        }
        try database { try migrator.migrate(queue) }
    }

    func write<T>(_ body: (Database) throws -> T) throws(MerchantError) -> T {
        try database { try queue.write(body) }
    }

    func read<T>(_ body: (Database) throws -> T) throws(MerchantError) -> T {
        try database { try queue.read(body) }
    }

    /// The batches committed so far, oldest first.
    public func batchLog() throws(MerchantError) -> [BatchLogEntry] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM batch_log ORDER BY id").map { row in
                BatchLogEntry(
                    id: row["id"], tag: row["tag"], now: u64(row["now"]), records: row["records"],
                    accepted: row["accepted"], duplicates: row["duplicates"], credited: u64(row["credited"]),
                    truncatedTail: row["truncated"] as Int64 != 0)
            }
        }
    }
}

/// A committed batch, as logged in the same transaction as its state changes.
public struct BatchLogEntry: Sendable, Equatable {
    public let id: Int64
    public let tag: String
    public let now: UInt64
    public let records: Int
    public let accepted: Int
    public let duplicates: Int
    public let credited: UInt64
    public let truncatedTail: Bool
}

/// Runs a GRDB call, turning its untyped errors into `.database`.
func database<T>(_ body: () throws -> T) throws(MerchantError) -> T {
    do {
        return try body()
    } catch let error as MerchantError {
        throw error
    } catch {
        throw .database("\(error)")
    }
}

@inline(__always) func i64(_ value: UInt64) -> Int64 { Int64(bitPattern: value) }
@inline(__always) func u64(_ value: Int64) -> UInt64 { UInt64(bitPattern: value) }

extension FixedBytes {
    var data: Data { withUnsafeBytes { Data($0) } }
    init?(data: Data) { self.init(Array(data)) }
}
