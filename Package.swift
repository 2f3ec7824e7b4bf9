// swift-tools-version:6.1
import PackageDescription

// Layering: CEngine (C, the only code that touches libsodium and OpenSSL)
// → MicropayCore (the only Swift module that imports CEngine)
// → the role modules → the `micropay` tool.
let package = Package(
    name: "Micropay",
    products: [
        .library(name: "MicropayCore", targets: ["MicropayCore"]),
        .library(name: "MicropayBank", targets: ["MicropayBank"]),
        .library(name: "MicropayCustomer", targets: ["MicropayCustomer"]),
        .library(name: "MicropayMerchant", targets: ["MicropayMerchant"]),
        .library(name: "MicropaySimulation", targets: ["MicropaySimulation"]),
        .library(name: "MicropayBaseline", targets: ["MicropayBaseline"]),
        .executable(name: "micropay", targets: ["micropay"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "CEngine",
            dependencies: ["CSodium", "COpenSSL"],
            path: "CEngine",
            linkerSettings: [.linkedLibrary("sodium"), .linkedLibrary("crypto")]
        ),
        .target(
            name: "MicropayCore",
            dependencies: ["CEngine"]
        ),
        // The three roles, each over the core only, each with its own SQLite store.
        .target(
            name: "MicropayBank",
            dependencies: ["MicropayCore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .target(
            name: "MicropayCustomer",
            dependencies: ["MicropayCore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .target(
            name: "MicropayMerchant",
            dependencies: ["MicropayCore", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // Generated batches and scenarios with known outcomes (tool, tests, benchmarks).
        .target(
            name: "MicropaySimulation",
            dependencies: ["MicropayCore", "MicropayCustomer"]
        ),
        // The obvious alternative, for benchmarks: one OpenSSL call per token
        // and a Swift dictionary of states.
        .target(
            name: "MicropayBaseline",
            dependencies: ["MicropayCore", "COpenSSL"]
        ),
        .executableTarget(
            name: "micropay",
            dependencies: [
                "MicropayCore", "MicropayBank", "MicropayCustomer", "MicropayMerchant", "MicropaySimulation",
                "MicropayBaseline",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "MicropayCoreTests",
            dependencies: ["MicropayCore", "COpenSSL"],
            resources: [.copy("Resources/v1.json")]
        ),
        // A child process for the crash tests: they kill it with SIGKILL mid-work.
        .executableTarget(
            name: "CrashHarness",
            dependencies: ["MicropayBank", "MicropayMerchant", "MicropayCustomer"],
            path: "Tests/CrashHarness"
        ),
        .testTarget(
            name: "MicropayBankTests",
            dependencies: ["MicropayBank", "CrashHarness"],
            // ledger-v1: a bank's folder written by the release before transfers had request ids.
            resources: [.copy("Resources/v1.json"), .copy("Resources/ledger-v1")]
        ),
        .testTarget(
            name: "MicropayMerchantTests",
            dependencies: ["MicropayMerchant", "MicropaySimulation", "CrashHarness"],
            resources: [.copy("Resources/v1.json")]
        ),
        .testTarget(
            name: "MicropayCustomerTests",
            // GRDB: to hold a wallet's write lock from outside, as another process would.
            dependencies: ["MicropayCustomer", .product(name: "GRDB", package: "GRDB.swift")],
            // wallet-v1: a wallet written by the release before wallets kept their last payments.
            resources: [.copy("Resources/v1.json"), .copy("Resources/wallet-v1")]
        ),
        // The tool driven as a process, as its users run it.
        .testTarget(
            name: "MicropayToolTests",
            dependencies: ["micropay", "MicropaySimulation"],
            resources: [.copy("Resources/v1.json")]
        ),
        // The three roles together: money moves end to end.
        .testTarget(
            name: "MicropayEndToEndTests",
            dependencies: ["MicropayBank", "MicropayCustomer", "MicropayMerchant"]
        ),
    ]
)
