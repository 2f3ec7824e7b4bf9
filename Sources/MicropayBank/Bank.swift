import Foundation
import MicropayCore

/// An account as handed to its owner: the number and the key it shares with the bank.
public struct OpenedAccount: Sendable {
    public let number: UInt64
    public let role: AccountRole
    /// K_C or K_M; the bank re-derives it and stores none.
    public let key: SecretKey
}

/// The bank's answer to a TicketRequest (§5.4).
public struct IssuedTicket: Sendable, Equatable {
    public let serial: UInt64
    /// For the customer, under enc(K_C).
    public let envelope: Envelope
    /// For the merchant, under enc(K_M).
    public let ticket: Ticket
    /// True when this is the stored reply to a retried request (§5.5): nothing was debited.
    public let isRetry: Bool
}

/// What `audit()` found. `problems` is empty when the ledger is consistent.
public struct AuditReport: Sendable, Equatable {
    public var customerTotal: UInt64 = 0
    public var merchantTotal: UInt64 = 0
    /// Open and disputed escrow.
    public var escrowTotal: UInt64 = 0
    /// Σ funding (the protocol's "deposits" of money into the bank), from the
    /// journal; it and `withdrawn` show at most UInt64.max (the audit's
    /// checks use the exact sums).
    public var funded: UInt64 = 0
    public var withdrawn: UInt64 = 0
    /// Serials whose escrow is frozen by a dispute (§9.4).
    public var disputed: [UInt64] = []
    public var problems: [String] = []

    public var isConsistent: Bool { problems.isEmpty }
}

/// The bank of PROTOCOL.md: accounts, ticket issue (§5), settlement (§9),
/// refunds and the audit of the invariant (§9.7), over a `LedgerStore`.
///
/// Every money movement runs in one ledger transaction together with the
/// journal lines and the reply it produces, so a crash leaves either all of
/// an operation or none of it.
public final class Bank: Sendable {
    public let bankID: UInt32
    public let policy: BankPolicy
    public let store: any LedgerStore
    private let master: SecretKey
    /// Where ticket and envelope nonces come from: scripted in known-answer tests.
    private let random: any RandomSource

    /// Opens the bank over `store`, initialising a new ledger with `firstSerial`
    /// and `firstAccount` (both ignored for a ledger that already exists).
    public init(
        store: any LedgerStore, master: SecretKey, bankID: UInt32, policy: BankPolicy = BankPolicy(),
        random: any RandomSource = SystemRandom(), firstSerial: UInt64 = 1, firstAccount: UInt64 = 1
    ) throws(BankError) {
        self.store = store
        self.master = master
        self.bankID = bankID
        self.policy = policy
        self.random = random
        guard firstSerial <= UInt64(Int64.max) else { throw .serialsExhausted }
        let check = KeyDerivation.masterKeyCheck(master: master)
        // A ledger already set up for this bank and key needs no write (and
        // waits for no writer); a new one is set up, and one from before the
        // key's check value was kept takes this key's.
        let ready = try Self.run {
            try store.read { tx in
                try Self.recognise(tx, bankID: bankID, check: check)
            }
        }
        guard !ready else { return }
        try Self.run {
            try store.write { tx in
                if try Self.recognise(tx, bankID: bankID, check: check) { return }
                if try tx.bankID() == nil {
                    try tx.initialize(bankID: bankID, firstSerial: firstSerial, firstAccount: firstAccount)
                }
                try tx.setMasterKeyCheck(check)
            }
        }
    }

    /// Whether the ledger is set up for `bankID` and the key whose check value
    /// is `check`; false if it is not set up yet or has no check value.
    /// Throws if it belongs to another bank or another key.
    private static func recognise(_ tx: any LedgerTransaction, bankID: UInt32, check: UInt64) throws -> Bool {
        guard let stored = try tx.bankID() else { return false }
        guard stored == bankID else { throw BankError.ledgerBankMismatch(stored: stored, expected: bankID) }
        guard let storedCheck = try tx.masterKeyCheck() else { return false }
        guard storedCheck == check else { throw BankError.masterKeyMismatch }
        return true
    }

    /// The usual set-up: a durable SQLite ledger at `ledgerPath` and the master
    /// key file at `masterKeyPath`, created with a new ledger. For a ledger that
    /// exists, the key must be there already and be the ledger's own.
    public static func open(
        ledgerPath: String, masterKeyPath: String, bankID: UInt32, policy: BankPolicy = BankPolicy(),
        durability: SQLiteLedgerStore.Durability = .full, random: any RandomSource = SystemRandom(),
        firstSerial: UInt64 = 1, firstAccount: UInt64 = 1
    ) throws(BankError) -> Bank {
        let store = try run { try SQLiteLedgerStore(path: ledgerPath, durability: durability) }
        let exists = try run { try store.read { try $0.bankID() } } != nil
        let master: SecretKey
        if exists {
            guard let key = try MasterKeyFile.load(path: masterKeyPath) else { throw .masterKeyMissing(path: masterKeyPath) }
            master = key
        } else {
            master = try MasterKeyFile.loadOrCreate(path: masterKeyPath)
        }
        return try Bank(store: store, master: master, bankID: bankID, policy: policy, random: random,
                        firstSerial: firstSerial, firstAccount: firstAccount)
    }

    // MARK: - Keys

    private func customerKey(_ number: UInt64) -> SecretKey {
        KeyDerivation.accountKey(master: master, role: .customer, bankID: bankID, account: number)
    }

    private func merchantKey(_ number: UInt64) -> SecretKey {
        KeyDerivation.accountKey(master: master, role: .merchant, bankID: bankID, account: number)
    }

    /// Re-derives the key of an existing account (e.g. to hand it over again).
    public func accountKey(_ number: UInt64) throws(BankError) -> SecretKey {
        guard let record = try account(number) else { throw .unknownAccount(number) }
        return record.role == .customer ? customerKey(number) : merchantKey(number)
    }

    // MARK: - Accounts and money

    public func openCustomer(number: UInt64? = nil) throws(BankError) -> OpenedAccount {
        try openAccount(.customer, number: number)
    }

    public func openMerchant(number: UInt64? = nil) throws(BankError) -> OpenedAccount {
        try openAccount(.merchant, number: number)
    }

    /// Opens `number`, or the lowest free number at or above the ledger's counter.
    public func openAccount(_ role: AccountRole, number: UInt64? = nil) throws(BankError) -> OpenedAccount {
        let opened = try Self.run {
            try store.write { tx -> UInt64 in
                if let number {
                    guard try tx.account(number) == nil else { throw BankError.accountExists(number) }
                    try tx.insertAccount(number, role: role)
                    return number
                }
                var candidate = try tx.nextAccountNumber()
                while try tx.account(candidate) != nil {
                    guard candidate < UInt64.max else { throw BankError.accountExists(candidate) }
                    candidate += 1
                }
                try tx.insertAccount(candidate, role: role)
                try tx.setNextAccountNumber(candidate &+ 1)
                return candidate
            }
        }
        return OpenedAccount(number: opened, role: role, key: role == .customer ? customerKey(opened) : merchantKey(opened))
    }

    /// Money comes in from outside: external → customer.
    ///
    /// With a `requestID` (the caller's own, unique per transfer) the money
    /// moves once however often the call is repeated: a retry of a call whose
    /// reply was lost returns `.alreadyDone`, and the id with another account
    /// or amount is refused (`transferIDReused`).
    @discardableResult
    public func fund(customer: UInt64, amount: UInt64, requestID: String? = nil) throws(BankError) -> TransferOutcome {
        try Self.checkAmount(amount)
        let record = try Self.transferRecord(requestID, .fund, account: customer, amount: amount)
        return try Self.run {
            try store.write { tx in
                if let record, try Self.alreadyDone(record, tx) { return .alreadyDone }
                try Self.requireAccount(tx, customer, role: .customer)
                let circulation = try tx.circulation()
                guard circulation <= UInt64(Int64.max) - amount else { throw BankError.amountOverflow }
                try tx.post(JournalEntry(debit: .external, credit: .customer(customer), amount: amount, kind: .fund,
                                         reference: Self.reference("fund \(customer)", record)))
                try tx.setCirculation(circulation + amount)
                return .moved
            }
        }
    }

    /// Money goes out from a customer's or a merchant's balance, never below
    /// zero. A `requestID` makes it happen once, as for `fund`.
    @discardableResult
    public func withdraw(account number: UInt64, amount: UInt64, requestID: String? = nil) throws(BankError) -> TransferOutcome {
        try Self.checkAmount(amount)
        let record = try Self.transferRecord(requestID, .withdraw, account: number, amount: amount)
        return try Self.run {
            try store.write { tx in
                if let record, try Self.alreadyDone(record, tx) { return .alreadyDone }
                guard let account = try tx.account(number) else { throw BankError.unknownAccount(number) }
                guard account.balance >= amount else {
                    throw BankError.insufficientFunds(account: number, balance: account.balance, needed: amount)
                }
                let side: LedgerAccount = account.role == .customer ? .customer(number) : .merchant(number)
                try tx.post(JournalEntry(debit: side, credit: .external, amount: amount, kind: .withdraw,
                                         reference: Self.reference("withdraw \(number)", record)))
                try tx.setCirculation(try tx.circulation() - amount)
                return .moved
            }
        }
    }

    /// What a fund or withdrawal did.
    public enum TransferOutcome: Sendable, Equatable {
        /// The money moved now.
        case moved
        /// Its request id had already moved this very transfer: nothing moved again.
        case alreadyDone
    }

    /// The record a transfer under `requestID` leaves; nil without one.
    private static func transferRecord(_ requestID: String?, _ kind: TransferRecord.Kind, account: UInt64,
                                       amount: UInt64) throws(BankError) -> TransferRecord? {
        guard let requestID else { return nil }
        // Printable ASCII only: two ids that look alike are the same bytes.
        let valid = (1...64).contains(requestID.utf8.count) && requestID.utf8.allSatisfy { (0x21...0x7e).contains($0) }
        guard valid else { throw .badTransferID(requestID) }
        return TransferRecord(requestID: requestID, kind: kind, account: account, amount: amount)
    }

    /// Whether `record`'s request id has moved this transfer already; if the id
    /// is new, records it in this transaction, so it commits with the money.
    private static func alreadyDone(_ record: TransferRecord, _ tx: any LedgerTransaction) throws -> Bool {
        guard let earlier = try tx.transfer(requestID: record.requestID) else {
            try tx.insertTransfer(record)
            return false
        }
        guard earlier == record else { throw BankError.transferIDReused(earlier: earlier) }
        return true
    }

    private static func reference(_ base: String, _ record: TransferRecord?) -> String {
        record.map { "\(base) request \($0.requestID)" } ?? base
    }

    public func account(_ number: UInt64) throws(BankError) -> AccountRecord? {
        try Self.run { try store.read { tx in try tx.account(number) } }
    }

    /// The balance of a customer or merchant account.
    public func balance(of number: UInt64) throws(BankError) -> UInt64 {
        guard let record = try account(number) else { throw .unknownAccount(number) }
        return record.balance
    }

    public func ticket(serial: UInt64) throws(BankError) -> TicketRecord? {
        try Self.run { try store.read { tx in try tx.ticket(serial) } }
    }

    public func receipts(merchant: UInt64) throws(BankError) -> [StoredReceipt] {
        try Self.run { try store.read { tx in try tx.receipts(merchant: merchant) } }
    }

    // MARK: - Issuing tickets (§5)

    /// Judges a TicketRequest and issues its ticket.
    ///
    /// Check order: decoding; (1) the tag under mac(K_C); the header's bank and
    /// that the customer is an open customer account; then the request_id
    /// (§5.5) — a retry returns the stored reply here, before the checks that
    /// its own first issue made fail (the root is now known, the balance
    /// debited); then (2) merchant, (3) mode rules and the policy's maxLimit,
    /// (4) lifetime, (5) root never used, (6) balance covers the limit. The
    /// request_id check sits after the tag so that nobody without K_C can
    /// learn which request_ids a customer has used.
    public func issue(request bytes: [UInt8], now: UInt64) throws(BankError) -> IssuedTicket {
        let request: TicketRequest
        do { request = try TicketRequest(decoding: bytes) } catch { throw .malformed(error) }
        let customerKey = customerKey(request.customer)
        guard request.hasValidTag(customerMAC: MACKey(macOf: customerKey)) else { throw .badRequestTag }
        guard request.bankID == bankID else { throw .wrongBank(request.bankID) }

        return try Self.run {
            try store.write { tx -> IssuedTicket in
                guard let customer = try tx.account(request.customer), customer.role == .customer else {
                    throw BankError.unknownCustomer(request.customer)
                }
                if let stored = try tx.storedIssue(customer: request.customer, requestID: request.requestID) {
                    guard stored.request == request.bytes else { throw BankError.requestIDReused(request.requestID) }
                    return IssuedTicket(serial: stored.serial, envelope: try Envelope(decoding: stored.envelope),
                                        ticket: try Ticket(decoding: stored.ticket), isRetry: true)
                }
                guard let merchant = try tx.account(request.merchant), merchant.role == .merchant else {
                    throw BankError.unknownMerchant(request.merchant)
                }
                try checkMode(request)
                guard request.lifetime >= 1, request.lifetime <= policy.maxLifetime else {
                    throw BankError.lifetimeOutOfRange(request.lifetime, max: policy.maxLifetime)
                }
                let (expires, overflow) = now.addingReportingOverflow(UInt64(request.lifetime))
                guard !overflow, expires <= UInt64(Int64.max) else { throw BankError.clockOutOfRange(now) }
                if request.chainLength > 0, try tx.chainRootUsed(request.root) { throw BankError.rootReused }
                guard customer.balance >= request.limit else {
                    throw BankError.insufficientFunds(account: customer.number, balance: customer.balance, needed: request.limit)
                }

                let serial = try tx.allocateSerial()
                let sessionKey = KeyDerivation.sessionKey(master: master, bankID: bankID, serial: serial)
                // The vectors were made with the ticket's nonce drawn first.
                let ticketNonce: Bytes24 = random.bytes()
                let envelopeNonce: Bytes24 = random.bytes()
                let ticket = Ticket.seal(
                    body: TicketBody(customer: request.customer, limit: request.limit, unit: request.unit,
                                     chainLength: request.chainLength, chainID: request.chainID, issued: now,
                                     expires: expires, root: request.root, sessionKey: sessionKey),
                    bankID: bankID, serial: serial, merchant: request.merchant,
                    merchantKey: merchantKey(request.merchant), nonce: ticketNonce)
                let envelope = Envelope.seal(
                    body: EnvelopeBody(merchant: request.merchant, limit: request.limit, unit: request.unit,
                                       chainLength: request.chainLength, chainID: request.chainID, issued: now,
                                       expires: expires, sessionKey: sessionKey, requestID: request.requestID),
                    bankID: bankID, serial: serial, customer: request.customer,
                    customerKey: customerKey, nonce: envelopeNonce)

                try tx.insertTicket(TicketRecord(
                    serial: serial, customer: request.customer, merchant: request.merchant, limit: request.limit,
                    unit: request.unit, chainLength: request.chainLength, chainID: request.chainID,
                    root: request.root, issued: now, expires: expires))
                try tx.post(JournalEntry(debit: .customer(request.customer), credit: .escrow(serial: serial),
                                         amount: request.limit, kind: .issue, reference: "serial \(serial)"))
                try tx.insertIssue(customer: request.customer, requestID: request.requestID,
                                   StoredIssue(request: request.bytes, serial: serial,
                                               envelope: envelope.bytes, ticket: ticket.bytes))
                return IssuedTicket(serial: serial, envelope: envelope, ticket: ticket, isRetry: false)
            }
        }
    }

    /// §5.1's mode rules, then the policy's cap on `limit`.
    private func checkMode(_ r: TicketRequest) throws(BankError) {
        if r.chainLength == 0 {
            guard r.unit == 0, r.root.isZero, r.chainID.isZero else { throw .modeRule(.orderFieldsNotZero) }
            guard r.limit >= 1 else { throw .modeRule(.zeroLimit) }
        } else {
            guard r.chainLength <= min(HashChain.maxLength, policy.maxChainLength) else {
                throw .modeRule(.chainLengthOutOfRange(r.chainLength))
            }
            guard r.unit >= 1 else { throw .modeRule(.zeroUnit) }
            let (product, overflow) = UInt64(r.chainLength).multipliedReportingOverflow(by: r.unit)
            guard !overflow else { throw .modeRule(.limitOverflow) }
            guard r.limit == product else { throw .modeRule(.limitNotChainTimesUnit(limit: r.limit, expected: product)) }
        }
        guard r.limit <= policy.maxLimit else { throw .limitAbovePolicy(limit: r.limit, max: policy.maxLimit) }
    }

    // MARK: - Settlement (§9)

    /// Admits a Deposit (§9.2), judges its claims in order (§9.3) and returns
    /// the Receipt (§9.6). The judging, the credits, the settled positions and
    /// the stored Receipt commit in one transaction; a refused Deposit changes
    /// nothing and leaves its batch id unused. The batch id check comes after
    /// admission: an unauthenticated Deposit learns nothing about stored Receipts.
    /// A claim on a disputed ticket gets `expired`, like one on a refunded
    /// ticket: §9.4 freezes that escrow, so nothing more is paid from it.
    ///
    /// The claims are judged in a read transaction, which holds no lock: a
    /// chain claim can walk 65 536 hashes, and a Deposit of many such claims
    /// must not stall every other operation of the bank. The write
    /// transaction then commits that judgement if none of the tickets it read
    /// has changed since. If one has, the write commits nothing and the claims
    /// are judged again, outside the lock as before, after a random pause,
    /// up to `settleAttempts` times; then the Deposit is refused as
    /// contended (`settlementContended`), and sending it again later settles
    /// it. Judging under the lock instead would let a merchant stall the bank
    /// at will by settling one of its tickets while a costly Deposit is being
    /// judged. The checks of the Deposit's bytes (tag, layout, digest) run
    /// once; each transaction checks again what the ledger holds (the
    /// merchant's account, a Receipt already given).
    public func settle(deposit bytes: [UInt8], now: UInt64) throws(BankError) -> Receipt {
        guard bytes.count >= Deposit.minimumByteCount, bytes[0] == WireKind.deposit.rawValue else {
            throw Self.malformedDeposit(bytes)
        }
        let merchant = Self.u64(bytes, at: 16)
        var admitted: Admitted?
        for attempt in 0..<Self.settleAttempts {
            if attempt > 0 {
                // Back off a random while, longer each time, so that two
                // settles of the same tickets stop meeting in lockstep.
                usleep(UInt32.random(in: 0...(1000 << attempt)))
            }
            let planned = try Self.run {
                try store.read { tx -> Settlement in
                    switch try admit(bytes, merchant: merchant, tx: tx, checked: admitted) {
                    case .answered(let receipt): return .answered(receipt)
                    case .new(let checked):
                        admitted = checked
                        return .judged(try judge(checked.deposit, merchant: merchant, now: now, tx: tx))
                    }
                }
            }
            let judgement: Judgement
            switch planned {
            case .answered(let receipt): return receipt
            case .judged(let judged): judgement = judged
            }
            let committed = try Self.run {
                try store.write { tx -> Receipt? in
                    switch try admit(bytes, merchant: merchant, tx: tx, checked: admitted) {
                    case .answered(let receipt):
                        return receipt // settled meanwhile by another call
                    case .new(let checked):
                        guard try judgement.stillHolds(tx) else { return nil }
                        return try commit(judgement, of: checked, merchant: merchant, tx: tx)
                    }
                }
            }
            if let committed { return committed }
        }
        throw .settlementContended(attempts: Self.settleAttempts)
    }

    /// How many times settle judges a Deposit whose tickets keep changing.
    public static let settleAttempts = 8

    /// Writes a judgement: the journal's credits in claim order, the tickets,
    /// and the Receipt.
    private func commit(_ judgement: Judgement, of admitted: Admitted, merchant: UInt64,
                        tx: any LedgerTransaction) throws -> Receipt {
        let deposit = admitted.deposit
        for (serial, credit) in judgement.credits {
            try tx.post(JournalEntry(debit: .escrow(serial: serial), credit: .merchant(merchant),
                                     amount: credit, kind: .settle,
                                     reference: "batch \(deposit.batchID) serial \(serial)"))
        }
        for ticket in judgement.changed.values { try tx.updateTicket(ticket) }
        let receipt = Receipt.make(answering: deposit, codes: judgement.codes, credited: judgement.credited,
                                   merchantMAC: admitted.merchantMAC)
        try tx.insertReceipt(StoredReceipt(merchant: merchant, batchID: deposit.batchID, depositSHA256: admitted.sha256,
                                           receipt: receipt.bytes, credited: judgement.credited))
        return receipt
    }

    /// A Deposit whose bytes passed §9.2's checks.
    private struct Admitted {
        let deposit: Deposit
        let sha256: Bytes32
        let merchantMAC: MACKey
    }

    private enum Admission {
        /// The merchant already has this Deposit's Receipt.
        case answered(Receipt)
        case new(Admitted)
    }

    private enum Settlement {
        case answered(Receipt)
        case judged(Judgement)
    }

    /// §9.2's admission of a Deposit, in its order, and the lookup of a
    /// Receipt already given for it. The checks of the bytes alone (2 to 5)
    /// are skipped when `checked` holds their result from an earlier call.
    private func admit(_ bytes: [UInt8], merchant: UInt64, tx: any LedgerTransaction,
                       checked: Admitted?) throws -> Admission {
        // 1. An open merchant of this bank.
        guard let account = try tx.account(merchant), account.role == .merchant else {
            throw BankError.unknownMerchant(merchant)
        }
        let admitted = try checked ?? checkBytes(bytes, merchant: merchant)
        if let stored = try tx.storedReceipt(merchant: merchant, batchID: admitted.deposit.batchID) {
            guard stored.depositSHA256 == admitted.sha256 else {
                throw BankError.batchReused(merchant: merchant, batchID: admitted.deposit.batchID)
            }
            return .answered(try Receipt(decoding: stored.receipt))
        }
        return .new(admitted)
    }

    /// §9.2's checks 2 to 5, on the Deposit's bytes alone.
    private func checkBytes(_ bytes: [UInt8], merchant: UInt64) throws -> Admitted {
        // 2. The tag, over the raw bytes: it is checked before the layout.
        let merchantMAC = MACKey(macOf: merchantKey(merchant))
        let tagOffset = bytes.count - 16
        let tagValid = bytes.withUnsafeBytes { raw in
            merchantMAC.verify(label: .deposit, UnsafeRawBufferPointer(rebasing: raw[..<tagOffset]),
                               tag: Bytes16(raw[tagOffset...]) ?? Bytes16())
        }
        guard tagValid else { throw BankError.badDepositTag }
        // 3. Our bank.
        let headerBank = UInt32(truncatingIfNeeded: Self.u64(bytes, at: 0) & 0xFFFF_FFFF)
        guard headerBank == bankID else { throw BankError.wrongBank(headerBank) }
        // 4. and 5. The zero field, then the claims' layout.
        if let offset = (28..<32).first(where: { bytes[$0] != 0 }) {
            throw BankError.malformed(.nonZeroField(.deposit, offset: offset))
        }
        let deposit: Deposit
        do throws(MicropayError) { deposit = try Deposit(decoding: bytes) } catch { throw BankError.malformed(error) }
        return Admitted(deposit: deposit, sha256: Engine.sha256(bytes), merchantMAC: merchantMAC)
    }

    /// A Deposit's claims judged on the ledger as one transaction saw it.
    private struct Judgement {
        var codes: [Verdict] = []
        /// Each accepted claim's credit, in claim order.
        var credits: [(serial: UInt64, credit: UInt64)] = []
        var credited: UInt64 = 0
        /// Tickets whose settled position or state the claims changed.
        var changed: [UInt64: TicketRecord] = [:]
        /// Every ticket the judging read, as it read it (nil: no such serial).
        var read: [UInt64: TicketRecord?] = [:]

        /// Whether `tx` still holds every ticket as the judging read it.
        func stillHolds(_ tx: any LedgerTransaction) throws -> Bool {
            for (serial, record) in read where try tx.ticket(serial) != record { return false }
            return true
        }
    }

    private func judge(_ deposit: Deposit, merchant: UInt64, now: UInt64, tx: any LedgerTransaction) throws -> Judgement {
        var judge = ClaimJudge(bank: self, merchant: merchant, now: now, tx: tx)
        var judgement = Judgement()
        judgement.codes.reserveCapacity(deposit.claims.count)
        for claim in deposit.claims {
            let (code, credit) = try judge.judge(claim)
            judgement.codes.append(code)
            guard credit > 0 else { continue }
            let (sum, overflow) = judgement.credited.addingReportingOverflow(credit)
            guard !overflow else { throw BankError.amountOverflow }
            judgement.credited = sum
            judgement.credits.append((claim.serial, credit))
        }
        judgement.changed = judge.changed
        judgement.read = judge.read
        return judgement
    }

    /// The verdicts of §9.3, each claim seeing what the earlier ones settled.
    private struct ClaimJudge {
        let bank: Bank
        let merchant: UInt64
        let now: UInt64
        let tx: any LedgerTransaction
        /// Tickets whose settled position or state this Deposit changed.
        var changed: [UInt64: TicketRecord] = [:]
        /// Every ticket read from `tx`, as read (nil: no such serial).
        var read: [UInt64: TicketRecord?] = [:]

        init(bank: Bank, merchant: UInt64, now: UInt64, tx: any LedgerTransaction) {
            self.bank = bank
            self.merchant = merchant
            self.now = now
            self.tx = tx
        }

        /// The ticket as the ledger holds it, read once.
        mutating func stored(_ serial: UInt64) throws -> TicketRecord? {
            if let record = read[serial] { return record }
            let record = try tx.ticket(serial)
            read[serial] = .some(record)
            return record
        }

        mutating func judge(_ claim: Deposit.Claim) throws -> (Verdict, UInt64) {
            guard claim.bankID == bank.bankID,
                  var ticket = try changed[claim.serial] ?? stored(claim.serial),
                  ticket.merchant == merchant else { return (.unknownTicket, 0) }
            // Past expires + grace (saturating: no overflow), or closed: refunded, or frozen by a dispute.
            let (deadline, overflow) = ticket.expires.addingReportingOverflow(bank.policy.grace)
            if (!overflow && now > deadline) || ticket.state != .open { return (.expired, 0) }

            let newAmount: UInt64
            switch claim {
            case .chain(let payment):
                guard ticket.isChainMode else { return (.wrongMode, 0) }
                guard UInt64(payment.index) > ticket.settledPosition else { return (.replay, 0) }
                guard payment.index <= ticket.chainLength else { return (.overLimit, 0) }
                // settledPosition < index ≤ chain_len, so it fits a u32.
                let settled = UInt32(truncatingIfNeeded: ticket.settledPosition)
                let down = HashChain.walk(chainID: ticket.chainID, from: payment.index, word: payment.word, to: settled)
                guard down.constantTimeEquals(ticket.settledWord) else { return (.badChainWord, 0) }
                // index ≤ chain_len and limit = chain_len × unit: no overflow.
                newAmount = UInt64(payment.index) * ticket.unit
                ticket.settledPosition = UInt64(payment.index)
                ticket.settledWord = payment.word
            case .order(let order):
                guard !ticket.isChainMode else { return (.wrongMode, 0) }
                let sessionKey = KeyDerivation.sessionKey(master: bank.master, bankID: bank.bankID, serial: ticket.serial)
                guard order.hasValidTag(sessionMAC: MACKey(macOf: sessionKey)) else { return (.badMAC, 0) }
                guard order.hasValidBankTag(customerMAC: MACKey(macOf: bank.customerKey(ticket.customer))) else {
                    // §9.4: a right tag over a wrong bank_tag freezes the escrow.
                    ticket.state = .disputed
                    changed[ticket.serial] = ticket
                    return (.badMAC, 0)
                }
                guard UInt64(order.seq) > ticket.settledPosition else { return (.replay, 0) }
                guard order.cumulative >= ticket.settledAmount else { return (.decreasingAmount, 0) }
                guard order.cumulative <= ticket.limit else { return (.overLimit, 0) }
                newAmount = order.cumulative
                ticket.settledPosition = UInt64(order.seq)
            }
            let credit = newAmount - ticket.settledAmount
            ticket.settledAmount = newAmount
            changed[ticket.serial] = ticket
            return (.accepted, credit)
        }
    }

    // MARK: - Refunds (§9.5)

    /// Closes every open, undisputed ticket with `now > expires + grace` and
    /// returns `limit − settled` to its customer. Returns the amount per
    /// serial closed (0 for a fully claimed ticket).
    public func refundExpired(now: UInt64) throws(BankError) -> [UInt64: UInt64] {
        // now > expires + grace ⇔ expires < now − grace.
        guard now > policy.grace else { return [:] }
        let bound = now - policy.grace
        return try Self.run {
            try store.write { tx in
                var refunded: [UInt64: UInt64] = [:]
                for var ticket in try tx.openTickets(expiringBefore: bound) {
                    let amount = ticket.limit - ticket.settledAmount
                    if amount > 0 {
                        try tx.post(JournalEntry(debit: .escrow(serial: ticket.serial), credit: .customer(ticket.customer),
                                                 amount: amount, kind: .refund, reference: "serial \(ticket.serial)"))
                    }
                    ticket.state = .refunded
                    try tx.updateTicket(ticket)
                    refunded[ticket.serial] = amount
                }
                return refunded
            }
        }
    }

    // MARK: - Disputes (§9.4)

    /// The operator's ruling on a disputed ticket, whose escrow §9.4 freezes
    /// until then: `payMerchant` of it goes to the ticket's merchant, the
    /// rest back to its customer, and the ticket is closed. In one
    /// transaction, as journal lines of kind `ruling`. Returns the amounts
    /// paid to the merchant and to the customer.
    public func resolveDispute(serial: UInt64, payMerchant: UInt64) throws(BankError) -> (merchant: UInt64, customer: UInt64) {
        try Self.run {
            try store.write { tx in
                guard var ticket = try tx.ticket(serial) else { throw BankError.unknownTicket(serial) }
                guard ticket.state == .disputed else { throw BankError.notDisputed(serial) }
                let escrow = ticket.escrow
                guard payMerchant <= escrow else { throw BankError.rulingAboveEscrow(amount: payMerchant, escrow: escrow) }
                let toCustomer = escrow - payMerchant
                let reference = "ruling serial \(serial)"
                if payMerchant > 0 {
                    try tx.post(JournalEntry(debit: .escrow(serial: serial), credit: .merchant(ticket.merchant),
                                             amount: payMerchant, kind: .ruling, reference: reference))
                }
                if toCustomer > 0 {
                    try tx.post(JournalEntry(debit: .escrow(serial: serial), credit: .customer(ticket.customer),
                                             amount: toCustomer, kind: .ruling, reference: reference))
                }
                // settled ≤ limit holds: payMerchant ≤ escrow = limit − settled.
                ticket.settledAmount += payMerchant
                ticket.state = .refunded
                try tx.updateTicket(ticket)
                return (payMerchant, toCustomer)
            }
        }
    }

    // MARK: - Audit (§9.7)

    /// Checks, in one read transaction: Σ customer balances + Σ open and
    /// disputed escrow + Σ merchant balances = funded − withdrawn; that the
    /// journal reproduces every balance and every escrow; that each merchant's
    /// settle credits equal the credited totals of its stored Receipts.
    public func audit() throws(BankError) -> AuditReport {
        try Self.run {
            try store.read { tx in
                var report = AuditReport()
                func add(_ total: inout UInt64, _ value: UInt64, _ what: String) {
                    let (sum, overflow) = total.addingReportingOverflow(value)
                    if overflow { report.problems.append("\(what) overflows") }
                    total = sum
                }
                let net = try tx.journalNet()
                var seen: Set<LedgerAccount> = [.external]
                let accounts = try tx.accounts()
                for account in accounts {
                    let side: LedgerAccount = account.role == .customer ? .customer(account.number) : .merchant(account.number)
                    seen.insert(side)
                    if account.role == .customer {
                        add(&report.customerTotal, account.balance, "customer total")
                    } else {
                        add(&report.merchantTotal, account.balance, "merchant total")
                    }
                    let fromJournal = net[side] ?? 0
                    if fromJournal != Int64(exactly: account.balance) {
                        report.problems.append("\(side): balance \(account.balance), journal \(fromJournal)")
                    }
                }
                for ticket in try tx.tickets() {
                    let side = LedgerAccount.escrow(serial: ticket.serial)
                    seen.insert(side)
                    add(&report.escrowTotal, ticket.escrow, "escrow total")
                    if ticket.state == .disputed { report.disputed.append(ticket.serial) }
                    let fromJournal = net[side] ?? 0
                    if fromJournal != Int64(exactly: ticket.escrow) {
                        report.problems.append("\(side): escrow \(ticket.escrow), journal \(fromJournal)")
                    }
                }
                for side in net.keys where !seen.contains(side) {
                    report.problems.append("journal names \(side), which the ledger does not hold")
                }
                let (funded, withdrawn) = try tx.journalTotals()
                (report.funded, report.withdrawn) = (funded.clamped, withdrawn.clamped)
                var held: UInt64 = 0
                add(&held, report.customerTotal, "holdings")
                add(&held, report.escrowTotal, "holdings")
                add(&held, report.merchantTotal, "holdings")
                // Money in the bank is what left the external account, and
                // funded − withdrawn: both exact, however much the ledger has
                // moved over its life.
                let external = net[.external, default: 0]
                let outside = external <= 0 ? external.magnitude : 0
                if external > 0 || funded.minus(withdrawn) != outside {
                    report.problems.append("external: journal \(external), funded \(report.funded) − withdrawn \(report.withdrawn)")
                }
                if held != outside {
                    report.problems.append("invariant: customers \(report.customerTotal) + escrow \(report.escrowTotal) + merchants \(report.merchantTotal) ≠ funded − withdrawn \(outside)")
                }
                if try tx.circulation() != outside {
                    report.problems.append("circulation counter \(try tx.circulation()) ≠ \(outside)")
                }
                for account in accounts where account.role == .merchant {
                    var receipted = LedgerSum()
                    for receipt in try tx.receipts(merchant: account.number) { receipted.add(receipt.credited) }
                    let settled = try tx.settledCredits(merchant: account.number)
                    if receipted != settled {
                        report.problems.append("merchant \(account.number): receipts credit \(receipted.clamped), journal settles \(settled.clamped)")
                    }
                }
                return report
            }
        }
    }

    // MARK: - Helpers

    /// Runs `body`, passing BankErrors through and wrapping backend errors.
    static func run<T>(_ body: () throws -> T) throws(BankError) -> T {
        do {
            return try body()
        } catch let error as BankError {
            throw error
        } catch {
            throw .storage(String(describing: error))
        }
    }

    private static func checkAmount(_ amount: UInt64) throws(BankError) {
        guard amount > 0 else { throw .zeroAmount }
        guard amount <= UInt64(Int64.max) else { throw .amountTooLarge(amount) }
    }

    private static func requireAccount(_ tx: any LedgerTransaction, _ number: UInt64, role: AccountRole) throws {
        guard let account = try tx.account(number) else { throw BankError.unknownAccount(number) }
        guard account.role == role else { throw BankError.wrongRole(account: number, expected: role) }
    }

    /// Big-endian u64 at `offset` (the caller has checked the length).
    private static func u64(_ bytes: [UInt8], at offset: Int) -> UInt64 {
        bytes[offset..<offset + 8].reduce(0) { $0 << 8 | UInt64($1) }
    }

    /// The decoder's precise reason why `bytes` is not a Deposit.
    private static func malformedDeposit(_ bytes: [UInt8]) -> BankError {
        do {
            _ = try Deposit(decoding: bytes)
        } catch {
            return .malformed(error)
        }
        return .malformed(.wrongLength(.deposit, expected: Deposit.minimumByteCount, actual: bytes.count))
    }
}
