import Benchmark
import MicropayCore

// Micropay's benchmarks (package-benchmark). Each benchmark runs in a process
// of its own; see Benchmarks/README.md for how to run them and what they measure.
let benchmarks: @Sendable () -> Void = {
    registerKernelBenchmarks()
    registerTicketBenchmarks()
    registerEndToEndBenchmarks()
}
