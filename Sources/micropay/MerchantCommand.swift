import ArgumentParser
import Foundation
import MicropayCore
import MicropayMerchant

struct MerchantCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merchant",
        abstract: "The merchant: verify batches of tickets and payments, deposit, sell goods.",
        subcommands: [MerchantVerify.self, MerchantDeposit.self, MerchantApplyReceipt.self, MerchantSealGoods.self,
                      MerchantKeyEnvelope.self]
    )
}

/// Who the merchant is: bank, account number and K_M.
struct MerchantIdentity: ParsableArguments {
    @Option(name: .customLong("bank-id"), help: "The bank's id (u32).")
    var bankID: UInt32
    @Option(help: "The merchant's account number at the bank.")
    var merchant: UInt64
    @Option(help: ArgumentHelp("K_M as 64 hex digits.", valueName: "hex"))
    var key: String?
    @Option(name: .customLong("key-file"), help: ArgumentHelp("A file holding K_M (64 hex digits).", valueName: "file"))
    var keyFile: String?

    func validate() throws {
        if key != nil && keyFile != nil { throw ValidationError("give either --key or --key-file, not both") }
        if key == nil && keyFile == nil { throw ValidationError("give the merchant key with --key HEX or --key-file FILE") }
    }

    func loadMerchantKey() throws -> SecretKey { try loadKey(hex: key, file: keyFile) }

    /// Opens the merchant on the SQLite state at `path` (created if missing).
    /// If this call created the file and then fails, the file is removed.
    func open(state path: String, threads: Int = Merchant.defaultThreads) throws -> Merchant {
        let key = try loadMerchantKey()
        let existed = FileManager.default.fileExists(atPath: path)
        // A new state's ticket log; one already there belongs to someone else and stays.
        let log = path + ".tickets.1"
        let logExisted = FileManager.default.fileExists(atPath: log)
        do {
            let store = try merchantCall("\(path)") { () throws(MerchantError) in try MerchantStore(path: path) }
            return try merchantCall("\(path)") { () throws(MerchantError) in
                try Merchant(bankID: bankID, merchant: merchant, merchantKey: key, store: store, threads: threads)
            }
        } catch {
            if !existed {
                removeDatabase(path)
                if !logExisted { unlink(log) }
            }
            throw error
        }
    }
}

struct MerchantVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Verify a batch file of tickets and payments (PROTOCOL.md §7, §10).",
        discussion: """
            Every record gets a verdict (§7.1), in file order, and verification goes
            on after a bad one. With --state DB, the merchant's state is created if
            missing (the SQLite file DB, its ticket log DB.tickets.N and its lock
            DB.lock), verification continues from what it holds, and the batch's
            changes are committed in one transaction; without it, an empty state in
            memory is used. The batch file is mapped, not read into memory.

            Output: a summary (records, verdicts by kind, credited, time), or with
            --json one object:
              {"records", "accepted", "credited", "verdicts": {name: count, only the
               verdicts that occur}, "truncated_tail", "truncated_tail_offset",
               "seconds", "open_seconds", "verify_seconds", "commit_seconds",
               "records_per_second"}
            seconds covers the whole command. open_seconds covers opening the state
            and loading its tickets; verify_seconds runs from the first record read to
            the last verdict (writing --verdicts included); commit_seconds covers the
            one commit of the batch's changes to the state, durable when it ends.
            records_per_second = records / verify_seconds.

            --verdicts OUT writes one byte per record, its §7.1 code, in record order.

            Exit status: 0; 3 if the file ends in a truncated record (the complete
            records are still verified and reported, one line on stderr names the file
            and the offset); 64 bad arguments; 65 not a batch file, a bad key, or a
            state made for another merchant or key; 66 the batch file is missing or
            unreadable; 73 --verdicts cannot be created; 74 a database or ticket log
            I/O error (a full disk, say); 75 the state is in use by another process
            (try again when it is done). On 64, 65 and 66 the state is neither created nor changed (an existing state is
            only opened to check whose it is) and no --verdicts file is left.

            Example:
              micropay merchant verify day.mpb --bank-id 7 --merchant 2002 \\
                  --key-file m2002.key --state m.db --verdicts day.v --json
            """
    )

    @Argument(help: "The batch file (\"MPB1\" then u16-length records).")
    var batch: String
    @OptionGroup var identity: MerchantIdentity
    @Option(help: "Verify at this Unix time (default: now).")
    var now: UInt64?
    @Option(help: ArgumentHelp("The merchant's SQLite state (created if missing).", valueName: "db"))
    var state: String?
    @Option(help: ArgumentHelp("Write one verdict byte per record here.", valueName: "file"))
    var verdicts: String?
    @Flag(help: "Print one JSON object instead of the summary.")
    var json = false
    @Option(help: "Verifier threads, 1...256 (default: every core). Records are dealt to threads by serial.")
    var threads: Int = Merchant.defaultThreads

    func validate() throws {
        guard (1...BatchVerifier.maxThreads).contains(threads) else {
            throw ValidationError("--threads must be between 1 and \(BatchVerifier.maxThreads)")
        }
    }

    func run() throws {
        try reportingErrors {
            let start = DispatchTime.now().uptimeNanoseconds
            let now = now ?? currentTime()
            // Everything that can refuse the input comes before the state is touched.
            let key = try identity.loadMerchantKey()
            try checkBatchFile(batch)
            let fileSize = (try? FileManager.default.attributesOfItem(atPath: batch)[.size] as? Int) ?? 0
            let output = try verdicts.map { try StreamingOutput(path: $0) }
            let merchant: Merchant
            let opening = DispatchTime.now().uptimeNanoseconds
            if let state {
                merchant = try identity.open(state: state, threads: threads)
            } else {
                let store = try merchantCall { () throws(MerchantError) in try MerchantStore() }
                merchant = try merchantCall { () throws(MerchantError) in
                    try Merchant(bankID: identity.bankID, merchant: identity.merchant, merchantKey: key, store: store,
                                 threads: threads)
                }
            }

            let openSeconds = Double(DispatchTime.now().uptimeNanoseconds - opening) / 1e9
            let progress = Progress("verifying", total: fileSize, enabled: !json)
            let showProgress = progress.isEnabled
            // Verdicts a window of records at a time, never per record; without
            // --verdicts the verifier's threads only count (no results gathered).
            let onWindow: ((BatchVerifier.Window) -> Void)? = output.map { output in { output.append($0.verdicts) } }
            let onProgress: ((Int) -> Void)? = showProgress ? { progress.update($0) } : nil
            let summary: BatchSummary
            do {
                summary = try merchantCall(batch) { () throws(MerchantError) in
                    try merchant.verifyBatch(file: batch, now: now, tag: (batch as NSString).lastPathComponent,
                                             threads: threads, onWindow: onWindow, onProgress: onProgress)
                }
            } catch {
                progress.finish()
                output?.discard()
                throw error
            }
            progress.finish()
            try output?.commit()

            // From the first record read to the last verdict: the merchant times
            // its verification apart from loading and saving the state.
            let verifySeconds = summary.verifySeconds
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            let rate = verifySeconds > 0 ? Double(summary.records) / verifySeconds : 0
            if json {
                let report = VerifyJSON(summary: summary, seconds: seconds, openSeconds: openSeconds, rate: rate)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                printSummary(summary, openSeconds: openSeconds, seconds: seconds, rate: rate)
            }
            if let offset = summary.truncatedTailOffset {
                throw ToolError(.truncatedTail,
                                "\(batch): truncated record at byte offset \(offset): the last record is cut short and got no verdict")
            }
        }
    }

    private func printSummary(_ s: BatchSummary, openSeconds: Double, seconds: Double, rate: Double) {
        print("\(batch): \(s.records) records verified")
        for verdict in Verdict.allCases where s.count(verdict) > 0 {
            print("  \(verdict.description.padding(toLength: 17, withPad: " ", startingAt: 0)) \(s.count(verdict))")
        }
        print("credited \(money(s.credited))")
        if let offset = s.truncatedTailOffset { print("truncated tail at byte offset \(offset) (no verdict)") }
        if let state { print("state \(state) updated") } else { print("state in memory (nothing saved; use --state to keep it)") }
        if let verdicts { print("verdicts written to \(verdicts) (\(s.records) bytes)") }
        print(String(format: "opened in %.3f s, verified in %.3f s (%@ records/s), committed in %.3f s; %.3f s in all",
                     openSeconds, s.verifySeconds, Progress.human(rate), s.commitSeconds, seconds))
    }
}

/// The --json object of `merchant verify`.
struct VerifyJSON: Encodable {
    let records: Int
    let accepted: Int
    let credited: UInt64
    let verdicts: [String: Int]
    let truncatedTail: Bool
    let truncatedTailOffset: Int?
    let seconds: Double
    let openSeconds: Double
    let verifySeconds: Double
    let commitSeconds: Double
    let recordsPerSecond: Double

    init(summary: BatchSummary, seconds: Double, openSeconds: Double, rate: Double) {
        records = summary.records
        accepted = summary.accepted
        credited = summary.credited
        var counts: [String: Int] = [:]
        for verdict in Verdict.allCases where summary.count(verdict) > 0 { counts[verdict.description] = summary.count(verdict) }
        verdicts = counts
        truncatedTail = summary.truncatedTail
        truncatedTailOffset = summary.truncatedTailOffset
        self.seconds = seconds
        self.openSeconds = openSeconds
        verifySeconds = summary.verifySeconds
        commitSeconds = summary.commitSeconds
        recordsPerSecond = rate
    }

    enum CodingKeys: String, CodingKey {
        case records, accepted, credited, verdicts, seconds
        case truncatedTail = "truncated_tail", truncatedTailOffset = "truncated_tail_offset"
        case openSeconds = "open_seconds", verifySeconds = "verify_seconds", commitSeconds = "commit_seconds"
        case recordsPerSecond = "records_per_second"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(records, forKey: .records)
        try c.encode(accepted, forKey: .accepted)
        try c.encode(credited, forKey: .credited)
        try c.encode(verdicts, forKey: .verdicts)
        try c.encode(truncatedTail, forKey: .truncatedTail)
        try c.encode(truncatedTailOffset, forKey: .truncatedTailOffset)  // null when there is none
        try c.encode(seconds, forKey: .seconds)
        try c.encode(openSeconds, forKey: .openSeconds)
        try c.encode(verifySeconds, forKey: .verifySeconds)
        try c.encode(commitSeconds, forKey: .commitSeconds)
        try c.encode(recordsPerSecond, forKey: .recordsPerSecond)
    }
}

struct MerchantDeposit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deposit",
        abstract: "Make a Deposit (§9.1) of everything accepted and not yet claimed, or write a pending one again.",
        discussion: """
            Takes the best unclaimed payment per ticket from the state, records the
            Deposit as pending, and writes it for the bank. Prints the batch id, the
            number of claims and the amount claimed; "nothing to deposit" (exit 0, no
            file written) when there is nothing new. Either way it names the Deposits
            still pending (no Receipt applied yet).

            The output's temporary file is created before the Deposit is recorded:
            an --out that cannot be created (exit 73) changes nothing. A Deposit
            recorded but never written (the write failed, or the process died) is
            not lost: --resend BATCH writes the pending Deposit BATCH again, byte
            for byte as it was first made. Sending it to the bank again is safe: the
            bank answers an identical Deposit with the Receipt it already issued
            (PROTOCOL.md §9.2). A batch whose Receipt was applied, or no such batch,
            is refused (exit 65).

            Exit status: 0; 64 bad arguments; 65 a bad key, a state made for another
            merchant or key, --batch-id already used, --resend of no pending batch;
            66 the state is missing; 73 --out cannot be created; 74 a database or
            I/O error; 75 the state is in use by another process.

            Example:
              micropay merchant deposit --bank-id 7 --merchant 2 --key-file m.key --state m.db --out d1.dep
              micropay bank settle --dir bank --deposit d1.dep --receipt d1.rcpt
              micropay merchant deposit --bank-id 7 --merchant 2 --key-file m.key --state m.db --resend 1 --out d1.dep
            """
    )

    @OptionGroup var identity: MerchantIdentity
    @Option(help: ArgumentHelp("The merchant's SQLite state.", valueName: "db"))
    var state: String
    @Option(help: ArgumentHelp("Where to write the Deposit.", valueName: "file"))
    var out: String
    @Option(name: .customLong("batch-id"), help: "The Deposit's batch id (default: one above every id used).")
    var batchID: UInt64?
    @Option(help: "Leave out tickets past expires + grace at this Unix time (default: now).")
    var now: UInt64?
    @Option(help: ArgumentHelp("Write the pending Deposit with this batch id again, byte for byte, instead of making a new one.",
                               valueName: "batch"))
    var resend: UInt64?

    func validate() throws {
        if resend != nil && (batchID != nil || now != nil) {
            throw ValidationError("--resend writes a Deposit already made: it takes no --batch-id or --now")
        }
    }

    func run() throws {
        try reportingErrors {
            try requireReadableFile(state)
            // Before anything is recorded: an output that cannot be created must
            // not leave a pending Deposit that no file holds.
            let output = try StreamingOutput(path: out)
            let merchant = try identity.open(state: state)
            if let resend {
                let bytes = try merchantCall(state) { () throws(MerchantError) in try merchant.pendingDepositBytes(batchID: resend) }
                bytes.withUnsafeBufferPointer { output.append($0) }
                try output.commit()
                print("wrote \(out): pending deposit batch \(resend) again, byte for byte (\(bytes.count) bytes)")
                return
            }
            // By serial: a Deposit may claim a million tickets.
            let before = Dictionary(merchant.ticketStates.map { ($0.serial, $0) }, uniquingKeysWith: { first, _ in first })
            guard let deposit = try merchantCall(state, { () throws(MerchantError) in
                try merchant.makeDeposit(batchID: batchID, now: now ?? currentTime())
            }) else {
                output.discard()
                print("nothing to deposit")
                try printPending(merchant)
                return
            }
            deposit.bytes.withUnsafeBufferPointer { output.append($0) }
            do {
                try output.commit()
            } catch let error as ToolError {
                throw ToolError(error.kind, "\(error.message); deposit batch \(deposit.batchID) is recorded as pending: "
                                + "write it again with --resend \(deposit.batchID)")
            }
            let claimed = deposit.claims.reduce(UInt64(0)) { sum, claim in
                let old = before[claim.serial]
                let amount: UInt64 = switch claim {
                case .chain(let p): UInt64(p.index) * (old?.unit ?? 0)
                case .order(let o): o.cumulative
                }
                return sum + (amount - min(amount, old?.settledAmount ?? 0))
            }
            print("wrote \(out): deposit batch \(deposit.batchID), \(deposit.claims.count) claims for \(money(claimed)) not yet settled")
            try printPending(merchant, except: deposit.batchID)
        }
    }

    /// Names the Deposits still waiting for a Receipt, if any.
    private func printPending(_ merchant: Merchant, except: UInt64? = nil) throws {
        let pending = try merchantCall(state) { () throws(MerchantError) in try merchant.pendingBatchIDs() }.filter { $0 != except }
        guard !pending.isEmpty else { return }
        print("pending (no receipt applied): batch \(pending.map(String.init).joined(separator: ", ")); "
              + "write one again with --resend BATCH")
    }
}

struct MerchantApplyReceipt: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply-receipt",
        abstract: "Apply the bank's Receipt (§9.6) to the merchant's state.",
        discussion: """
            Checks the Receipt's tag, that it answers a Deposit this state sent, and
            records each claim's result. Prints the amount the bank credited, the
            amount the accepted claims should have credited, and the result codes
            by verdict. Applying the same Receipt again changes nothing.

            Receipts may be applied in any order. A claim should credit its amount
            over the highest accepted claim below it on its ticket, whichever
            Deposit that was; while an earlier Deposit claiming the same ticket is
            still pending, the bank may have settled it first, so the check waits
            and is made (and printed, "applied before") when that Deposit's Receipt
            is applied.

            Exit status: 0; 1 a credit that can be checked does not add up (the
            Receipt is applied all the same); 64 bad arguments; 65 a Receipt that
            is not for this state or conflicts with one applied; 66 a missing file;
            74 a database or I/O error; 75 the state is in use by another process.

            Example:
              micropay merchant apply-receipt --bank-id 7 --merchant 2 --key-file m.key --state m.db --receipt d1.rcpt
            """
    )

    @OptionGroup var identity: MerchantIdentity
    @Option(help: ArgumentHelp("The merchant's SQLite state.", valueName: "db"))
    var state: String
    @Option(help: ArgumentHelp("The bank's Receipt.", valueName: "file"))
    var receipt: String

    func run() throws {
        try reportingErrors {
            try requireReadableFile(state)
            let bytes = try readInput(receipt)
            let merchant = try identity.open(state: state)
            let outcome = try merchantCall(receipt) { () throws(MerchantError) in try merchant.applyReceipt(bytes) }
            var counts: [Verdict: Int] = [:]
            for code in outcome.codes { counts[code, default: 0] += 1 }
            let codes = Verdict.allCases.compactMap { v in counts[v].map { "\(v) \($0)" } }.joined(separator: ", ")
            print("receipt for batch \(outcome.batchID)\(outcome.alreadyApplied ? " (already applied: nothing changed)" : ""): \(outcome.codes.count) claims (\(codes))")
            if let expected = outcome.expectedCredited {
                print("credited by the bank \(money(outcome.credited)); expected \(money(expected))")
            } else {
                let batches = outcome.waitingFor.map(String.init).joined(separator: ", ")
                print("credited by the bank \(money(outcome.credited)); expected: not known until the receipt of batch \(batches) "
                      + "is applied (the bank may have settled it first); checked then")
            }
            for check in outcome.rechecked {
                print("batch \(check.batchID), applied before: credited by the bank \(money(check.credited)); expected \(money(check.expectedCredited))")
            }
            var wrong: [String] = []
            if let expected = outcome.expectedCredited, expected != outcome.credited {
                wrong.append("the bank credited \(outcome.credited), the accepted claims add up to \(expected)")
            }
            for check in outcome.rechecked where check.credited != check.expectedCredited {
                wrong.append("for batch \(check.batchID) the bank credited \(check.credited), its accepted claims add up to \(check.expectedCredited)")
            }
            if !wrong.isEmpty { throw ToolError(.checkFailed, "\(receipt): \(wrong.joined(separator: "; "))") }
        }
    }
}

struct MerchantSealGoods: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seal-goods",
        abstract: "Encrypt content once as a GoodsStream (§8) and register it for sale.",
        discussion: """
            Writes the stream (the same bytes for every buyer) and prints its item
            digest: a buyer pays with an order carrying that item (customer pay
            --goods STREAM), and the merchant then hands out the key (merchant
            key-envelope).

            Example:
              micropay merchant seal-goods --bank-id 7 --merchant 2 --key-file m.key --state m.db \\
                  --in song.ogg --out song.mpg --item-number 1 --price 2500
            """
    )

    @OptionGroup var identity: MerchantIdentity
    @Option(help: ArgumentHelp("The merchant's SQLite state (created if missing).", valueName: "db"))
    var state: String
    @Option(name: .customLong("in"), help: ArgumentHelp("The content to sell.", valueName: "file"))
    var input: String
    @Option(help: ArgumentHelp("Where to write the GoodsStream.", valueName: "file"))
    var out: String
    @Option(name: .customLong("item-number"), help: "The merchant's number for this item.")
    var itemNumber: UInt64
    // Required: a forgotten price would give the goods away to an order of 0.
    @Option(help: "The least an order must credit to buy the item, in micro-units (0 gives it away).")
    var price: UInt64
    @Option(help: "Plaintext chunk size in bytes.")
    var chunk: UInt32 = 65536

    func validate() throws {
        guard chunk >= 1 else { throw ValidationError("--chunk must be at least 1") }
    }

    func run() throws {
        try reportingErrors {
            let content = try readInput(input)
            let merchant = try identity.open(state: state)
            let stream = try merchantCall(state) { () throws(MerchantError) in
                try merchant.sealGoods(itemNumber: itemNumber, content: content, chunk: chunk, price: price)
            }
            try writeOutput(out, stream.bytes)
            print("wrote \(out): item \(itemNumber), \(content.count) bytes in \(stream.chunkCount) chunks, price \(money(price))")
            print("item \(stream.item.hex)")
        }
    }
}

struct MerchantKeyEnvelope: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "key-envelope",
        abstract: "Hand a buyer the key to goods it paid for (a KeyEnvelope, §8.4).",
        discussion: """
            Only when an accepted order on ticket SERIAL bought the item (verify the
            batch holding the order first). The item is given as its digest or as
            the stream file.

            Example:
              micropay merchant key-envelope --bank-id 7 --merchant 2 --key-file m.key --state m.db \\
                  --serial 5 --goods song.mpg --out song.key
            """
    )

    @OptionGroup var identity: MerchantIdentity
    @Option(help: ArgumentHelp("The merchant's SQLite state.", valueName: "db"))
    var state: String
    @Option(help: "The ticket the goods were bought on.")
    var serial: UInt64
    @Option(help: ArgumentHelp("The item digest (32 hex digits).", valueName: "hex"))
    var item: String?
    @Option(help: ArgumentHelp("The GoodsStream file (instead of --item).", valueName: "file"))
    var goods: String?
    @Option(help: ArgumentHelp("Where to write the KeyEnvelope.", valueName: "file"))
    var out: String

    func validate() throws {
        guard (item == nil) != (goods == nil) else { throw ValidationError("give exactly one of --item and --goods") }
    }

    func run() throws {
        try reportingErrors {
            try requireReadableFile(state)
            let itemDigest: Bytes16
            if let item {
                itemDigest = try parseHex16(item, option: "--item")
            } else {
                itemDigest = try readObject(goods!, as: "GoodsStream") { try GoodsStream(decoding: $0) }.item
            }
            let merchant = try identity.open(state: state)
            let envelope = try merchantCall(state) { () throws(MerchantError) in
                try merchant.keyEnvelope(serial: serial, item: itemDigest)
            }
            try writeOutput(out, envelope.bytes)
            print("wrote \(out): key for item \(itemDigest.hex) on ticket \(serial)")
        }
    }
}
