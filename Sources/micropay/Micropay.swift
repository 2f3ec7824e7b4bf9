import ArgumentParser
import MicropayCore

@main
struct Micropay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "micropay",
        abstract: "Micropayments with tickets, hash chains and MAC'd orders (Tang 1995, PayWord).",
        subcommands: [DemoCommand.self, BankCommand.self, CustomerCommand.self, MerchantCommand.self, GenCommand.self, SelfTestCommand.self, BenchCommand.self]
    )
}
