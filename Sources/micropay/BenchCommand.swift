import ArgumentParser
import Foundation
import MicropayBaseline
import MicropayCore
import MicropayMerchant
import MicropaySimulation

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "A short built-in benchmark: kernels, end-to-end verification, the naive baseline.",
        discussion: """
            Measures, in this process and this run: chain steps and order-tag checks
            per second on one core for every lane kernel this CPU runs, and for the
            naive baseline (one OpenSSL SHA256()/HMAC() call per token); then
            end-to-end batch verification (tickets already registered, state in
            memory, commit excluded) of generated batches, on one thread and on
            all, beside the naive baseline (a Swift dictionary of states and one
            OpenSSL call per token) verifying the same batch, whose results must
            match. Each figure is the median of --runs runs. --json prints the
            figures as one JSON object (the input of Benchmarks/plot.py).

            Example:
              micropay bench
              micropay bench --scale 5 --json > bench.json && python3 Benchmarks/plot.py bench.json
            """
    )

    @Flag(help: "Print one JSON object.")
    var json = false
    @Option(help: "Multiply the batch sizes (1 = 2 M payment records per batch; the default 0.25 runs in about a minute).")
    var scale: Double = 0.25
    @Option(help: "Runs per figure; the median is reported.")
    var runs: Int = 3

    func validate() throws {
        guard scale > 0 && scale <= 100 else { throw ValidationError("--scale must be in (0, 100]") }
        guard (1...50).contains(runs) else { throw ValidationError("--runs must be 1...50") }
    }

    func run() throws {
        try reportingErrors {
            var report = BenchReport(scale: scale, runs: runs)
            report.machine = machineDescription()
            report.shaKernel = Engine.activeSHA256Kernel.description
            report.laneKernel = Engine.activeLaneKernel.description
            say("machine: \(report.machine); SHA-256 kernel \(report.shaKernel), lane kernel \(report.laneKernel)")
            measureKernels(into: &report)
            try measureEndToEnd(into: &report)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            }
        }
    }

    private func say(_ line: String) { if !json { print(line) } }

    /// A table row: the first column left-aligned, the others right-aligned.
    private func row(_ cells: [String], widths: [Int]) -> String {
        "  " + zip(cells, widths).enumerated().map { i, pair in
            let (cell, width) = pair
            let pad = String(repeating: " ", count: max(0, width - cell.count))
            return i == 0 ? cell + pad : pad + cell
        }.joined(separator: " ")
    }

    /// The median of `runs` timings of `body`, in seconds.
    private func median(_ body: () throws -> Double) rethrows -> Double {
        var times: [Double] = []
        for _ in 0..<runs { times.append(try body()) }
        times.sort()
        return times[times.count / 2]
    }

    private func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    // MARK: Kernels

    private func measureKernels(into report: inout BenchReport) {
        var random = SplitMix64(seed: 7)
        func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255, using: &random) } }
        // 1024 chains walked 256 steps each.
        let chains = 1024, steps: UInt32 = 256
        let claims: [HashChain.Claim] = (0..<chains).map { _ in
            let id = Bytes12(bytes(12))!, word = Bytes32(bytes(32))!
            return HashChain.Claim(chainID: id, index: steps, word: word, last: 0,
                                   lastWord: HashChain.walk(chainID: id, from: steps, word: word, to: 0))
        }
        // 65 536 orders over 1024 keys.
        let keys = (0..<1024).map { _ in MACKey(try! SecretKey(bytes: bytes(32))) }
        let orderCount = 65_536
        var records: [UInt8] = []
        var recordKeys: [MACKey] = []
        var rawKeys: [[UInt8]] = []
        let rawKeyBytes = (0..<1024).map { _ in bytes(32) }
        let rawMACKeys = rawKeyBytes.map { MACKey(try! SecretKey(bytes: $0)) }
        for r in 0..<orderCount {
            let body = bytes(60)
            records += body + rawMACKeys[r % 1024].mac128(label: .order, body).bytes
            recordKeys.append(rawMACKeys[r % 1024])
            rawKeys.append(rawKeyBytes[r % 1024])
        }
        _ = keys
        say("\n" + row(["per core", "chain steps/s", "order tags/s"], widths: [30, 14, 14]))
        for kernel in Engine.availableLaneKernels {
            let chainTime = median { seconds { precondition(try! HashChain.verifyBatch(claims, kernel: kernel).allSatisfy { $0 }) } }
            let tagTime = median {
                seconds {
                    let ok = try! records.withUnsafeBytes {
                        try MACKey.verifyBatch(label: .order, keys: recordKeys, records: $0, stride: 76, macLength: 60, kernel: kernel)
                    }
                    precondition(ok.allSatisfy { $0 })
                }
            }
            let rates = KernelRate(kernel: kernel.description,
                                   chainStepsPerSecond: Double(chains) * Double(steps) / chainTime,
                                   orderTagsPerSecond: Double(orderCount) / tagTime)
            report.kernels.append(rates)
            say(row([kernel.description, Progress.human(rates.chainStepsPerSecond), Progress.human(rates.orderTagsPerSecond)],
                    widths: [30, 14, 14]))
        }
        let naiveChain = median {
            seconds {
                for claim in claims.prefix(256) {
                    precondition(naiveChainWalk(chainID: claim.chainID.bytes, from: claim.index, word: claim.word.bytes, to: 0)
                                 == claim.lastWord.bytes)
                }
            }
        }
        let naiveTags = median {
            seconds {
                for r in 0..<16_384 {
                    precondition(naiveTagIsValid(key: rawKeys[r], record: Array(records[(76 * r)..<(76 * r + 76)])))
                }
            }
        }
        report.naiveKernel = KernelRate(kernel: "naive OpenSSL per token",
                                        chainStepsPerSecond: 256 * Double(steps) / naiveChain,
                                        orderTagsPerSecond: 16_384 / naiveTags)
        say(row(["naive (OpenSSL per token)", Progress.human(report.naiveKernel!.chainStepsPerSecond),
                 Progress.human(report.naiveKernel!.orderTagsPerSecond)], widths: [30, 14, 14]))
    }

    // MARK: End to end

    private struct Batch {
        let spec: BatchSpec
        let key: SecretKey
        let setup: [UInt8]
        let payments: [UInt8]
        let records: Int
    }

    /// A generated batch cut in two: its tickets (registered before timing) and its payments.
    private func makeBatch(_ spec: BatchSpec) throws -> Batch {
        var bytes: [UInt8] = []
        let generated = try BatchGenerator.generate(spec) { bytes.append(contentsOf: $0) }
        var offset = 4
        for _ in 0..<spec.tickets { offset += 2 + (Int(bytes[offset]) << 8 | Int(bytes[offset + 1])) }
        return Batch(spec: spec, key: generated.merchantKey, setup: Array(bytes[0..<offset]),
                     payments: BatchFile.magic + bytes[offset...], records: generated.expectation.records - spec.tickets)
    }

    private func verifyFast(_ batch: Batch, threads: Int) throws -> (seconds: Double, outcome: BatchSummary) {
        let merchant = try Merchant(bankID: batch.spec.bankID, merchant: batch.spec.merchant, merchantKey: batch.key,
                                    store: try MerchantStore())
        _ = try batch.setup.withUnsafeBytes { buffer in
            try Result { () throws(MerchantError) in try merchant.verifyBatch(buffer, now: batch.spec.now, threads: threads) }.get()
        }
        let summary = try batch.payments.withUnsafeBytes { buffer in
            try Result { () throws(MerchantError) in try merchant.verifyBatch(buffer, now: batch.spec.now, threads: threads) }.get()
        }
        return (summary.verifySeconds, summary)
    }

    private func verifyNaive(_ batch: Batch) -> (seconds: Double, outcome: BatchOutcome) {
        let naive = NaiveVerifier(bankID: batch.spec.bankID, merchant: batch.spec.merchant, merchantKey: batch.key)
        _ = batch.setup.withUnsafeBytes { naive.verify(batch: $0, now: batch.spec.now) }
        var outcome = BatchOutcome()
        let time = seconds { outcome = batch.payments.withUnsafeBytes { naive.verify(batch: $0, now: batch.spec.now) } }
        return (time, outcome)
    }

    private func measureEndToEnd(into report: inout BenchReport) throws {
        let cores = Merchant.defaultThreads // every core, up to the verifier's 256
        let payments = Int(2_000_000 * scale)
        let cases: [(String, BatchSpec)] = [
            ("chain payments, distance 1, 1 k live tickets", BatchSpec(tickets: 1000, payments: payments, seed: 1, mode: .chain)),
            ("chain payments, distance 1, \(Progress.human(Double(payments / 10))) live tickets interleaved",
             BatchSpec(tickets: max(payments / 10, 1), payments: payments, seed: 2, mode: .chain)),
            ("orders, \(Progress.human(Double(payments / 10))) live tickets",
             BatchSpec(tickets: max(payments / 10, 1), payments: payments, seed: 3, mode: .order)),
            ("mixed, 5 % bad records", BatchSpec(tickets: 10_000, payments: payments, fraudRate: 0.05, seed: 4, mode: .mixed)),
        ]
        say("\nend to end (records/s; state in memory, commit excluded)")
        say(row(["batch", "1 thread", "\(cores) threads", "naive", "ratio"], widths: [54, 10, 10, 10, 8]))
        for (name, spec) in cases {
            let batch = try makeBatch(spec)
            var one = 0.0, all = 0.0
            var fastOutcome = BatchSummary()
            one = try median { let r = try verifyFast(batch, threads: 1); fastOutcome = r.outcome; return r.seconds }
            all = try median { try verifyFast(batch, threads: cores).seconds }
            var naiveOutcome = BatchOutcome()
            let naive = median { let r = verifyNaive(batch); naiveOutcome = r.outcome; return r.seconds }
            guard naiveOutcome.accepted == fastOutcome.accepted, naiveOutcome.credited == fastOutcome.credited,
                  naiveOutcome.records == fastOutcome.records else {
                throw ToolError(.checkFailed, "the naive baseline disagrees with the verifier on \(name): \(naiveOutcome)")
            }
            let result = EndToEnd(batch: name, records: batch.records, tickets: spec.tickets,
                                  oneThread: Double(batch.records) / one, allThreads: Double(batch.records) / all,
                                  threads: cores, naive: Double(batch.records) / naive)
            report.endToEnd.append(result)
            say(row([name, Progress.human(result.oneThread), Progress.human(result.allThreads), Progress.human(result.naive),
                     String(format: "%.1fx", result.allThreads / result.naive)], widths: [54, 10, 10, 10, 8]))
        }
        // The sweeps behind the plots: threads on the first batch, live tickets at one thread.
        let sweep = try makeBatch(BatchSpec(tickets: 1000, payments: payments, seed: 5, mode: .chain))
        for threads in Array(Set([1, 2, cores])).sorted() {
            let time = try median { try verifyFast(sweep, threads: threads).seconds }
            report.threads.append(.init(threads: threads, tickets: nil, recordsPerSecond: Double(sweep.records) / time))
        }
        // From one customer's stream alone (one serial fills every lane) to a table far past the caches.
        for tickets in [1, 10, 100, 1_000, 10_000, 100_000, max(payments / 2, 100_001)] where tickets <= payments {
            let batch = try makeBatch(BatchSpec(tickets: tickets, payments: payments, seed: 6, mode: .chain))
            let time = try median { try verifyFast(batch, threads: 1).seconds }
            report.liveTickets.append(.init(threads: 1, tickets: tickets, recordsPerSecond: Double(batch.records) / time))
        }
        say("\nthreads:      " + report.threads.map { "\($0.threads): \(Progress.human($0.recordsPerSecond))/s" }.joined(separator: ", "))
        say("live tickets: " + report.liveTickets.map { "\($0.tickets!): \(Progress.human($0.recordsPerSecond))/s" }.joined(separator: ", "))
    }

    private func machineDescription() -> String {
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }?
            .split(separator: ":").last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown CPU"
        return "\(cpu), \(ProcessInfo.processInfo.activeProcessorCount) cores"
    }
}

struct KernelRate: Encodable {
    let kernel: String
    let chainStepsPerSecond: Double
    let orderTagsPerSecond: Double
    enum CodingKeys: String, CodingKey {
        case kernel, chainStepsPerSecond = "chain_steps_per_second", orderTagsPerSecond = "order_tags_per_second"
    }
}

struct EndToEnd: Encodable {
    let batch: String
    let records: Int
    let tickets: Int
    let oneThread: Double
    let allThreads: Double
    let threads: Int
    let naive: Double
    enum CodingKeys: String, CodingKey {
        case batch, records, tickets, threads
        case oneThread = "records_per_second_1_thread", allThreads = "records_per_second_all_threads"
        case naive = "naive_records_per_second"
    }
}

struct SweepPoint: Encodable {
    let threads: Int
    let tickets: Int?
    let recordsPerSecond: Double
    enum CodingKeys: String, CodingKey { case threads, tickets, recordsPerSecond = "records_per_second" }
}

/// The --json object; `threads` and `live_tickets` are what Benchmarks/plot.py draws.
struct BenchReport: Encodable {
    var schema = "micropay-throughput/1"
    var source = "micropay bench"
    var command: String
    var date = ISO8601DateFormatter().string(from: Date())
    var machine = ""
    var shaKernel = ""
    var laneKernel = ""
    var scale: Double
    var runs: Int
    var kernels: [KernelRate] = []
    var naiveKernel: KernelRate?
    var endToEnd: [EndToEnd] = []
    var threads: [SweepPoint] = []
    var liveTickets: [SweepPoint] = []

    init(scale: Double, runs: Int) {
        self.scale = scale
        self.runs = runs
        command = (["micropay"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
    }

    enum CodingKeys: String, CodingKey {
        case schema, source, command, date, machine, scale, runs, kernels
        case shaKernel = "sha256_kernel", laneKernel = "lane_kernel", naiveKernel = "naive_kernel"
        case endToEnd = "end_to_end", threads, liveTickets = "live_tickets"
    }
}
