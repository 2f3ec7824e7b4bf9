import Benchmark
import Foundation
import MicropayCore

// MARK: - Knobs (environment)

/// MICROPAY_BENCH_SCALE (default 1.0) multiplies the sizes of the end-to-end
/// batches: 1.0 is the real 10 M-payment figure, 0.01 a quick run. The size
/// actually used is in every benchmark's name.
let benchScale: Double = {
    let raw = ProcessInfo.processInfo.environment["MICROPAY_BENCH_SCALE"] ?? "1.0"
    guard let value = Double(raw), value > 0, value <= 10 else {
        fatalError("MICROPAY_BENCH_SCALE must be a number in (0, 10], not \(raw)")
    }
    return value
}()

/// MICROPAY_BENCH_RUNS (default 3): measured runs of each end-to-end benchmark.
let e2eRuns: Int = Int(ProcessInfo.processInfo.environment["MICROPAY_BENCH_RUNS"] ?? "") ?? 3

/// Where generated batches are kept between benchmark processes
/// (package-benchmark runs each benchmark in a process of its own):
/// MICROPAY_BENCH_CACHE, default $TMPDIR/micropay-bench.
let cacheDirectory: String = {
    let env = ProcessInfo.processInfo.environment
    let dir = env["MICROPAY_BENCH_CACHE"]
        ?? ((env["TMPDIR"].map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 } ?? "/tmp") + "/micropay-bench")
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}()

/// Counts as names read: 1000 → "1k", 10_000_000 → "10M", 123 → "123".
func short(_ n: Int) -> String {
    if n >= 1_000_000, n % 1_000_000 == 0 { return "\(n / 1_000_000)M" }
    if n >= 1_000_000, n % 100_000 == 0 { return "\(Double(n) / 1e6)M" }
    if n >= 1000, n % 1000 == 0 { return "\(n / 1000)k" }
    return "\(n)"
}

func scaled(_ n: Int, minimum: Int = 1) -> Int { max(minimum, Int((Double(n) * benchScale).rounded())) }

func log(_ message: String) {
    FileHandle.standardError.write(Data("[micropay-bench] \(message)\n".utf8))
}

// MARK: - Metrics

/// Domain rates, computed per iteration from the measured interval.
enum Rate {
    static let stepsPerSecond = BenchmarkMetric.custom("chain steps/s", polarity: .prefersLarger, useScalingFactor: false)
    static let tagsPerSecond = BenchmarkMetric.custom("tags/s", polarity: .prefersLarger, useScalingFactor: false)
    static let opensPerSecond = BenchmarkMetric.custom("ticket opens/s", polarity: .prefersLarger, useScalingFactor: false)
    static let recordsPerSecond = BenchmarkMetric.custom("records/s", polarity: .prefersLarger, useScalingFactor: false)
}

/// Wall clock, CPU, allocations and peak memory, plus one domain rate.
func metrics(_ rate: BenchmarkMetric) -> [BenchmarkMetric] {
    [.wallClock, .cpuTotal, .mallocCountTotal, .peakMemoryResident, rate]
}

let microConfiguration = { (rate: BenchmarkMetric, tags: [String: String]) in
    Benchmark.Configuration(
        metrics: metrics(rate), tags: tags, timeUnits: .milliseconds,
        warmupIterations: 1, maxDuration: .seconds(4), maxIterations: 30)
}

let e2eConfiguration = { (tags: [String: String]) in
    Benchmark.Configuration(
        metrics: metrics(Rate.recordsPerSecond), tags: tags, timeUnits: .milliseconds,
        warmupIterations: 0, maxDuration: .seconds(4 * 3600), maxIterations: e2eRuns)
}

/// Times `body` between the benchmark's start and stop marks and reports
/// `items / seconds` on `rate`. Work before and after is not measured.
@inline(__always)
func measure<R>(_ benchmark: Benchmark, items: Int, rate: BenchmarkMetric, _ body: () throws -> R) rethrows -> R {
    let clock = ContinuousClock()
    benchmark.startMeasurement()
    let start = clock.now
    let result = try body()
    let elapsed = start.duration(to: clock.now)
    benchmark.stopMeasurement()
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    benchmark.measurement(rate, Int((Double(items) / seconds).rounded()))
    // Each benchmark runs in a process of its own: the first
    // `warmupIterations` calls here are its warm-up, which the tool drops too.
    measuredCalls += 1
    if measuredCalls > benchmark.configuration.warmupIterations {
        recordRaw(benchmark: benchmark.baseName, rate: rate, items: items, seconds: seconds)
    }
    return result
}

nonisolated(unsafe) private var measuredCalls = 0

/// MICROPAY_BENCH_RESULTS: a JSON-lines file that every measured iteration
/// is appended to (benchmark, rate name, items, seconds, rate, scale), exact
/// figures for summarize.py, whatever units the tool's tables round to.
let rawResultsPath: String? = ProcessInfo.processInfo.environment["MICROPAY_BENCH_RESULTS"]

func recordRaw(benchmark: String, rate: BenchmarkMetric, items: Int, seconds: Double) {
    guard let rawResultsPath else { return }
    struct Line: Encodable {
        let benchmark: String, rate: String, items: Int, seconds: Double, per_second: Double, scale: Double, pid: Int32
    }
    let line = Line(benchmark: benchmark, rate: rate.description, items: items, seconds: seconds,
                    per_second: Double(items) / seconds, scale: benchScale, pid: getpid())
    guard var data = try? JSONEncoder().encode(line) else { return }
    data.append(0x0A)
    let fd = open(rawResultsPath, O_WRONLY | O_APPEND | O_CREAT, 0o644)
    guard fd >= 0 else { return }
    defer { close(fd) }
    _ = data.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
}

// MARK: - Big-endian helpers for the naive code

extension Array where Element == UInt8 {
    mutating func appendBE(_ v: UInt32) { append(contentsOf: [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)]) }
}
