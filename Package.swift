// swift-tools-version:6.1
import PackageDescription

// Layering: CEngine (C, the only code that touches libsodium and OpenSSL)
// → MicropayCore (the only Swift module that imports CEngine)
// → the role modules → the `micropay` tool.
let package = Package(
    name: "Micropay",
    products: [
        .library(name: "MicropayCore", targets: ["MicropayCore"]),
        .executable(name: "micropay", targets: ["micropay"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
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
        .executableTarget(
            name: "micropay",
            dependencies: [
                "MicropayCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "MicropayCoreTests",
            dependencies: ["MicropayCore", "COpenSSL"],
            resources: [.copy("Resources/v1.json")]
        ),
    ]
)
