import Foundation
import GRDB
import MicropayCore

/// The ledger in one SQLite file through GRDB: WAL mode, one IMMEDIATE
/// transaction per `write`, and an append-only journal (triggers refuse
/// UPDATE and DELETE on it). Identifiers (u64 on the wire) are stored as their
/// Int64 bit pattern; amounts are stored as is and must be ≤ Int64.max.
public final class SQLiteLedgerStore: LedgerStore {
    /// SQLite's `synchronous` setting: what a commit waits for.
    public enum Durability: String, Sendable {
        /// fsync the WAL at every commit: a returned Receipt or Envelope survives power loss.
        case full = "FULL"
        /// fsync only at checkpoints: survives a process crash, may lose the last commits on power loss.
        case normal = "NORMAL"
        /// No fsync at all: tests only.
        case off = "OFF"
    }

    public let path: String
    private let pool: DatabasePool

    /// Opens (creating if needed) the ledger at `path`. `.full` is the default:
    /// a bank must not forget a ticket or Receipt it has handed out.
    public init(path: String, durability: Durability = .full) throws {
        self.path = path
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(durability.rawValue)")
        }
        pool = try Self.openMigrated(path: path, configuration: config)
    }

    /// Opens the pool and brings the schema up to date. Several processes'
    /// first opens of one new file race: switching it to WAL can find it
    /// locked (SQLite does not wait there), and the loser of the race to
    /// create the tables finds them made, its own attempt rolled back. Either
    /// is retried, a few milliseconds later, and then finds the other's work
    /// done (20 tries at most).
    private static func openMigrated(path: String, configuration: Configuration) throws -> DatabasePool {
        var attempt: UInt32 = 0
        while true {
            do {
                let pool = try DatabasePool(path: path, configuration: configuration)
                try migrator.migrate(pool)
                return pool
            } catch let error as DatabaseError where attempt < 20 && Self.lostRace(error) {
                attempt += 1
                usleep(1000 * attempt)
            }
        }
    }

    /// The two ways a first open loses the race to another (openMigrated); any
    /// other error is thrown at once.
    private static func lostRace(_ error: DatabaseError) -> Bool {
        error.resultCode == .SQLITE_BUSY
            || (error.resultCode == .SQLITE_ERROR && (error.message ?? "").contains("already exists"))
    }

    public func write<T>(_ body: (any LedgerTransaction) throws -> T) throws -> T {
        try pool.writeWithoutTransaction { db in
            var result: T?
            try db.inTransaction(.immediate) {
                result = try body(SQLiteLedgerTransaction(db: db))
                return .commit
            }
            // inTransaction ran the body to completion or threw.
            guard let value = result else { throw BankError.storage("transaction produced no result") }
            return value
        }
    }

    public func read<T>(_ body: (any LedgerTransaction) throws -> T) throws -> T {
        try pool.read { db in try body(SQLiteLedgerTransaction(db: db)) }
    }

    private static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(sql: """
                CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
                CREATE TABLE accounts (
                    number INTEGER PRIMARY KEY NOT NULL,
                    role TEXT NOT NULL CHECK (role IN ('customer', 'merchant')),
                    balance INTEGER NOT NULL CHECK (balance >= 0));
                CREATE TABLE tickets (
                    serial INTEGER PRIMARY KEY NOT NULL,
                    customer INTEGER NOT NULL,
                    merchant INTEGER NOT NULL,
                    limit_amount INTEGER NOT NULL CHECK (limit_amount >= 1),
                    unit INTEGER NOT NULL,
                    chain_len INTEGER NOT NULL,
                    chain_id BLOB NOT NULL,
                    root BLOB NOT NULL,
                    issued INTEGER NOT NULL,
                    expires INTEGER NOT NULL,
                    state TEXT NOT NULL CHECK (state IN ('open', 'disputed', 'refunded')),
                    settled_position INTEGER NOT NULL,
                    settled_word BLOB NOT NULL,
                    settled_amount INTEGER NOT NULL CHECK (settled_amount BETWEEN 0 AND limit_amount));
                CREATE UNIQUE INDEX tickets_chain_root ON tickets(root) WHERE chain_len > 0;
                CREATE INDEX tickets_open_by_expiry ON tickets(expires) WHERE state = 'open';
                CREATE TABLE issues (
                    customer INTEGER NOT NULL,
                    request_id BLOB NOT NULL,
                    request BLOB NOT NULL,
                    serial INTEGER NOT NULL UNIQUE,
                    envelope BLOB NOT NULL,
                    ticket BLOB NOT NULL,
                    PRIMARY KEY (customer, request_id));
                CREATE TABLE receipts (
                    merchant INTEGER NOT NULL,
                    batch_id INTEGER NOT NULL,
                    deposit_sha256 BLOB NOT NULL,
                    receipt BLOB NOT NULL,
                    credited INTEGER NOT NULL CHECK (credited >= 0),
                    PRIMARY KEY (merchant, batch_id));
                CREATE TABLE journal (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    debit TEXT NOT NULL,
                    credit TEXT NOT NULL,
                    amount INTEGER NOT NULL CHECK (amount > 0),
                    kind TEXT NOT NULL,
                    reference TEXT NOT NULL);
                CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
                    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
                CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
                    BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END;
                CREATE TRIGGER receipts_no_update BEFORE UPDATE ON receipts
                    BEGIN SELECT RAISE(ABORT, 'receipts are immutable'); END;
                CREATE TRIGGER issues_no_update BEFORE UPDATE ON issues
                    BEGIN SELECT RAISE(ABORT, 'issued replies are immutable'); END;
                """)
        }
        // Request ids of funds and withdrawals (Bank.fund, Bank.withdraw).
        migrator.registerMigration("v2 transfers") { db in
            try db.execute(sql: """
                CREATE TABLE transfers (
                    request_id TEXT PRIMARY KEY NOT NULL,
                    kind TEXT NOT NULL CHECK (kind IN ('fund', 'withdraw')),
                    account INTEGER NOT NULL,
                    amount INTEGER NOT NULL CHECK (amount > 0));
                CREATE TRIGGER transfers_no_update BEFORE UPDATE ON transfers
                    BEGIN SELECT RAISE(ABORT, 'transfers are immutable'); END;
                CREATE TRIGGER transfers_no_delete BEFORE DELETE ON transfers
                    BEGIN SELECT RAISE(ABORT, 'transfers are immutable'); END;
                """)
        }
        return migrator
    }
}

/// Identifiers keep their bits; amounts must fit.
private func id(_ value: UInt64) -> Int64 { Int64(bitPattern: value) }
private func id(_ value: Int64) -> UInt64 { UInt64(bitPattern: value) }
private func amount(_ value: UInt64) throws -> Int64 {
    guard let v = Int64(exactly: value) else { throw BankError.amountTooLarge(value) }
    return v
}
private func amount(_ value: Int64) throws -> UInt64 {
    guard let v = UInt64(exactly: value) else { throw BankError.storage("negative amount \(value) in the ledger") }
    return v
}
private func fixed<T: FixedBytes>(_ data: Data, _ column: String) throws -> T {
    guard let value = T(data) else { throw BankError.storage("\(column) holds \(data.count) bytes") }
    return value
}

struct SQLiteLedgerTransaction: LedgerTransaction {
    let db: Database

    // Cached statements: each is compiled once per connection, not per call.
    private func exec(sql: String, arguments: StatementArguments = []) throws {
        try db.cachedStatement(sql: sql).execute(arguments: arguments)
    }
    private func fetchRow(sql: String, arguments: StatementArguments = []) throws -> Row? {
        try Row.fetchOne(db.cachedStatement(sql: sql), arguments: arguments)
    }
    private func fetchRows(sql: String, arguments: StatementArguments = []) throws -> [Row] {
        try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments)
    }
    private func fetchInt(sql: String, arguments: StatementArguments = []) throws -> Int64? {
        try Int64.fetchOne(db.cachedStatement(sql: sql), arguments: arguments)
    }
    private func fetchBool(sql: String, arguments: StatementArguments = []) throws -> Bool? {
        try Bool.fetchOne(db.cachedStatement(sql: sql), arguments: arguments)
    }

    private func meta(_ key: String) throws -> Int64? {
        try fetchInt(sql: "SELECT value FROM meta WHERE key = ?", arguments: [key])
    }

    private func setMeta(_ key: String, _ value: Int64) throws {
        try exec(sql: "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                       arguments: [key, value])
    }

    func bankID() throws -> UInt32? {
        try meta("bank_id").map { UInt32(truncatingIfNeeded: $0) }
    }

    func initialize(bankID: UInt32, firstSerial: UInt64, firstAccount: UInt64) throws {
        try setMeta("bank_id", Int64(bankID))
        try setMeta("next_serial", id(firstSerial))
        try setMeta("next_account", id(firstAccount))
        try setMeta("circulation", 0)
    }

    func masterKeyCheck() throws -> UInt64? { try meta("master_key_check").map(id) }
    func setMasterKeyCheck(_ check: UInt64) throws { try setMeta("master_key_check", id(check)) }

    func allocateSerial() throws -> UInt64 {
        guard let raw = try meta("next_serial") else { throw BankError.storage("ledger not initialised") }
        let serial = id(raw)
        guard serial < UInt64(Int64.max) else { throw BankError.serialsExhausted }
        try setMeta("next_serial", id(serial + 1))
        return serial
    }

    func nextAccountNumber() throws -> UInt64 {
        guard let raw = try meta("next_account") else { throw BankError.storage("ledger not initialised") }
        return id(raw)
    }

    func setNextAccountNumber(_ number: UInt64) throws { try setMeta("next_account", id(number)) }

    private func accountRecord(_ row: Row) throws -> AccountRecord {
        let roleText: String = row["role"]
        guard let role = AccountRole(rawValue: roleText) else { throw BankError.storage("role \(roleText)") }
        return AccountRecord(number: id(row["number"] as Int64), role: role, balance: try amount(row["balance"] as Int64))
    }

    func account(_ number: UInt64) throws -> AccountRecord? {
        try fetchRow(sql: "SELECT * FROM accounts WHERE number = ?", arguments: [id(number)]).map(accountRecord)
    }

    func insertAccount(_ number: UInt64, role: AccountRole) throws {
        try exec(sql: "INSERT INTO accounts (number, role, balance) VALUES (?, ?, 0)", arguments: [id(number), role.rawValue])
    }

    func accounts() throws -> [AccountRecord] {
        try fetchRows(sql: "SELECT * FROM accounts ORDER BY number").map(accountRecord)
    }

    func post(_ entry: JournalEntry) throws {
        let value = try amount(entry.amount)
        try db.execute(
            sql: "INSERT INTO journal (debit, credit, amount, kind, reference) VALUES (?, ?, ?, ?, ?)",
            arguments: [entry.debit.description, entry.credit.description, value, entry.kind.rawValue, entry.reference])
        for (side, sign) in [(entry.debit, Int64(-1)), (entry.credit, Int64(1))] {
            switch side {
            case .customer(let n), .merchant(let n):
                // The CHECK (balance >= 0) is the last line of defence; the bank checks first.
                try exec(sql: "UPDATE accounts SET balance = balance + ? WHERE number = ?",
                               arguments: [sign * value, id(n)])
                guard db.changesCount == 1 else { throw BankError.unknownAccount(n) }
            case .external, .escrow:
                break
            }
        }
    }

    func circulation() throws -> UInt64 { try amount(try meta("circulation") ?? 0) }
    func setCirculation(_ value: UInt64) throws { try setMeta("circulation", try amount(value)) }

    // The journal's sums run over its whole life: a ledger that has moved
    // more than Int64.max in all (each amount ≤ Int64.max) would overflow
    // SQLite's SUM, and the audit would fail for good. So each sum is taken
    // as two, of the amounts' high and low 32 bits, each exact below 2^31
    // lines, and put together here exactly: in 128 bits (LedgerSum) for the
    // lifetime totals, in an Int64 for the nets, which a balance bounds.

    /// Σ amount of the lines `filter` selects, grouped by `group` (an SQL
    /// expression over the journal's columns, or a constant), as the sums of
    /// the amounts' high and low 32 bits.
    private func sums(group: String, filter: String = "1", arguments: StatementArguments = []) throws
        -> [String: (high: Int64, low: Int64)] {
        var result: [String: (high: Int64, low: Int64)] = [:]
        let rows = try fetchRows(sql: """
            SELECT \(group) AS grp, SUM(amount >> 32) AS high, SUM(amount & 4294967295) AS low
            FROM journal WHERE \(filter) GROUP BY grp
            """, arguments: arguments)
        for row in rows { result[row["grp"]] = (row["high"], row["low"]) }
        return result
    }

    /// high · 2^32 + low, if it fits an Int64.
    private static func combine(high: Int64, low: Int64) -> Int64? {
        let (h, l) = high.multipliedFullWidth(by: 1 << 32)
        let (sumLow, carry) = l.addingReportingOverflow(UInt64(bitPattern: low))
        let sumHigh = h &+ (low < 0 ? -1 : 0) &+ (carry ? 1 : 0)
        let value = Int64(bitPattern: sumLow)
        return sumHigh == (value < 0 ? -1 : 0) ? value : nil
    }

    /// high · 2^32 + low for sums of non-negative halves, in 128 bits.
    private static func ledgerSum(_ sum: (high: Int64, low: Int64)?) -> LedgerSum {
        guard let sum else { return LedgerSum() }
        let (h, l) = UInt64(sum.high).multipliedFullWidth(by: 1 << 32)
        var total = LedgerSum(high: h, low: l)
        total.add(UInt64(sum.low))
        return total
    }

    func journalNet() throws -> [LedgerAccount: Int64] {
        let entered = try sums(group: "credit"), left = try sums(group: "debit")
        var net: [LedgerAccount: Int64] = [:]
        for text in Set(entered.keys).union(left.keys) {
            guard let account = LedgerAccount(text) else { throw BankError.storage("journal account \(text)") }
            let (inflow, outflow) = (entered[text] ?? (0, 0), left[text] ?? (0, 0))
            // Each half's difference is exact: both sums lie in 0..<2^63.
            guard let value = Self.combine(high: inflow.high - outflow.high, low: inflow.low - outflow.low) else {
                throw BankError.storage("journal net of \(text) beyond Int64")
            }
            net[account] = value
        }
        return net
    }

    func journalTotals() throws -> (funded: LedgerSum, withdrawn: LedgerSum) {
        let totals = try sums(group: "kind", filter: "kind IN ('fund', 'withdraw')")
        return (Self.ledgerSum(totals["fund"]), Self.ledgerSum(totals["withdraw"]))
    }

    func settledCredits(merchant: UInt64) throws -> LedgerSum {
        Self.ledgerSum(try sums(group: "'all'", filter: "kind = 'settle' AND credit = ?",
                                 arguments: [LedgerAccount.merchant(merchant).description])["all"])
    }

    private func ticketRecord(_ row: Row) throws -> TicketRecord {
        let stateText: String = row["state"]
        guard let state = TicketState(rawValue: stateText) else { throw BankError.storage("ticket state \(stateText)") }
        return TicketRecord(
            serial: id(row["serial"] as Int64), customer: id(row["customer"] as Int64),
            merchant: id(row["merchant"] as Int64), limit: try amount(row["limit_amount"] as Int64),
            unit: try amount(row["unit"] as Int64), chainLength: UInt32(truncatingIfNeeded: row["chain_len"] as Int64),
            chainID: try fixed(row["chain_id"], "chain_id"), root: try fixed(row["root"], "root"),
            issued: id(row["issued"] as Int64), expires: id(row["expires"] as Int64), state: state,
            settledPosition: id(row["settled_position"] as Int64), settledWord: try fixed(row["settled_word"], "settled_word"),
            settledAmount: try amount(row["settled_amount"] as Int64))
    }

    func ticket(_ serial: UInt64) throws -> TicketRecord? {
        try fetchRow(sql: "SELECT * FROM tickets WHERE serial = ?", arguments: [id(serial)]).map(ticketRecord)
    }

    func insertTicket(_ t: TicketRecord) throws {
        try exec(sql: """
            INSERT INTO tickets (serial, customer, merchant, limit_amount, unit, chain_len, chain_id, root,
                                 issued, expires, state, settled_position, settled_word, settled_amount)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: [
                id(t.serial), id(t.customer), id(t.merchant), try amount(t.limit), try amount(t.unit), Int64(t.chainLength),
                Data(t.chainID.bytes), Data(t.root.bytes), id(t.issued), id(t.expires), t.state.rawValue,
                id(t.settledPosition), Data(t.settledWord.bytes), try amount(t.settledAmount),
            ])
    }

    func updateTicket(_ t: TicketRecord) throws {
        // Only the moving parts: what a ticket was issued with never changes.
        try exec(sql: """
            UPDATE tickets SET state = ?, settled_position = ?, settled_word = ?, settled_amount = ? WHERE serial = ?
            """, arguments: [t.state.rawValue, id(t.settledPosition), Data(t.settledWord.bytes), try amount(t.settledAmount), id(t.serial)])
        guard db.changesCount == 1 else { throw BankError.storage("no ticket \(t.serial) to update") }
    }

    func tickets() throws -> [TicketRecord] {
        try fetchRows(sql: "SELECT * FROM tickets ORDER BY serial").map(ticketRecord)
    }

    func openTickets(expiringBefore bound: UInt64) throws -> [TicketRecord] {
        // expires ≤ Int64.max by construction: a larger bound takes all, even
        // a ticket expiring at Int64.max itself.
        guard let limit = Int64(exactly: bound) else {
            return try fetchRows(sql: "SELECT * FROM tickets WHERE state = 'open' ORDER BY serial").map(ticketRecord)
        }
        return try fetchRows(sql: "SELECT * FROM tickets WHERE state = 'open' AND expires < ? ORDER BY serial",
                                arguments: [limit]).map(ticketRecord)
    }

    func chainRootUsed(_ root: Bytes32) throws -> Bool {
        try fetchBool(sql: "SELECT EXISTS (SELECT 1 FROM tickets WHERE chain_len > 0 AND root = ?)",
                          arguments: [Data(root.bytes)]) ?? false
    }

    func storedIssue(customer: UInt64, requestID: Bytes16) throws -> StoredIssue? {
        guard let row = try fetchRow(sql: "SELECT * FROM issues WHERE customer = ? AND request_id = ?",
                                         arguments: [id(customer), Data(requestID.bytes)]) else { return nil }
        return StoredIssue(request: [UInt8](row["request"] as Data), serial: id(row["serial"] as Int64),
                           envelope: [UInt8](row["envelope"] as Data), ticket: [UInt8](row["ticket"] as Data))
    }

    func insertIssue(customer: UInt64, requestID: Bytes16, _ issue: StoredIssue) throws {
        try exec(sql: "INSERT INTO issues (customer, request_id, request, serial, envelope, ticket) VALUES (?, ?, ?, ?, ?, ?)",
                       arguments: [id(customer), Data(requestID.bytes), Data(issue.request), id(issue.serial),
                                   Data(issue.envelope), Data(issue.ticket)])
    }

    private func receiptRecord(_ row: Row) throws -> StoredReceipt {
        StoredReceipt(merchant: id(row["merchant"] as Int64), batchID: id(row["batch_id"] as Int64),
                      depositSHA256: try fixed(row["deposit_sha256"], "deposit_sha256"),
                      receipt: [UInt8](row["receipt"] as Data), credited: try amount(row["credited"] as Int64))
    }

    func storedReceipt(merchant: UInt64, batchID: UInt64) throws -> StoredReceipt? {
        try fetchRow(sql: "SELECT * FROM receipts WHERE merchant = ? AND batch_id = ?",
                         arguments: [id(merchant), id(batchID)]).map(receiptRecord)
    }

    func insertReceipt(_ r: StoredReceipt) throws {
        try exec(sql: "INSERT INTO receipts (merchant, batch_id, deposit_sha256, receipt, credited) VALUES (?, ?, ?, ?, ?)",
                       arguments: [id(r.merchant), id(r.batchID), Data(r.depositSHA256.bytes), Data(r.receipt), try amount(r.credited)])
    }

    func receipts(merchant: UInt64) throws -> [StoredReceipt] {
        try fetchRows(sql: "SELECT * FROM receipts WHERE merchant = ? ORDER BY batch_id", arguments: [id(merchant)])
            .map(receiptRecord)
    }

    func transfer(requestID: String) throws -> TransferRecord? {
        guard let row = try fetchRow(sql: "SELECT * FROM transfers WHERE request_id = ?", arguments: [requestID]) else {
            return nil
        }
        let kind: String = row["kind"]
        guard let known = TransferRecord.Kind(rawValue: kind) else { throw BankError.storage("transfer kind \(kind)") }
        return TransferRecord(requestID: requestID, kind: known, account: id(row["account"] as Int64),
                              amount: try amount(row["amount"] as Int64))
    }

    func insertTransfer(_ t: TransferRecord) throws {
        try exec(sql: "INSERT INTO transfers (request_id, kind, account, amount) VALUES (?, ?, ?, ?)",
                 arguments: [t.requestID, t.kind.rawValue, id(t.account), try amount(t.amount)])
    }
}
