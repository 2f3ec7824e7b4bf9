import ArgumentParser
import Foundation
import MicropaySimulation

struct GenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gen",
        abstract: "Generate inputs with known outcomes.",
        subcommands: [GenBatch.self]
    )
}

struct GenBatch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch",
        abstract: "Write a merchant batch file and, beside it, what verifying it must give.",
        discussion: """
            The batch holds the tickets first, then the payments at distance 1 in
            random order over the tickets, with a share of attacks (replays,
            retries, forged words and tags, overspending, foreign and tampered
            tickets, truncated records, unknown kinds and serials, wrong modes).
            F.json holds bank_id, merchant, key (K_M in hex), now, and the
            expected counts by verdict and credited total. The same seed gives
            the same files.

            Example:
              micropay gen batch --out day.mpb --tickets 1000 --payments 1000000 --fraud-rate 0.05
              micropay merchant verify day.mpb --bank-id 7 --merchant 2002 --key $(jq -r .key day.mpb.json) --now $(jq .now day.mpb.json)
            """
    )

    @Option(help: "The batch file to write (F.json is written beside it).")
    var out: String
    @Option(help: "Live tickets in the batch.")
    var tickets: Int
    @Option(help: "Payment records after the tickets (attacks included).")
    var payments: Int
    @Option(name: .customLong("fraud-rate"), help: "Share of payment records that are attacks, 0...1.")
    var fraudRate: Double = 0
    @Option(help: "Seed for the generator.")
    var seed: UInt64 = 1
    @Option(help: "Ticket mode: chain, order or mixed.")
    var mode: String = "mixed"

    func validate() throws {
        guard tickets >= 1 else { throw ValidationError("--tickets must be at least 1") }
        guard payments >= 0 else { throw ValidationError("--payments must not be negative") }
        guard (0...1).contains(fraudRate) else { throw ValidationError("--fraud-rate must be between 0 and 1") }
        guard BatchSpec.Mode(rawValue: mode) != nil else { throw ValidationError("--mode must be chain, order or mixed") }
    }

    func run() throws {
        try reportingErrors {
            let spec = BatchSpec(tickets: tickets, payments: payments, fraudRate: fraudRate, seed: seed,
                                 mode: BatchSpec.Mode(rawValue: mode)!)
            let progress = Progress("generating", total: tickets + payments)
            let start = Date()
            let batch: GeneratedBatch
            do {
                batch = try BatchGenerator.write(spec, to: out) { done, _ in progress.update(done) }
            } catch {
                progress.finish()
                throw ToolError(.cannotCreate, "\(out): cannot write the batch (\(error.localizedDescription))")
            }
            progress.finish()
            let e = batch.expectation
            print("wrote \(out): \(e.records) records (\(tickets) tickets), \(e.accepted) to be accepted, \(e.credited) credited")
            print("wrote \(out).json: bank_id \(spec.bankID), merchant \(spec.merchant), now \(spec.now)")
            print(String(format: "in %.2f s", Date().timeIntervalSince(start)))
        }
    }
}
