import ArgumentParser
import Foundation
import MicropayBank
import MicropayCore

struct BankCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bank",
        abstract: "The bank: accounts, tickets, settlement, refunds and the audit.",
        discussion: """
            The bank lives in a folder (--dir, default ./bank): master.key (the
            bank's only secret, mode 0600) and ledger.db (SQLite). Amounts are in
            micro-units of currency.
            """,
        subcommands: [BankInit.self, BankOpenAccount.self, BankFund.self, BankWithdraw.self, BankIssue.self,
                      BankSettle.self, BankRefundExpired.self, BankResolveDispute.self, BankBalance.self, BankAudit.self]
    )
}

/// Where the bank lives.
struct BankLocation: ParsableArguments {
    @Option(help: ArgumentHelp("The bank's folder (master.key and ledger.db).", valueName: "dir"))
    var dir: String = "bank"

    var masterPath: String { "\(dir)/master.key" }
    var ledgerPath: String { "\(dir)/ledger.db" }

    /// Opens an initialised bank; exit 66 if there is none in `dir`.
    func open() throws -> Bank {
        for path in [masterPath, ledgerPath] where !FileManager.default.fileExists(atPath: path) {
            throw ToolError(.noInput, "\(path): no bank here (create one with: micropay bank init --dir \(dir) --bank-id N)")
        }
        let master = try bankCall(masterPath) { () throws(BankError) in try MasterKeyFile.load(path: masterPath) }
        guard let master else { throw ToolError(.noInput, "\(masterPath): cannot read the master key") }
        let store: SQLiteLedgerStore
        do { store = try SQLiteLedgerStore(path: ledgerPath) } catch {
            throw ToolError(.ioError, "\(ledgerPath): cannot open the ledger (\(error))")
        }
        let bankID: UInt32?
        do { bankID = try store.read { try $0.bankID() } } catch {
            throw ToolError(.ioError, "\(ledgerPath): cannot read the ledger (\(error))")
        }
        guard let bankID else { throw ToolError(.dataError, "\(ledgerPath): the ledger was never initialised") }
        return try bankCall(ledgerPath) { () throws(BankError) in try Bank(store: store, master: master, bankID: bankID) }
    }
}

struct BankInit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a bank: a master key file and an empty ledger.",
        discussion: """
            Creates --dir if needed, master.key (32 random bytes, mode 0600) and
            ledger.db for bank id --bank-id. Running it again on the same folder with
            the same id changes nothing; another id is refused (exit 65). The ledger
            keeps a check value of its master key: an existing ledger whose
            master.key is missing is refused (exit 66) rather than given a new
            key, and one whose master.key was replaced is refused (exit 65).

            Example:
              micropay bank init --dir bank --bank-id 7
            """
    )

    @OptionGroup var location: BankLocation
    @Option(name: .customLong("bank-id"), help: "The bank's id (u32), written into every object it issues.")
    var bankID: UInt32

    func run() throws {
        try reportingErrors {
            do {
                try FileManager.default.createDirectory(atPath: location.dir, withIntermediateDirectories: true)
            } catch {
                throw ToolError(.cannotCreate, "\(location.dir): cannot create the folder")
            }
            let bank = try bankCall(location.ledgerPath) { () throws(BankError) in
                try Bank.open(ledgerPath: location.ledgerPath, masterKeyPath: location.masterPath, bankID: bankID)
            }
            print("bank \(bank.bankID) ready in \(location.dir) (master key \(location.masterPath), ledger \(location.ledgerPath))")
        }
    }
}

struct BankOpenAccount: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "open-account",
        abstract: "Open a customer or merchant account and hand over its key.",
        discussion: """
            Prints the account number and its key (K_C or K_M) in hex:
              account 3 (customer)
              key 7acc9f8f...
            With --key-out FILE the key goes to FILE (mode 0600) instead of the
            terminal. The bank stores no key: it derives it again from its master key.

            Example:
              micropay bank open-account --dir bank --role customer --key-out alice.key
            """
    )

    enum Role: String, ExpressibleByArgument, CaseIterable { case customer, merchant }

    @OptionGroup var location: BankLocation
    @Option(help: "customer or merchant.")
    var role: Role
    @Option(help: "Ask for this account number (default: the next free one).")
    var number: UInt64?
    @Option(name: .customLong("key-out"), help: ArgumentHelp("Write the key here (mode 0600) instead of printing it.", valueName: "file"))
    var keyOut: String?

    func run() throws {
        try reportingErrors {
            let bank = try location.open()
            let account = try bankCall { () throws(BankError) in
                try bank.openAccount(role == .customer ? .customer : .merchant, number: number)
            }
            print("account \(account.number) (\(role.rawValue))")
            if let keyOut {
                try writeKeyFile(keyOut, account.key)
                print("key written to \(keyOut) (mode 0600)")
            } else {
                print("key \(account.key.hexExposingSecret)")
            }
        }
    }
}

struct BankFund: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fund",
        abstract: "Pay money into a customer's account (from outside the bank).",
        discussion: """
            With --request-id the money moves once, however often the command is
            run: run it again after a crash or a timeout and it says the transfer
            was already done. The same id with another account or amount is
            refused (exit 65).

            Example:
              micropay bank fund --dir bank --account 1 --amount 1000000 --request-id pay-in-0001
            """
    )

    @OptionGroup var location: BankLocation
    @Option(help: "The customer account.")
    var account: UInt64
    @Option(help: "Micro-units to pay in.")
    var amount: UInt64
    @Option(help: "Your id for this transfer (1 to 64 printable ASCII characters, no spaces), unique per transfer.")
    var requestID: String?

    func run() throws {
        try reportingErrors {
            let bank = try location.open()
            let outcome = try bankCall { () throws(BankError) in
                try bank.fund(customer: account, amount: amount, requestID: requestID)
            }
            let balance = try bankCall { () throws(BankError) in try bank.balance(of: account) }
            let done = outcome == .moved ? "funded" : "already funded (request id \(requestID ?? ""))"
            print("\(done) account \(account) with \(money(amount)); balance \(money(balance))")
        }
    }
}

struct BankWithdraw: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "withdraw",
        abstract: "Pay money out of a customer's or merchant's account.",
        discussion: """
            Refused (exit 65) if the balance does not cover the amount. With
            --request-id the money moves once, as for `bank fund`.

            Example:
              micropay bank withdraw --dir bank --account 2 --amount 4800 --request-id pay-out-0001
            """
    )

    @OptionGroup var location: BankLocation
    @Option(help: "The account.")
    var account: UInt64
    @Option(help: "Micro-units to pay out.")
    var amount: UInt64
    @Option(help: "Your id for this transfer (1 to 64 printable ASCII characters, no spaces), unique per transfer.")
    var requestID: String?

    func run() throws {
        try reportingErrors {
            let bank = try location.open()
            let outcome = try bankCall { () throws(BankError) in
                try bank.withdraw(account: account, amount: amount, requestID: requestID)
            }
            let balance = try bankCall { () throws(BankError) in try bank.balance(of: account) }
            let done = outcome == .moved ? "withdrew" : "already withdrew (request id \(requestID ?? ""))"
            print("\(done) \(money(amount)) from account \(account); balance \(money(balance))")
        }
    }
}

struct BankIssue: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "issue",
        abstract: "Judge a TicketRequest (§5.3) and issue its Envelope and Ticket.",
        discussion: """
            Debits the customer by the ticket's limit into escrow. The Envelope is
            for the customer (customer accept), the Ticket for the merchant (the
            customer forwards it with its first payment). A retried request (same
            bytes) gets the same answer and is not debited twice.

            Example:
              micropay bank issue --dir bank --request req.bin --envelope env.bin --ticket ticket.bin
            """
    )

    @OptionGroup var location: BankLocation
    @Option(help: ArgumentHelp("The customer's TicketRequest.", valueName: "file"))
    var request: String
    @Option(help: ArgumentHelp("Where to write the Envelope (for the customer).", valueName: "file"))
    var envelope: String
    @Option(help: ArgumentHelp("Where to write the Ticket (for the merchant).", valueName: "file"))
    var ticket: String
    @Option(help: "Issue at this Unix time (default: now).")
    var now: UInt64?

    func run() throws {
        try reportingErrors {
            let bytes = try readInput(request)
            let bank = try location.open()
            let issued = try bankCall(request) { () throws(BankError) in try bank.issue(request: bytes, now: now ?? currentTime()) }
            try writeOutput(envelope, issued.envelope.bytes)
            try writeOutput(ticket, issued.ticket.bytes)
            let record = try bankCall { () throws(BankError) in try bank.ticket(serial: issued.serial) }
            let mode = record.map { $0.isChainMode ? "chain of \($0.chainLength) × \($0.unit)" : "orders" } ?? "?"
            print("issued ticket \(issued.serial)\(issued.isRetry ? " (a retried request: nothing debited again)" : ""): \(mode), limit \(money(record?.limit ?? 0)), expires \(record?.expires ?? 0)")
            print("wrote \(envelope) and \(ticket)")
        }
    }
}

struct BankSettle: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "settle",
        abstract: "Settle a merchant's Deposit (§9) and write the Receipt.",
        discussion: """
            Credits the merchant with every accepted claim and prints the amount and
            the result codes. A Deposit sent again gets the same Receipt. A refused
            Deposit (bad tag, unknown merchant, malformed) changes nothing (exit 65).

            Example:
              micropay bank settle --dir bank --deposit d1.dep --receipt d1.rcpt
            """
    )

    @OptionGroup var location: BankLocation
    @Option(help: ArgumentHelp("The merchant's Deposit.", valueName: "file"))
    var deposit: String
    @Option(help: ArgumentHelp("Where to write the Receipt.", valueName: "file"))
    var receipt: String
    @Option(help: "Settle at this Unix time (default: now).")
    var now: UInt64?

    func run() throws {
        try reportingErrors {
            let bytes = try readInput(deposit)
            let bank = try location.open()
            let answer = try bankCall(deposit) { () throws(BankError) in try bank.settle(deposit: bytes, now: now ?? currentTime()) }
            try writeOutput(receipt, answer.bytes)
            var counts: [Verdict: Int] = [:]
            for code in answer.codes { counts[code, default: 0] += 1 }
            let codes = Verdict.allCases.compactMap { v in counts[v].map { "\(v) \($0)" } }.joined(separator: ", ")
            print("settled batch \(answer.batchID) of merchant \(answer.merchant): \(answer.codes.count) claims (\(codes)), credited \(money(answer.credited))")
            print("wrote \(receipt)")
        }
    }
}

struct BankRefundExpired: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "refund-expired",
        abstract: "Close tickets past expires + grace and refund what was not claimed (§9.5).",
        discussion: """
            Example:
              micropay bank refund-expired --dir bank --now 1900200000
            """
    )

    @OptionGroup var location: BankLocation
    @Option(help: "Refund at this Unix time (default: now).")
    var now: UInt64?

    func run() throws {
        try reportingErrors {
            let bank = try location.open()
            let refunded = try bankCall { () throws(BankError) in try bank.refundExpired(now: now ?? currentTime()) }
            let total = refunded.values.reduce(0, +)
            print("closed \(refunded.count) tickets, refunded \(money(total))")
        }
    }
}

struct BankResolveDispute: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resolve-dispute",
        abstract: "Rule on a disputed ticket (§9.4): pay the merchant part of its escrow, refund the rest, close it.",
        discussion: """
            A claim with a right tag and a wrong bank_tag freezes its ticket's
            escrow (the audit lists it). Once the operator has found out who
            cheated, this pays --pay-merchant of the escrow to the ticket's
            merchant and the rest back to its customer, and closes the ticket.
            Prints both amounts. A ticket that is not disputed is refused (exit 65).

            Example:
              micropay bank resolve-dispute --dir bank --serial 46 --pay-merchant 0
            """
    )

    @OptionGroup var location: BankLocation
    @Option(help: "The disputed ticket's serial.")
    var serial: UInt64
    @Option(name: .customLong("pay-merchant"), help: "What the merchant gets from the escrow, in µ (the customer gets the rest).")
    var payMerchant: UInt64

    func run() throws {
        try reportingErrors {
            let bank = try location.open()
            let paid = try bankCall { () throws(BankError) in try bank.resolveDispute(serial: serial, payMerchant: payMerchant) }
            print("ticket \(serial) closed: \(money(paid.merchant)) to the merchant, \(money(paid.customer)) to the customer")
        }
    }
}

struct BankBalance: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "balance",
        abstract: "Show an account's balance, or every account's.",
        discussion: """
            With --account, one line: "account 1 (customer) balance 4800 µ (0.004800)".
            Without, every account and the total held in escrow.

            Example:
              micropay bank balance --dir bank --account 1
            """
    )

    @OptionGroup var location: BankLocation
    @Option(help: "The account (default: all).")
    var account: UInt64?

    func run() throws {
        try reportingErrors {
            let bank = try location.open()
            if let account {
                let found = try bankCall { () throws(BankError) in try bank.account(account) }
                guard let record = found else {
                    throw ToolError(.dataError, "bank: no account \(account)")
                }
                print("account \(record.number) (\(record.role)) balance \(money(record.balance))")
                return
            }
            let (accounts, tickets): ([AccountRecord], [TicketRecord])
            do { (accounts, tickets) = try bank.store.read { tx in (try tx.accounts(), try tx.tickets()) } } catch {
                throw ToolError(.ioError, "\(location.ledgerPath): \(error)")
            }
            for record in accounts.sorted(by: { $0.number < $1.number }) {
                print("account \(record.number) (\(record.role)) balance \(money(record.balance))")
            }
            let open = tickets.filter { $0.state != .refunded }
            print("escrow \(money(open.reduce(0) { $0 + $1.escrow })) in \(open.count) tickets")
        }
    }
}

struct BankAudit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Check the ledger invariant (§9.7) and the journal.",
        discussion: """
            Prints the totals and "audit: consistent", or every problem found and
            "audit: INCONSISTENT" with exit status 1.

            Example:
              micropay bank audit --dir bank
            """
    )

    @OptionGroup var location: BankLocation

    func run() throws {
        try reportingErrors {
            let bank = try location.open()
            let report = try bankCall { () throws(BankError) in try bank.audit() }
            printAudit(report)
            if !report.isConsistent { throw ToolError(.checkFailed, "audit failed: \(report.problems.count) problems") }
        }
    }
}

func printAudit(_ r: AuditReport) {
    print("customers \(money(r.customerTotal)) + escrow \(money(r.escrowTotal)) + merchants \(money(r.merchantTotal))")
    print("  = funded \(money(r.funded)) − withdrawn \(money(r.withdrawn))")
    if !r.disputed.isEmpty {
        print("disputed tickets: \(r.disputed.map(String.init).joined(separator: ", "))"
              + " (their escrow waits for: micropay bank resolve-dispute --serial S --pay-merchant AMOUNT)")
    }
    for problem in r.problems { print("problem: \(problem)") }
    print(r.isConsistent ? "audit: consistent" : "audit: INCONSISTENT (\(r.problems.count) problems)")
}
