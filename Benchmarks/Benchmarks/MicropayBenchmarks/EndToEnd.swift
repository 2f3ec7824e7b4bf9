import Benchmark
import Foundation
import MicropayBaseline
import MicropayCore
import MicropayMerchant
import MicropaySimulation

// End-to-end batch verification: Merchant.verifyBatch over a fresh in-memory
// MerchantStore per run, beside the naive verifier over the same bytes.
// Generation is outside the measured region: each batch is generated once
// into the cache directory (see Support.swift) and read into memory in the
// benchmark's setup; one copy per process.

/// MICROPAY_BENCH_THREADS (default 1): the threads (shards) of the merchant's batch verifier.
let benchThreads: Int = Int(ProcessInfo.processInfo.environment["MICROPAY_BENCH_THREADS"] ?? "") ?? 1

/// THE one call into the merchant's batch path: verification and the
/// batch's commit (to a store in memory), as a merchant runs it.
@inline(never)
func merchantVerifyBatch(_ merchant: Merchant, _ batch: UnsafeRawBufferPointer, now: UInt64,
                         threads: Int) throws -> BatchSummary {
    try merchant.verifyBatch(batch, now: now, tag: "bench", threads: threads)
}

struct Scenario: Sendable {
    let id: String
    let title: String
    let spec: BatchSpec

    var records: Int { spec.tickets + spec.payments }
    /// Size in the name, so results at other scales never compare as equal.
    var name: String { "e2e \(id) \(title), \(short(spec.payments)) payments over \(short(spec.tickets)) tickets" }
    var fileName: String {
        "\(spec.mode.rawValue)-t\(spec.tickets)-p\(spec.payments)-f\(spec.fraudRate)-s\(spec.seed).mpb"
    }
    var tags: [String: String] {
        ["scale": "\(benchScale)", "tickets": "\(spec.tickets)", "payments": "\(spec.payments)",
         "mode": spec.mode.rawValue, "fraudRate": "\(spec.fraudRate)", "threads": "\(benchThreads)"]
    }
}

/// (a)-(d) of the issue. At scale 1.0: 10 M payments each.
let scenarios: [Scenario] = [
    // (a) distance-1 chain payments over 1 k live tickets (a working set that fits in cache).
    Scenario(id: "a", title: "chain d=1", spec: BatchSpec(
        tickets: 1000, payments: scaled(10_000_000), fraudRate: 0, seed: 0xA, mode: .chain)),
    // (b) the same over 1 M live tickets, payments randomly interleaved across them.
    Scenario(id: "b", title: "chain d=1 interleaved", spec: BatchSpec(
        tickets: scaled(1_000_000), payments: scaled(10_000_000), fraudRate: 0, seed: 0xB, mode: .chain)),
    // (c) payment orders over 1 M tickets.
    Scenario(id: "c", title: "orders", spec: BatchSpec(
        tickets: scaled(1_000_000), payments: scaled(10_000_000), fraudRate: 0, seed: 0xC, mode: .order)),
    // (d) chain and order tickets mixed, with attacks: an attack whose
    // precondition does not hold falls back to a valid payment, so a fraud
    // rate of 0.056 gives about 5 % bad payment records (measured; the
    // figure is in the benchmark's log line).
    Scenario(id: "d", title: "mixed 5% bad", spec: BatchSpec(
        tickets: scaled(1_000_000), payments: scaled(10_000_000), fraudRate: 0.056, seed: 0xD, mode: .mixed)),
]

/// A generated batch in memory, with what verifying it must give.
final class LoadedBatch: @unchecked Sendable {
    let scenario: Scenario
    let path: String
    let bytes: UnsafeMutableRawBufferPointer
    let meta: BatchMeta
    let merchantKey: SecretKey

    var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(bytes) }
    var expected: BatchOutcome {
        BatchOutcome(records: meta.expected.records, accepted: meta.expected.accepted,
                     credited: meta.expected.credited, verdicts: meta.expected.verdicts.filter { $0.value > 0 })
    }

    init(_ scenario: Scenario) throws {
        self.scenario = scenario
        path = cacheDirectory + "/" + scenario.fileName
        let fm = FileManager.default
        if !fm.fileExists(atPath: path) {
            log("generating \(scenario.name) into \(path)")
            let start = Date()
            let temporary = path + ".tmp-\(getpid())"
            var lastReport = 0
            _ = try BatchGenerator.write(scenario.spec, to: temporary) { done, total in
                let percent = done * 100 / max(total, 1)
                if percent >= lastReport + 10 { lastReport = percent; log("  \(percent) %") }
            }
            // The meta first: a batch file in the cache always has its .json.
            guard rename(temporary + ".json", path + ".json") == 0, rename(temporary, path) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
            log(String(format: "  generated in %.1f s", Date().timeIntervalSince(start)))
        }
        let metaData = try Data(contentsOf: URL(fileURLWithPath: path + ".json"))
        meta = try JSONDecoder().decode(BatchMeta.self, from: metaData)
        merchantKey = try SecretKey(hex: meta.key)

        // Read the whole file into one buffer (no Data in between).
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
        let size = Int(st.st_size)
        bytes = .allocate(byteCount: size, alignment: 64)
        var done = 0
        while done < size {
            let n = read(fd, bytes.baseAddress! + done, size - done)
            guard n > 0 else { bytes.deallocate(); throw POSIXError(.init(rawValue: errno) ?? .EIO) }
            done += n
        }
        let bad = meta.expected.records - meta.expected.accepted
        log("\(scenario.name): \(meta.expected.records) records, \(size) bytes, \(bad) not accepted "
            + String(format: "(%.2f %% of payments)", 100 * Double(bad) / Double(max(scenario.spec.payments, 1))))
    }

    deinit { bytes.deallocate() }

    func makeMerchant() throws -> Merchant {
        try Merchant(bankID: meta.bankID, merchant: meta.merchant, merchantKey: merchantKey, store: MerchantStore())
    }

    /// The real verifier's outcome, kept beside the batch for the naive benchmark to compare with.
    var merchantResultPath: String { path + ".merchant-result.json" }

    func saveMerchantResult(_ outcome: BatchOutcome) {
        if let data = try? JSONEncoder().encode(outcome) { try? data.write(to: URL(fileURLWithPath: merchantResultPath)) }
    }

    /// The real verifier's outcome: from its own benchmark's run if that ran
    /// before, else by running Merchant.verifyBatch once here (not measured).
    func merchantResult() throws -> BatchOutcome {
        if let data = try? Data(contentsOf: URL(fileURLWithPath: merchantResultPath)),
           let outcome = try? JSONDecoder().decode(BatchOutcome.self, from: data) {
            return outcome
        }
        log("\(scenario.name): running the merchant once to have its result to compare with")
        let outcome = BatchOutcome(try merchantVerifyBatch(makeMerchant(), buffer, now: meta.now, threads: benchThreads))
        saveMerchantResult(outcome)
        return outcome
    }
}

extension BatchOutcome {
    init(_ summary: BatchSummary) {
        var verdicts: [String: Int] = [:]
        for verdict in Verdict.allCases where summary.count(verdict) > 0 {
            verdicts[verdict.description] = summary.count(verdict)
        }
        self.init(records: summary.records, accepted: summary.accepted, credited: summary.credited, verdicts: verdicts)
    }
}

func registerEndToEndBenchmarks() {
    for scenario in scenarios {
        Benchmark(
            "\(scenario.name) | merchant",
            configuration: e2eConfiguration(scenario.tags.merging(["verifier": "Merchant.verifyBatch"]) { $1 }),
            closure: { benchmark, batch in
                let merchant: Merchant
                do { merchant = try batch.makeMerchant() } catch { benchmark.error("\(error)"); return }
                let summary: BatchSummary
                do {
                    summary = try measure(benchmark, items: batch.scenario.records, rate: Rate.recordsPerSecond) {
                        try merchantVerifyBatch(merchant, batch.buffer, now: batch.meta.now, threads: benchThreads)
                    }
                } catch { benchmark.error("verifyBatch: \(error)"); return }
                let outcome = BatchOutcome(summary)
                guard outcome == batch.expected, merchant.totalCredited == batch.expected.credited else {
                    benchmark.error("merchant: \(outcome)\n  expected: \(batch.expected)")
                    return
                }
                batch.saveMerchantResult(outcome)
            },
            setup: { try LoadedBatch(scenario) })

        Benchmark(
            "\(scenario.name) | naive",
            configuration: e2eConfiguration(scenario.tags.merging(["verifier": "naive (Dictionary, OpenSSL per hash)"]) { $1 }),
            closure: { benchmark, work in
                let (batch, reference) = work
                let naive = NaiveVerifier(bankID: batch.meta.bankID, merchant: batch.meta.merchant, merchantKey: batch.merchantKey)
                let outcome = measure(benchmark, items: batch.scenario.records, rate: Rate.recordsPerSecond) {
                    naive.verify(batch: batch.buffer, now: batch.meta.now)
                }
                // Honest comparison: the same verdict counts, accepted count and credit as the real verifier.
                guard outcome == reference else {
                    benchmark.error("naive: \(outcome)\n  merchant: \(reference)")
                    return
                }
            },
            setup: { () throws -> (LoadedBatch, BatchOutcome) in
                let batch = try LoadedBatch(scenario)
                let reference = try batch.merchantResult()
                guard reference == batch.expected else {
                    throw BenchError("merchant result \(reference) differs from the generator's \(batch.expected)")
                }
                return (batch, reference)
            })
    }
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
