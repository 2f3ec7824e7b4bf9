import Foundation
import Synchronization
import Testing

/// Money moves through the subcommands alone, as a user would type them.
@Suite("micropay bank, customer and merchant")
struct FlowTests {
    let dir = temporaryDirectory()

    func run(_ arguments: [String], expect status: Int32 = 0) throws -> String {
        let result = try micropay(arguments, in: dir)
        #expect(result.status == status, "micropay \(arguments.joined(separator: " ")): \(result.stderr)")
        return result.stdout
    }

    /// The number after `word` in `text` ("account 3 (customer)" → 3).
    func number(after word: String, in text: String) throws -> String {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        let index = try #require(words.firstIndex(of: word))
        return words[index + 1]
    }

    /// A bank (id 9) in `bank`, with a customer funded with `funding` (K_C in
    /// c.key) and a merchant (K_M in m.key): their account numbers.
    func bankWithAccounts(funding: Int = 100_000) throws -> (customer: String, merchant: String) {
        _ = try run(["bank", "init", "--dir", "bank", "--bank-id", "9"])
        let customer = try number(after: "account", in: try run(["bank", "open-account", "--dir", "bank", "--role", "customer", "--key-out", "c.key"]))
        let merchant = try number(after: "account", in: try run(["bank", "open-account", "--dir", "bank", "--role", "merchant", "--key-out", "m.key"]))
        _ = try run(["bank", "fund", "--dir", "bank", "--account", customer, "--amount", "\(funding)"])
        return (customer, merchant)
    }

    /// The customer's tickets for `merchant`, one per request's mode options
    /// (e.g. `["--mode", "order", "--limit", "5000"]`), requested into wallet
    /// w.db (created from c.key by the first), issued at `issued` and
    /// accepted: their serials.
    func tickets(_ requests: [[String]], customer: String, merchant: String, issued: Int) throws -> [String] {
        try requests.enumerated().map { n, mode in
            _ = try run(["customer", "request", "--wallet", "w.db", "--bank-id", "9", "--account", customer, "--key-file", "c.key",
                         "--merchant", merchant, "--lifetime", "3600", "--out", "req\(n)"] + mode)
            _ = try run(["bank", "issue", "--dir", "bank", "--request", "req\(n)", "--envelope", "env\(n)", "--ticket", "tkt\(n)",
                         "--now", "\(issued)"])
            return try number(after: "ticket", in: try run(["customer", "accept", "--wallet", "w.db", "--envelope", "env\(n)", "--ticket", "tkt\(n)"]))
        }
    }

    @Test("init, accounts, funding, tickets, payments into a batch, verify, deposit, settle, receipt, balances, refund, audit")
    func wholeFlow() throws {
        let issued = 1_900_000_000
        _ = try run(["bank", "init", "--dir", "bank", "--bank-id", "9"])
        let customer = try number(after: "account", in: try run(["bank", "open-account", "--dir", "bank", "--role", "customer", "--key-out", "c.key"]))
        let merchantOut = try run(["bank", "open-account", "--dir", "bank", "--role", "merchant"])
        let merchant = try number(after: "account", in: merchantOut)
        let merchantKey = try number(after: "key", in: merchantOut)
        #expect(merchantKey.count == 64)
        let mode = try FileManager.default.attributesOfItem(atPath: "\(dir)/c.key")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        _ = try run(["bank", "fund", "--dir", "bank", "--account", customer, "--amount", "1000000"])

        // Two tickets: a chain of 100 words of 10, orders up to 50 000.
        _ = try run(["customer", "request", "--wallet", "w.db", "--bank-id", "9", "--account", customer, "--key-file", "c.key",
                     "--mode", "chain", "--merchant", merchant, "--unit", "10", "--length", "100", "--lifetime", "3600", "--out", "r1"])
        _ = try run(["customer", "request", "--wallet", "w.db", "--mode", "order", "--merchant", merchant,
                     "--limit", "50000", "--lifetime", "3600", "--out", "r2"])
        var serials: [String] = []
        for n in 1...2 {
            _ = try run(["bank", "issue", "--dir", "bank", "--request", "r\(n)", "--envelope", "e\(n)", "--ticket", "t\(n)",
                         "--now", "\(issued)"])
            serials.append(try number(after: "ticket", in: try run(["customer", "accept", "--wallet", "w.db", "--envelope", "e\(n)", "--ticket", "t\(n)"])))
        }
        #expect(try run(["bank", "balance", "--dir", "bank", "--account", customer]).contains("balance 949000 µ"))

        // Payments: 1 + 1 + 5 units of 10, and orders of 700 and 1300; the tickets travel with the first payments.
        for units in ["1", "1", "5"] {
            _ = try run(["customer", "pay", "--wallet", "w.db", "--serial", serials[0], "--units", units, "--batch", "day.mpb"])
        }
        for amount in ["700", "1300"] {
            _ = try run(["customer", "pay", "--wallet", "w.db", "--serial", serials[1], "--amount", amount, "--batch", "day.mpb"])
        }
        let merchantArgs = ["--bank-id", "9", "--merchant", merchant, "--key", merchantKey, "--state", "m.db"]
        let verify = try parseJSON(try run(["merchant", "verify", "day.mpb"] + merchantArgs + ["--now", "\(issued + 100)", "--json"]))
        #expect(verify["records"] as? Int == 7)
        #expect(verify["accepted"] as? Int == 7)
        #expect(verify["credited"] as? Int == 70 + 2000)

        // Settlement.
        let deposit = try run(["merchant", "deposit"] + merchantArgs + ["--out", "d1", "--now", "\(issued + 200)"])
        #expect(deposit.contains("2 claims"))
        let settle = try run(["bank", "settle", "--dir", "bank", "--deposit", "d1", "--receipt", "r1.rcpt", "--now", "\(issued + 200)"])
        #expect(settle.contains("credited 2070 µ"))
        #expect(try run(["merchant", "apply-receipt"] + merchantArgs + ["--receipt", "r1.rcpt"]).contains("credited by the bank 2070 µ"))
        #expect(try run(["merchant", "deposit"] + merchantArgs + ["--out", "d2", "--now", "\(issued + 300)"]).contains("nothing to deposit"))
        #expect(try run(["bank", "balance", "--dir", "bank", "--account", merchant]).contains("balance 2070 µ"))
        #expect(try run(["bank", "balance", "--dir", "bank", "--account", customer]).contains("balance 949000 µ"))

        // Past expires + grace, what was not spent goes back: 1000 − 70 and 50 000 − 2000.
        let refund = try run(["bank", "refund-expired", "--dir", "bank", "--now", "\(issued + 3600 + 86400 + 1)"])
        #expect(refund.contains("closed 2 tickets, refunded 48930 µ"))
        #expect(try run(["bank", "balance", "--dir", "bank", "--account", customer]).contains("balance 997930 µ"))
        _ = try run(["bank", "withdraw", "--dir", "bank", "--account", merchant, "--amount", "2070"])
        #expect(try run(["bank", "audit", "--dir", "bank"]).contains("audit: consistent"))
    }

    @Test("goods with certified delivery through the subcommands")
    func goods() throws {
        let issued = 1_900_000_000
        let (customer, merchant) = try bankWithAccounts()
        let content = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        write(content, to: "\(dir)/song")
        let merchantArgs = ["--bank-id", "9", "--merchant", merchant, "--key-file", "m.key", "--state", "m.db"]
        // No price, no sale: a forgotten --price must not give the goods away.
        let unpriced = try micropay(["merchant", "seal-goods"] + merchantArgs + ["--in", "song", "--out", "song.mpg", "--item-number", "1"],
                                    in: dir)
        #expect(unpriced.status == 64 && unpriced.stderr.contains("--price"))
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/song.mpg"))
        _ = try run(["merchant", "seal-goods"] + merchantArgs + ["--in", "song", "--out", "song.mpg", "--item-number", "1",
                                                                  "--price", "2500", "--chunk", "4096"])
        let serial = try tickets([["--mode", "order", "--limit", "10000"]], customer: customer, merchant: merchant, issued: issued)[0]
        _ = try run(["customer", "pay", "--wallet", "w.db", "--serial", serial, "--amount", "2500", "--goods", "song.mpg", "--batch", "b.mpb"])
        _ = try run(["merchant", "verify", "b.mpb"] + merchantArgs + ["--now", "\(issued + 10)"])
        _ = try run(["merchant", "key-envelope"] + merchantArgs + ["--serial", serial, "--goods", "song.mpg", "--out", "song.key"])
        _ = try run(["customer", "open-goods", "--wallet", "w.db", "--stream", "song.mpg", "--key-envelope", "song.key", "--out", "song.out"])
        #expect([UInt8](FileManager.default.contents(atPath: "\(dir)/song.out") ?? Data()) == content)
    }

    @Test("refusals: a bank that does not exist, overspending, a wallet without an account, a lost or replaced master key")
    func refusals() throws {
        #expect(try micropay(["bank", "audit", "--dir", "nobank"], in: dir).status == 66)
        _ = try run(["bank", "init", "--dir", "bank", "--bank-id", "9"])
        let customer = try number(after: "account", in: try run(["bank", "open-account", "--dir", "bank", "--role", "customer", "--key-out", "c.key"]))
        let withdraw = try micropay(["bank", "withdraw", "--dir", "bank", "--account", customer, "--amount", "5"], in: dir)
        #expect(withdraw.status == 65)
        #expect(withdraw.stderr.hasPrefix("micropay: "))
        let request = try micropay(["customer", "request", "--wallet", "w.db", "--mode", "order", "--merchant", "2",
                                    "--limit", "10", "--out", "r"], in: dir)
        #expect(request.status == 64)
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/w.db"))
        // The ledger's master key gone: init makes no new one, and nothing opens it.
        try FileManager.default.moveItem(atPath: "\(dir)/bank/master.key", toPath: "\(dir)/master.aside")
        #expect(try micropay(["bank", "init", "--dir", "bank", "--bank-id", "9"], in: dir).status == 66)
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/bank/master.key"))
        // Another key in its place: refused.
        _ = try run(["bank", "init", "--dir", "other", "--bank-id", "9"])
        try FileManager.default.copyItem(atPath: "\(dir)/other/master.key", toPath: "\(dir)/bank/master.key")
        let replaced = try micropay(["bank", "audit", "--dir", "bank"], in: dir)
        #expect(replaced.status == 65)
        #expect(replaced.stderr.contains("not the one this ledger was created with"))
    }

    @Test("customer pay: an output that cannot be made costs nothing; a lost payment is sent again with --resend")
    func paymentsThatDidNotReachTheirFile() throws {
        let issued = 1_900_000_000
        let (customer, merchant) = try bankWithAccounts()
        let serials = try tickets([["--mode", "chain", "--unit", "10", "--length", "100"], ["--mode", "order", "--limit", "5000"]],
                                  customer: customer, merchant: merchant, issued: issued)
        // The wallet is customer's: another account or key given with it is refused, not ignored.
        let other = try micropay(["customer", "request", "--wallet", "w.db", "--account", "\(UInt64(customer)! + 7)",
                                  "--mode", "order", "--merchant", merchant, "--limit", "10", "--out", "rx"], in: dir)
        #expect(other.status == 65 && other.stderr.contains("holds account \(customer), not"))
        try String(repeating: "ab", count: 32).write(toFile: "\(dir)/other.key", atomically: true, encoding: .utf8)
        let otherKey = try micropay(["customer", "request", "--wallet", "w.db", "--key-file", "other.key",
                                     "--mode", "order", "--merchant", merchant, "--limit", "10", "--out", "rx"], in: dir)
        #expect(otherKey.status == 65 && otherKey.stderr.contains("another K_C"))
        _ = try run(["customer", "request", "--wallet", "w.db", "--account", customer, "--key-file", "c.key",
                     "--mode", "order", "--merchant", merchant, "--limit", "10", "--out", "rx"])
        let pay = ["customer", "pay", "--wallet", "w.db", "--serial"]
        // Nothing to send again before a payment; an output in a missing folder: refused before paying.
        #expect(try micropay(pay + [serials[0], "--resend", "--out", "p"], in: dir).status == 65)
        #expect(try micropay(pay + [serials[0], "--units", "3", "--out", "no/such/dir/p"], in: dir).status == 73)
        #expect(try micropay(pay + [serials[1], "--amount", "400", "--batch", "no/such/dir/day.mpb"], in: dir).status == 73)
        #expect(try run(pay + [serials[0], "--units", "1", "--batch", "day.mpb"]).contains("chain word 1 on ticket"))
        // Paid, then the file is lost before it reaches the merchant: sent again, twice.
        #expect(try run(pay + [serials[0], "--units", "2", "--out", "lost"]).contains("chain word 3"))
        #expect(try run(pay + [serials[1], "--amount", "400", "--out", "lost2"]).contains("order 1 on ticket"))
        let lost = try Data(contentsOf: URL(fileURLWithPath: "\(dir)/lost"))
        try FileManager.default.removeItem(atPath: "\(dir)/lost")
        for _ in 0..<2 {
            #expect(try run(pay + [serials[0], "--resend", "--batch", "day.mpb"]).contains("the ticket and the last payment on ticket"))
        }
        _ = try run(pay + [serials[1], "--resend", "--batch", "day.mpb"])
        _ = try run(pay + [serials[0], "--resend", "--out", "again"])
        #expect(try Data(contentsOf: URL(fileURLWithPath: "\(dir)/again")) == lost)
        #expect(try run(pay + [serials[0], "--units", "1", "--batch", "day.mpb"]).contains("chain word 4"))
        #expect(try micropay(pay + [serials[0], "--resend", "--units", "1", "--batch", "day.mpb"], in: dir).status == 64)

        // Credited once each: words 1, 3 (once, then a duplicate), 4; the order of 400.
        let verify = try parseJSON(try run(["merchant", "verify", "day.mpb", "--bank-id", "9", "--merchant", merchant,
                                            "--key-file", "m.key", "--now", "\(issued + 100)", "--json"]))
        #expect(verify["credited"] as? Int == 40 + 400)
        #expect((verify["verdicts"] as? [String: Any])?["duplicate"] as? Int == 1)

        // A refused payment on a new batch file leaves a batch (the magic alone), never an
        // empty file; racing an accepted payment onto a new file never loses that one's record.
        #expect(try micropay(pay + [serials[1], "--amount", "999999999", "--batch", "refused.mpb"], in: dir).status == 65)
        #expect(FileManager.default.contents(atPath: "\(dir)/refused.mpb") == Data("MPB1".utf8))
        for round in 0..<8 {
            let file = "race\(round).mpb"
            let statuses = Mutex<[Int32]>([])
            let racers = [pay + [serials[1], "--amount", "999999999", "--batch", file], pay + [serials[0], "--units", "1", "--batch", file]]
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                let arguments = racers[i]
                let status = (try? micropay(arguments, in: dir).status) ?? -1
                statuses.withLock { $0.append(status) }
            }
            #expect(statuses.withLock { $0.sorted() } == [0, 65], "round \(round)")
            let raced = try parseJSON(try run(["merchant", "verify", file, "--bank-id", "9", "--merchant", merchant,
                                               "--key-file", "m.key", "--now", "\(issued + 100)", "--json"]))
            #expect(raced["records"] as? Int == 1, "round \(round)")
        }
    }

    @Test("fund and withdraw with --request-id: run twice, the money moves once")
    func transfersWithRequestIDs() throws {
        _ = try run(["bank", "init", "--dir", "bank", "--bank-id", "9"])
        let customer = try number(after: "account", in: try run(["bank", "open-account", "--dir", "bank", "--role", "customer"]))
        let fund = ["bank", "fund", "--dir", "bank", "--account", customer, "--amount", "9000", "--request-id", "in-7"]
        #expect(try run(fund).hasPrefix("funded account \(customer) with 9000 µ"))
        #expect(try run(fund).hasPrefix("already funded (request id in-7) account \(customer) with 9000 µ (0.009000); balance 9000 µ"))
        let withdraw = ["bank", "withdraw", "--dir", "bank", "--account", customer, "--amount", "4000", "--request-id", "out-7"]
        #expect(try run(withdraw).hasPrefix("withdrew 4000 µ"))
        #expect(try run(withdraw).hasPrefix("already withdrew (request id out-7) 4000 µ (0.004000) from account \(customer); balance 5000 µ"))
        // The id taken by another transfer, or not an id: refused, nothing moved.
        let reused = try micropay(["bank", "fund", "--dir", "bank", "--account", customer, "--amount", "1", "--request-id", "in-7"], in: dir)
        #expect(reused.status == 65)
        #expect(reused.stderr == "micropay: bank: request id \"in-7\" was already used to fund 9000 (account \(customer))\n")
        let spaced = try micropay(["bank", "fund", "--dir", "bank", "--account", customer, "--amount", "1", "--request-id", "in 8"], in: dir)
        #expect(spaced.status == 65)
        #expect(try run(["bank", "balance", "--dir", "bank", "--account", customer]).contains("5000 µ"))
        #expect(try run(["bank", "audit", "--dir", "bank"]).contains("audit: consistent"))
    }

    @Test("every command has --help with an example")
    func help() throws {
        let commands = [["demo"], ["bank", "init"], ["bank", "resolve-dispute"], ["bank", "open-account"], ["bank", "fund"], ["bank", "withdraw"],
                        ["bank", "issue"], ["bank", "settle"], ["bank", "refund-expired"], ["bank", "balance"], ["bank", "audit"],
                        ["customer", "request"], ["customer", "accept"], ["customer", "pay"], ["customer", "open-goods"],
                        ["merchant", "verify"], ["merchant", "deposit"], ["merchant", "apply-receipt"], ["merchant", "seal-goods"],
                        ["merchant", "key-envelope"], ["gen", "batch"], ["selftest"]]
        for command in commands {
            let result = try micropay(command + ["--help"], in: dir)
            #expect(result.status == 0)
            #expect(result.stdout.contains("Example:") && result.stdout.contains("micropay \(command.joined(separator: " "))"),
                    "\(command) --help")
        }
    }
}
