import ArgumentParser
import MicropayCore

struct SelfTestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Run the engine's known-answer checks on this CPU.",
        discussion: """
            Checks SHA-256 (NIST), HMAC-SHA-256 (RFC 4231), XChaCha20-Poly1305,
            AES-256-GCM and the protocol's own vectors, and every SHA-256 kernel
            this CPU runs against the portable one. Exit status 0 only if all pass.

            Example:
              micropay selftest
            """
    )

    func run() throws {
        print("SHA-256 kernel: \(Engine.activeSHA256Kernel) (available: \(Engine.availableSHA256Kernels.map(\.description).joined(separator: ", ")))")
        let results = SelfTest.run()
        for result in results {
            print("\(result.passed ? "pass" : "FAIL")  \(result.name)")
        }
        let failed = results.filter { !$0.passed }.count
        print("\(results.count - failed) passed, \(failed) failed")
        if failed > 0 { throw ExitCode.failure }
    }
}
