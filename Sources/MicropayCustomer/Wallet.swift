import Foundation
#if canImport(Glibc)
import Glibc
#endif
import GRDB
import MicropayCore

/// The customer's wallet file (SQLite through GRDB): the account, its key,
/// the wallet secret that seeds every chain, pending requests and the
/// tickets with their payment positions. Every payment's new position is
/// written (synchronous = FULL), with the payment's bytes, in the transaction
/// that reads the old one and before the payment is handed out, so neither a
/// crash nor another process paying on the same file can make the wallet
/// reuse a sequence number or pay a word twice as two different payments.
/// The file holds secrets and is created owner-only.
final class Wallet: @unchecked Sendable {
    let database: DatabaseQueue

    struct Identity {
        let bankID: UInt32
        let account: UInt64
        let key: SecretKey
        let walletSecret: SecretKey
    }

    private init(database: DatabaseQueue) { self.database = database }

    static func create(path: String, identity: Identity) throws(CustomerError) -> Wallet {
        guard !FileManager.default.fileExists(atPath: path) else {
            throw .storage("\(path) already exists")
        }
        // Owner-only from the first byte: create the empty file with 0600 first.
        let fd = Glibc.open(path, O_CREAT | O_EXCL | O_WRONLY, 0o600)
        guard fd >= 0 else { throw .storage("cannot create \(path): \(String(cString: strerror(errno)))") }
        Glibc.close(fd)
        let wallet = try open(path: path)
        try wallet.write { db in
            try Self.binding(identity.key) { key in
                try Self.binding(identity.walletSecret) { secret in
                    try db.execute(
                        sql: "INSERT INTO identity (id, bank_id, account, key, wallet_secret) VALUES (1, ?, ?, ?, ?)",
                        arguments: [Int64(identity.bankID), Int64(bitPattern: identity.account), key, secret])
                }
            }
        }
        return wallet
    }

    static func open(path: String, durability: WalletDurability = .full) throws(CustomerError) -> Wallet {
        do {
            var configuration = Configuration()
            // Another process paying on this wallet holds it for one payment: wait for it.
            configuration.busyMode = .timeout(10)
            configuration.prepareDatabase { db in
                try db.execute(sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: "PRAGMA synchronous = \(durability.rawValue)")
            }
            let wallet = Wallet(database: try DatabaseQueue(path: path, configuration: configuration))
            try migrate(wallet.database)
            return wallet
        } catch {
            throw .storage("\(path): \(error)")
        }
    }

    /// Brings the schema up to date. Processes that open a wallet written by
    /// an older release at once race to upgrade it: GRDB reads which
    /// migrations are applied before taking the write lock, so the loser
    /// finds the column added ("duplicate column") and its attempt rolled
    /// back. It tries again a few milliseconds later and finds the upgrade
    /// done (20 tries at most).
    private static func migrate(_ database: DatabaseQueue) throws {
        var attempt: UInt32 = 0
        while true {
            do {
                return try migrator.migrate(database)
            } catch let error as DatabaseError where attempt < 20 && lostRace(error) {
                attempt += 1
                usleep(1000 * attempt)
            }
        }
    }

    private static func lostRace(_ error: DatabaseError) -> Bool {
        error.resultCode == .SQLITE_BUSY
            || (error.resultCode == .SQLITE_ERROR && (error.message ?? "").contains("duplicate column"))
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE identity (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    bank_id INTEGER NOT NULL, account INTEGER NOT NULL,
                    key BLOB NOT NULL, wallet_secret BLOB NOT NULL);
                CREATE TABLE request (
                    request_id BLOB PRIMARY KEY,
                    bytes BLOB NOT NULL,
                    checkpoints BLOB);
                CREATE TABLE ticket (
                    serial INTEGER PRIMARY KEY,
                    merchant INTEGER NOT NULL,
                    "limit" INTEGER NOT NULL, unit INTEGER NOT NULL, chain_length INTEGER NOT NULL,
                    chain_id BLOB NOT NULL, issued INTEGER NOT NULL, expires INTEGER NOT NULL,
                    session_key BLOB NOT NULL, ticket BLOB NOT NULL, checkpoints BLOB,
                    paid_index INTEGER NOT NULL DEFAULT 0,
                    seq INTEGER NOT NULL DEFAULT 0,
                    cumulative INTEGER NOT NULL DEFAULT 0);
                CREATE TABLE purchase (
                    serial INTEGER NOT NULL, item BLOB NOT NULL,
                    PRIMARY KEY (serial, item));
                """)
        }
        // The bytes of each ticket's last payment, to send again (Customer.lastPayment).
        migrator.registerMigration("v2 last payment") { db in
            try db.execute(sql: "ALTER TABLE ticket ADD COLUMN last_payment BLOB")
        }
        return migrator
    }

    func write<T>(_ body: (Database) throws -> T) throws(CustomerError) -> T {
        do { return try database.write(body) } catch let error as CustomerError { throw error } catch {
            throw .storage("\(error)")
        }
    }

    func read<T>(_ body: (Database) throws -> T) throws(CustomerError) -> T {
        do { return try database.read(body) } catch let error as CustomerError { throw error } catch {
            throw .storage("\(error)")
        }
    }

    func identity() throws(CustomerError) -> Identity {
        try read { db in
            let rows = try Row.fetchCursor(db, sql: "SELECT * FROM identity WHERE id = 1")
            guard let row = try rows.next() else { throw CustomerError.storage("the wallet has no identity") }
            return Identity(
                bankID: UInt32(row["bank_id"] as Int64),
                account: UInt64(bitPattern: row["account"]),
                key: try Self.secretKey(row, "key"),
                walletSecret: try Self.secretKey(row, "wallet_secret"))
        }
    }

    // Secrets pass between a SecretKey and SQLite without a Data copy of
    // their own, which nothing would zero: SQLite copies a bound value, and a
    // cursor's row reads SQLite's buffer in place.

    /// Runs `body` with the key's bytes as Data to bind, valid only during the call.
    static func binding<T>(_ key: SecretKey, _ body: (Data) throws -> T) throws -> T {
        try key.withUnsafeBytes { try binding($0, body) }
    }

    /// Runs `body` with `secret` as Data to bind, no copy, valid only during the call.
    static func binding<T>(_ secret: UnsafeRawBufferPointer, _ body: (Data) throws -> T) throws -> T {
        try body(Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: secret.baseAddress!), count: secret.count,
                      deallocator: .none))
    }

    /// The secret in `column` of a row read from a cursor (`Row.fetchCursor`).
    static func secretKey(_ row: Row, _ column: String) throws -> SecretKey {
        try row.withUnsafeData(named: column) { data in
            guard let data else { throw CustomerError.storage("the wallet has no \(column)") }
            return try data.withUnsafeBytes { try SecretKey(bytes: $0) }
        }
    }
}

extension UInt64 {
    /// SQLite integers are signed: identifiers are stored by bit pattern.
    var stored: Int64 { Int64(bitPattern: self) }
}
