import Foundation
import Testing

/// Deposits and Receipts through the subcommands, when things go wrong.
extension FlowTests {
    static let issued = 1_900_000_000

    /// A bank, a customer with a chain ticket of 100 words of 10 for a
    /// merchant, and a payment of `units` verified into the merchant's state
    /// `m.db`; returns the merchant's arguments, the customer's serial and a
    /// function paying and verifying more units.
    func merchantWithPayment(units: Int) throws -> (merchant: [String], pay: (Int) throws -> Void) {
        let (customer, merchant) = try bankWithAccounts()
        let serial = try tickets([["--mode", "chain", "--unit", "10", "--length", "100"]], customer: customer, merchant: merchant,
                                 issued: Self.issued)[0]
        let merchantArgs = ["--bank-id", "9", "--merchant", merchant, "--key-file", "m.key", "--state", "m.db"]
        var day = 0
        let pay = { (units: Int) throws in
            day += 1
            _ = try run(["customer", "pay", "--wallet", "w.db", "--serial", serial, "--units", "\(units)", "--batch", "day\(day).mpb"])
            _ = try run(["merchant", "verify", "day\(day).mpb"] + merchantArgs + ["--now", "\(Self.issued + 10)"])
        }
        try pay(units)
        return (merchantArgs, pay)
    }

    @Test("deposit: an --out that cannot be created records nothing; --resend writes a pending Deposit again, byte for byte")
    func depositOutputAndResend() throws {
        let (merchant, _) = try merchantWithPayment(units: 5)
        let now = ["--now", "\(Self.issued + 100)"]
        // The output cannot be created: nothing is recorded, and the next run deposits the payment.
        for out in ["missing/d1.dep", "."] {
            let failed = try micropay(["merchant", "deposit"] + merchant + now + ["--out", out], in: dir)
            #expect(failed.status == 73, "\(out): \(failed.stderr)")
        }
        #expect(try run(["merchant", "deposit"] + merchant + now + ["--out", "d1.dep"]).contains("deposit batch 1, 1 claims for 50 µ"))
        let first = try #require(FileManager.default.contents(atPath: "\(dir)/d1.dep"))
        #expect(try run(["merchant", "deposit"] + merchant + now + ["--out", "d2.dep"])
                    == "nothing to deposit\npending (no receipt applied): batch 1; write one again with --resend BATCH\n")
        #expect(!FileManager.default.fileExists(atPath: "\(dir)/d2.dep"))

        // The file is lost: the pending Deposit is written again as it was made, and settles.
        try FileManager.default.removeItem(atPath: "\(dir)/d1.dep")
        #expect(try run(["merchant", "deposit"] + merchant + ["--resend", "1", "--out", "again.dep"]).contains("batch 1 again"))
        #expect(FileManager.default.contents(atPath: "\(dir)/again.dep") == first)
        _ = try run(["bank", "settle", "--dir", "bank", "--deposit", "again.dep", "--receipt", "r1.rcpt", "--now", "\(Self.issued + 200)"])
        // Sent twice, answered the same.
        _ = try run(["bank", "settle", "--dir", "bank", "--deposit", "again.dep", "--receipt", "r1b.rcpt", "--now", "\(Self.issued + 300)"])
        #expect(FileManager.default.contents(atPath: "\(dir)/r1.rcpt") == FileManager.default.contents(atPath: "\(dir)/r1b.rcpt"))
        #expect(try run(["merchant", "apply-receipt"] + merchant + ["--receipt", "r1.rcpt"]).contains("credited by the bank 50 µ"))

        // Settled, or never made: not pending, refused.
        for batch in ["1", "7"] {
            let refused = try micropay(["merchant", "deposit"] + merchant + ["--resend", batch, "--out", "x.dep"], in: dir)
            #expect(refused.status == 65, "\(batch): \(refused.stderr)")
            #expect(!FileManager.default.fileExists(atPath: "\(dir)/x.dep"))
        }
        #expect(try micropay(["merchant", "deposit"] + merchant + now + ["--resend", "1", "--out", "x.dep"], in: dir).status == 64)
        let help = try run(["merchant", "deposit", "--help"])
        #expect(help.contains("micropay merchant deposit") && help.contains("--resend 1 --out d1.dep"))
    }

    @Test("apply-receipt: Receipts applied in another order than the bank settled them still add up (exit 0)")
    func receiptsOutOfOrder() throws {
        let (merchant, pay) = try merchantWithPayment(units: 5)
        let now = ["--now", "\(Self.issued + 100)"]
        _ = try run(["merchant", "deposit"] + merchant + now + ["--out", "d1.dep"])
        try pay(3)
        _ = try run(["merchant", "deposit"] + merchant + now + ["--out", "d2.dep"])
        for n in 1...2 {
            _ = try run(["bank", "settle", "--dir", "bank", "--deposit", "d\(n).dep", "--receipt", "r\(n).rcpt", "--now", "\(Self.issued + 200)"])
        }
        let second = try run(["merchant", "apply-receipt"] + merchant + ["--receipt", "r2.rcpt"])
        #expect(second.contains("credited by the bank 30 µ (0.000030); expected: not known until the receipt of batch 1 is applied"))
        let first = try run(["merchant", "apply-receipt"] + merchant + ["--receipt", "r1.rcpt"])
        #expect(first.contains("credited by the bank 50 µ (0.000050); expected 50 µ"))
        #expect(first.contains("batch 2, applied before: credited by the bank 30 µ (0.000030); expected 30 µ"))
    }
}
