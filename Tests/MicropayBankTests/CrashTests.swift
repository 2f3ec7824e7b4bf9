import Foundation
import MicropayBank
import MicropayCore
import Testing

/// SIGKILLs `CrashHarness bank run` at random instants while it issues and
/// settles on a durable ledger, then reopens the ledger and checks that no
/// operation was half done and nothing was paid or debited twice.
@Suite("Crash safety", .serialized)
struct CrashTests {
    /// The harness binary: next to the test bundle, or in .build/debug.
    static func harnessURL() -> URL? {
        var candidates: [URL] = []
        if let executable = Bundle.main.executableURL { candidates.append(executable.deletingLastPathComponent()) }
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        candidates.append(Bundle.module.bundleURL.deletingLastPathComponent())
        candidates.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".build/debug"))
        return candidates.map { $0.appendingPathComponent("CrashHarness") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    @Test func killedMidWorkLeavesAConsistentLedger() throws {
        guard let harness = Self.harnessURL() else {
            Issue.record("CrashHarness binary not found next to the tests or in .build/debug: build it with `swift build --product CrashHarness`")
            return
        }
        let dir = try temporaryDirectory()
        var rng = SplitMix64(seed: UInt64(Date().timeIntervalSince1970))
        var killedWhileRunning = 0
        let kills = 24
        for round in 0..<kills {
            let process = Process()
            process.executableURL = harness
            process.arguments = ["bank", "run", dir.path]
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            // The first run also creates the key and the ledger: give it longer.
            let delay = (round == 0 ? 400_000 : 60_000) + rng.next() % 450_000
            usleep(UInt32(delay))
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                killedWhileRunning += 1
            }
            process.waitUntilExit()
            if process.terminationReason == .exit {
                let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                Issue.record("harness exited by itself with \(process.terminationStatus) in round \(round): \(message)")
                return
            }
            #expect(process.terminationStatus == SIGKILL)
        }
        #expect(killedWhileRunning == kills)

        // A last, clean run re-sends what the last kill left pending and does a few rounds.
        let final = Process()
        final.executableURL = harness
        final.arguments = ["bank", "run", dir.path, "5"]
        try final.run()
        final.waitUntilExit()
        #expect(final.terminationReason == .exit && final.terminationStatus == 0, "a retry was not answered byte for byte")

        let bank = try Bank.open(ledgerPath: dir.appendingPathComponent("ledger.sqlite").path,
                                 masterKeyPath: dir.appendingPathComponent("master.key").path, bankID: 7)
        let audit = try bank.audit()
        #expect(audit.isConsistent, "\(audit.problems)")
        // Paid once: the merchant holds exactly what its Receipts say it was credited
        // (read from the Receipt bytes, not from the ledger's own column).
        let receipts = try bank.receipts(merchant: 2002)
        let receipted = try receipts.reduce(UInt64(0)) { $0 + (try Receipt(decoding: $1.receipt)).credited }
        #expect(receipted > 0 && receipts.count > kills, "the harness did little work: \(receipts.count) receipts")
        #expect(try bank.balance(of: 2002) == receipted)
        // Debited once: every ticket's settlement stays within its limit, and the
        // customer's balance is what funding, tickets and refunds leave.
        var serial: UInt64 = 1
        var limits: UInt64 = 0, refunded: UInt64 = 0
        while let ticket = try bank.ticket(serial: serial) {
            #expect(ticket.settledAmount <= ticket.limit)
            limits += ticket.limit
            if ticket.state == .refunded { refunded += ticket.limit - ticket.settledAmount }
            serial += 1
        }
        #expect(serial > UInt64(kills))
        // balance = funded − withdrawn − limits + refunded, summed so no step can go below zero.
        #expect(try bank.balance(of: 1001) + limits == audit.funded + refunded - audit.withdrawn)
        // Transferred once: the journal's funds and withdrawals are those the
        // harness was answered for, each request id counted once, though every
        // kill between a transfer's commit and its pending file's removal
        // was followed by the same transfer sent again.
        let log = try String(contentsOf: dir.appendingPathComponent("transfers.log"), encoding: .utf8)
        var transfers: [String: (kind: String, amount: UInt64)] = [:]
        for line in log.split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count == 3, let amount = UInt64(fields[2]) else {
                Issue.record("transfers.log line \(line)")
                continue
            }
            if let seen = transfers[fields[1]] { #expect(seen.kind == fields[0] && seen.amount == amount) }
            transfers[fields[1]] = (fields[0], amount)
        }
        let funded = transfers.values.filter { $0.kind == "fund" }.reduce(UInt64(0)) { $0 + $1.amount }
        let withdrawn = transfers.values.filter { $0.kind == "withdraw" }.reduce(UInt64(0)) { $0 + $1.amount }
        #expect(funded > 0 && withdrawn > 0, "the harness made no transfer of some kind")
        #expect(audit.funded == funded && audit.withdrawn == withdrawn)
    }
}
