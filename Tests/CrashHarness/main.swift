// A child process for the crash tests, which kill it with SIGKILL mid-work
// and then check what it left on disk. The first argument names the role.
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "bank": exit(runBankHarness(Array(arguments.dropFirst())))
case "merchant": exit(runMerchantHarness(Array(arguments.dropFirst())))
default:
    FileHandle.standardError.write(Data("usage: CrashHarness bank|merchant ...\n".utf8))
    exit(2)
}
