@testable import CrashHarness
import Foundation
import MicropayCore
import MicropayMerchant
import Testing

/// The CrashHarness executable, built next to this test bundle.
func crashHarnessURL() throws -> URL {
    var candidates: [URL] = []
    if let executable = Bundle.main.executableURL {
        candidates.append(executable.deletingLastPathComponent().appendingPathComponent("CrashHarness"))
    }
    let argument0 = URL(fileURLWithPath: CommandLine.arguments[0])
    candidates.append(argument0.deletingLastPathComponent().appendingPathComponent("CrashHarness"))
    // The xctest bundle may be a directory on some platforms: look beside it too.
    candidates.append(argument0.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("CrashHarness"))
    candidates.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".build/debug/CrashHarness"))
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
        Issue.record("CrashHarness not found; looked at \(candidates.map(\.path)). Build it: swift build --product CrashHarness")
        throw CancellationError()
    }
    return found
}

@Suite("Crash safety: SIGKILL during batch verification loses nothing and doubles nothing", .serialized)
struct CrashTests {
    static let seed: UInt64 = 0xC0FFEE
    static let batches = 24
    static let records = 1500

    /// Runs the harness once, killing it after `delay` unless it finishes first.
    /// Returns whether it finished by itself and the batches it reported committed.
    static func run(_ harness: URL, db: String, killAfter delay: Duration?) throws -> (finished: Bool, reported: [Int]) {
        let process = Process()
        process.executableURL = harness
        process.arguments = ["merchant", "run", db, "\(seed)", "\(batches)", "\(records)"]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        var finished = true
        if let delay {
            let deadline = ContinuousClock.now + delay
            while process.isRunning && ContinuousClock.now < deadline { usleep(2_000) }
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                finished = false
            }
        }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if finished {
            #expect(process.terminationReason == .exit && process.terminationStatus == 0, "harness failed: \(text)")
        }
        let reported = text.split(separator: "\n").compactMap { line in
            line.hasPrefix("committed ") ? Int(line.dropFirst("committed ".count)) : nil
        }
        return (finished, reported)
    }

    @Test("kill the harness at random points, reopen: committed batches once each, credits equal a sequential reference")
    func killAndReopen() throws {
        let harness = try crashHarnessURL()
        let scenario = MerchantCrashScenario(seed: Self.seed, batches: Self.batches, records: Self.records)
        // Calibrate on a scratch store: the time to start (nothing left to do) and to do everything.
        let scratch = TemporaryStorePath("crash-calibrate")
        defer { scratch.cleanUp() }
        var clock = ContinuousClock.now
        _ = try Self.run(harness, db: scratch.path, killAfter: nil)
        let full = ContinuousClock.now - clock
        clock = ContinuousClock.now
        _ = try Self.run(harness, db: scratch.path, killAfter: nil)
        let startUp = ContinuousClock.now - clock
        let low = Int(startUp / .milliseconds(1) * 0.7)
        let high = max(low + 20, Int(full / .milliseconds(1) * 0.95))

        var rng = SplitMix64(seed: 42)
        var kills = 0
        var midRunKills = 0
        var rounds = 0
        let started = ContinuousClock.now
        // Rounds on fresh stores, each killed until a run completes, until enough kills have landed:
        // 18 s, or longer (up to 90 s) on a machine slow enough that the kills asked for below have
        // not landed by then.
        func enough() -> Bool {
            let elapsed = ContinuousClock.now - started
            return kills >= 30 || elapsed >= .seconds(90) || (elapsed >= .seconds(18) && kills >= 10 && midRunKills >= 3)
        }
        while !enough() {
            rounds += 1
            let path = TemporaryStorePath("crash")
            defer { path.cleanUp() }
            let reference = ReferenceMerchant(bankID: MerchantCrashScenario.bankID, merchant: MerchantCrashScenario.merchant,
                                              merchantKey: scenario.merchantKey)
            var referenceBatches = 0
            var referenceTotal: UInt64 = 0
            var reportedEver = Set<Int>()
            var finished = false
            var attempts = 0
            while !finished {
                attempts += 1
                // After a dozen attempts, let it finish: the round must end.
                let delay: Duration? = attempts <= 12 ? .milliseconds(Int.random(in: low...high, using: &rng)) : nil
                let result = try Self.run(harness, db: path.path, killAfter: delay)
                finished = result.finished
                if !finished { kills += 1 }
                reportedEver.formUnion(result.reported)
                let merchant = try Merchant(bankID: MerchantCrashScenario.bankID, merchant: MerchantCrashScenario.merchant,
                                            merchantKey: scenario.merchantKey, store: MerchantStore(path: path.path))
                let log = try merchant.store.batchLog().map(\.tag)
                // Each batch once, in order; every batch reported committed is there.
                #expect(log == (0..<log.count).map(MerchantCrashScenario.tag), "round \(rounds): \(log)")
                for k in reportedEver { #expect(log.contains(MerchantCrashScenario.tag(k)), "reported batch \(k) lost") }
                #expect(log.count >= referenceBatches, "committed batches disappeared")
                if !finished && log.count > referenceBatches && log.count < Self.batches { midRunKills += 1 }
                // The state on disk is exactly the sequential result of the batches logged.
                while referenceBatches < log.count {
                    referenceTotal += try Self.judge(scenario, batch: referenceBatches, with: reference)
                    referenceBatches += 1
                }
                #expect(merchant.totalCredited == referenceTotal, "after \(log.count) batches")
                #expect(merchant.ticketCount == reference.tickets.count)
                for (serial, t) in reference.tickets {
                    let state = merchant.ticketState(serial: serial)
                    #expect(state?.credited == t.credited && state?.last == t.last && state?.lastSeq == t.lastSeq,
                            "serial \(serial)")
                }
                if finished {
                    #expect(log.count == Self.batches)
                    try Self.reverify(merchant, scenario: scenario)
                }
            }
        }

        #expect(kills >= 10, "only \(kills) kills in \(rounds) rounds")
        #expect(midRunKills >= 3, "only \(midRunKills) of \(kills) kills fell between the first and the last batch")
    }

    /// Verifying every committed batch again accepts no payment and credits nothing.
    static func reverify(_ merchant: Merchant, scenario: MerchantCrashScenario) throws {
        for (k, batch) in scenario.batches.enumerated() {
            var acceptedPayments = 0
            let summary = try batch.withUnsafeBytes { bytes in
                try merchant.verifyBatch(bytes, now: scenario.now(k)) { record, outcome in
                    if outcome.verdict == .accepted && record.bytes.first != WireKind.ticket.rawValue { acceptedPayments += 1 }
                    #expect([.accepted, .duplicate, .replay].contains(outcome.verdict))
                }
            }
            #expect(acceptedPayments == 0, "batch \(k)")
            #expect(summary.credited == 0, "batch \(k)")
        }
    }

    /// What the reference model credits for batch `k`, advancing its state.
    static func judge(_ scenario: MerchantCrashScenario, batch k: Int, with reference: ReferenceMerchant) throws -> UInt64 {
        var total: UInt64 = 0
        try scenario.batches[k].withUnsafeBytes { bytes in
            var reader = try BatchFileReader(bytes)
            while let record = reader.next() { total += reference.judge(Array(record.bytes), now: scenario.now(k)).credited }
        }
        return total
    }
}
