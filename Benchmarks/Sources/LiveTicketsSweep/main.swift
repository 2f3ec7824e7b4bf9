// Records/s of Merchant.verifyBatch against the number of live tickets, as
// JSON in the schema plot.py reads (see Benchmarks/README.md):
//
//   swift run --package-path Benchmarks -c release LiveTicketsSweep \
//       [--tickets 1000,10000,100000,1000000] [--payments 2000000] [--runs 3] \
//       [--mode chain|order|mixed] [--out results.json]
//
// Each point: a batch generated in memory (not timed), then `runs` timed
// verifications, each on a fresh Merchant over an in-memory MerchantStore;
// the point is the median. The `threads` array holds what today's API can
// measure: one thread (`micropay bench --json` will add more points).
import Foundation
import MicropayCore
import MicropayMerchant
import MicropaySimulation

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("LiveTicketsSweep: \(message)\n".utf8))
    exit(2)
}

func parse<T>(_ value: String, _ option: String, _ make: (String) -> T?) -> T {
    guard let v = make(value) else { fail("bad \(option) \(value)") }
    return v
}

var ticketCounts = [1000, 10_000, 100_000, 1_000_000]
var payments = 2_000_000
var runs = 3
var mode = BatchSpec.Mode.chain
var outPath: String?
var arguments = CommandLine.arguments.dropFirst().makeIterator()
while let argument = arguments.next() {
    guard let value = arguments.next() else { fail("\(argument) needs a value") }
    switch argument {
    case "--tickets": ticketCounts = value.split(separator: ",").map { parse(String($0), argument) { Int($0) } }
    case "--payments": payments = parse(value, argument) { Int($0) }
    case "--runs": runs = parse(value, argument) { Int($0) }
    case "--mode": mode = parse(value, argument) { BatchSpec.Mode(rawValue: $0) }
    case "--out": outPath = value
    default: fail("unknown option \(argument)")
    }
}
guard runs >= 1, payments >= 0, ticketCounts.allSatisfy({ $0 >= 1 }) else { fail("bad sizes") }

func log(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

struct Point: Codable {
    var tickets: Int
    var payments: Int
    var records: Int
    var records_per_second: Double
    var runs_records_per_second: [Double]
    /// Median seconds until the last record's verdict, and from there to the
    /// return of verifyBatch (the commit of the batch's state to the store).
    var judge_seconds: Double
    var commit_seconds: Double
}

struct ThreadPoint: Codable {
    var threads: Int
    var records_per_second: Double
    var tickets: Int
}

struct Output: Codable {
    var schema = "micropay-throughput/1"
    var source: String
    var command: String
    var date: String
    var machine: String
    var lane_kernel: String
    var sha256_kernel: String
    var mode: String
    var threads: [ThreadPoint]
    var live_tickets: [Point]
}

let clock = ContinuousClock()
func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18 }
var points: [Point] = []
for tickets in ticketCounts {
    let spec = BatchSpec(tickets: tickets, payments: payments, fraudRate: 0, seed: 0x5EE9 &+ UInt64(tickets), mode: mode)
    var bytes: [UInt8] = []
    bytes.reserveCapacity((tickets * 186 + payments * 78) + 4)
    let t0 = clock.now
    let batch = try BatchGenerator.generate(spec) { chunk in bytes.append(contentsOf: chunk) }
    log("tickets \(tickets): generated \(batch.expectation.records) records in \(t0.duration(to: clock.now))")
    var rates: [Double] = []
    var judges: [Double] = []
    var commits: [Double] = []
    let total = batch.expectation.records
    for run in 1...runs {
        let merchant = try Merchant(bankID: spec.bankID, merchant: spec.merchant, merchantKey: batch.merchantKey,
                                    store: MerchantStore())
        // The time of the last verdict splits the call into judging and
        // committing; counting records in onRecord costs a few ns each.
        var seen = 0
        var lastVerdict = clock.now
        let start = clock.now
        let summary = try bytes.withUnsafeBytes {
            try merchant.verifyBatch($0, now: spec.now, tag: "sweep") { _, _ in
                seen += 1
                if seen == total { lastVerdict = clock.now }
            }
        }
        let end = clock.now
        let elapsed = start.duration(to: end)
        judges.append(seconds(start.duration(to: lastVerdict)))
        commits.append(seconds(lastVerdict.duration(to: end)))
        guard summary.records == batch.expectation.records, summary.accepted == batch.expectation.accepted,
              summary.credited == batch.expectation.credited
        else { fail("tickets \(tickets): verifier disagrees with the generator") }
        rates.append(Double(summary.records) / seconds(elapsed))
        log("  run \(run): \(summary.records) records in \(elapsed): \(Int(rates.last!)) records/s "
            + "(judging \(judges.last!) s, commit \(commits.last!) s)")
    }
    points.append(Point(tickets: tickets, payments: payments, records: batch.expectation.records,
                        records_per_second: median(rates), runs_records_per_second: rates,
                        judge_seconds: median(judges), commit_seconds: median(commits)))
}

let formatter = ISO8601DateFormatter()
var system = utsname()
_ = uname(&system)
let machine = withUnsafeBytes(of: &system.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
    .split(separator: "\n").first { $0.hasPrefix("model name") }?
    .split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "unknown"
let first = points.first!
let output = Output(
    source: "LiveTicketsSweep (Merchant.verifyBatch, single thread, in-memory MerchantStore; median of \(runs) runs)",
    command: "swift run --package-path Benchmarks -c release LiveTicketsSweep " + CommandLine.arguments.dropFirst().joined(separator: " "),
    date: formatter.string(from: Date()),
    machine: "\(cpu), \(ProcessInfo.processInfo.activeProcessorCount) cores, \(machine)",
    lane_kernel: Engine.activeLaneKernel.description,
    sha256_kernel: Engine.activeSHA256Kernel.description,
    mode: mode.rawValue,
    threads: [ThreadPoint(threads: 1, records_per_second: first.records_per_second, tickets: first.tickets)],
    live_tickets: points)
let encoder = JSONEncoder()
encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
let json = try encoder.encode(output)
if let outPath {
    try json.write(to: URL(fileURLWithPath: outPath))
    log("wrote \(outPath)")
} else {
    print(String(decoding: json, as: UTF8.self))
}
