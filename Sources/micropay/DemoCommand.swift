import ArgumentParser
import Foundation

struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "The main job: a day of micropayments, attacks included, from tickets to the audit.",
        discussion: """
            Sets up (or reuses) a bank with a SQLite ledger, customers with wallets
            and merchants with their stores, all under --dir; issues tickets in both
            modes; plays a day of payments with a share of attacks mixed in
            (replays, retries, forged words and tags, overspending, decreasing
            orders, tickets sent to the wrong merchant, tampered tickets, truncated
            records, unknown serials); sells information goods with certified
            delivery (sealGoods → an order bound to the item → purchase →
            KeyEnvelope → the customer opens the goods); writes each merchant's batch
            file and verifies it; deposits, settles at the bank, lets the merchants
            withdraw; moves the demo clock past expires + grace and refunds what
            expired; and audits the ledger.

            It prints the time and throughput of each stage, the verdicts by kind
            (and whether each record got the verdict it was built to get), the money
            moved, and the audit's result ("audit: consistent").

            Run again on the same --dir, it plays the next day on the same bank,
            accounts, wallets and stores (the ledger and the audit then cover every
            day); --reset starts from nothing. The same seed gives the same choices,
            verdicts and amounts (keys and nonces come from the system's random source).

            Exit status: 0; 1 if the audit fails or a record did not get the verdict
            it was built to get; 64 bad arguments (or --dir is a folder that is not
            the demo's); 73/74 files or databases cannot be written.

            Example:
              micropay demo
              micropay demo --dir /tmp/day --customers 100 --merchants 10 --payments 200000 --fraud-rate 0.02 --reset
            """
    )

    @Option(help: ArgumentHelp("Where the bank, wallets, stores and files go.", valueName: "dir"))
    var dir: String = "micropay-demo"
    @Option(help: "Customers (each with a wallet).")
    var customers: Int = 20
    @Option(help: "Merchants (each with a store and a batch file).")
    var merchants: Int = 4
    @Option(help: "Payment records of the day (attacks included).")
    var payments: Int = 10000
    @Option(name: .customLong("fraud-rate"), help: "Share of payment records that are attacks, 0...1.")
    var fraudRate: Double = 0.05
    @Option(help: "Seed for every choice the demo makes.")
    var seed: UInt64 = 1
    @Flag(help: "Wipe --dir first and start from nothing.")
    var reset = false

    func validate() throws {
        guard (1...10_000).contains(customers) else { throw ValidationError("--customers must be 1...10000") }
        guard (1...1000).contains(merchants) else { throw ValidationError("--merchants must be 1...1000") }
        guard (0...10_000_000).contains(payments) else { throw ValidationError("--payments must be 0...10000000") }
        guard (0...1).contains(fraudRate) else { throw ValidationError("--fraud-rate must be between 0 and 1") }
    }

    func run() throws {
        try reportingErrors {
            let options = DemoOptions(dir: dir, customers: customers, merchants: merchants, payments: payments,
                                      fraudRate: fraudRate, seed: seed, reset: reset)
            let outcome = try DemoDay.run(options)
            if !outcome.auditConsistent { throw ToolError(.checkFailed, "the audit failed") }
            if outcome.unexpectedVerdicts > 0 {
                throw ToolError(.checkFailed, "\(outcome.unexpectedVerdicts) records did not get the verdict they were built to get")
            }
            if outcome.failures > 0 { throw ToolError(.checkFailed, "\(outcome.failures) checks of the day failed") }
        }
    }
}
