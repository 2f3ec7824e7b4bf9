// swift-tools-version: 6.1
// Micropay's benchmarks: a package of its own, so that the root package's
// `swift build` / `swift test` never fetch or build package-benchmark.
//
//   Benchmarks/run.sh                       # everything, scale from MICROPAY_BENCH_SCALE (default 1.0)
//   swift package --package-path Benchmarks benchmark --filter 'chain steps.*'
//
// package-benchmark 1.38.1 needs swift-tools-version 6.1 here and its
// "MallocInterposer" trait for the malloc metrics; naming only that trait
// also turns off its "RuntimeInterposer" default trait, whose package is not
// needed for these metrics.
import Foundation
import PackageDescription

// The root package by path; its identity is its folder's name (a checkout
// may be called anything), so find it rather than spell it.
let rootDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
let root = rootDirectory.lastPathComponent

let package = Package(
    name: "MicropayBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "../"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "MicropayBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "MicropayCore", package: root),
                .product(name: "MicropayMerchant", package: root),
                .product(name: "MicropaySimulation", package: root),
                .product(name: "MicropayBaseline", package: root),
            ],
            path: "Benchmarks/MicropayBenchmarks",
            swiftSettings: [.swiftLanguageMode(.v5)],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
