import Foundation
import MicropayCore
import MicropaySimulation
import Testing

@testable import MicropayMerchant

/// The batch verifier (sharded ticket table, hashing ahead of the verdicts,
/// multi-lane kernels, several threads) against the one-record-at-a-time path:
/// the same verdicts, credits, tails and final state, for every lane kernel
/// and thread count, across window boundaries.
@Suite("Batch verifier = sequential path")
struct BatchPipelineTests {
    static let configurations: [(kernel: Engine.LaneKernel, threads: Int, window: Int)] =
        Engine.availableLaneKernels.flatMap { kernel in
            [(kernel, 1, 1 << 20), (kernel, 2, 1 << 20), (kernel, 3, 37)]
        }

    struct Run: Equatable {
        var verdicts: [UInt8] = []
        var credited: [UInt64] = []
        var offsets: [Int] = []
        var summaries: [BatchSummary] = []
    }

    static func verify(_ merchant: Merchant, _ batch: [UInt8], now: UInt64, sequential: Bool, threads: Int, into run: inout Run) throws {
        var local = run
        let summary = try batch.withUnsafeBytes { buffer in
            try Result { () throws(MerchantError) -> BatchSummary in
                let collect: (BatchRecord, RecordOutcome) -> Void = { record, outcome in
                    local.verdicts.append(outcome.verdict.rawValue)
                    local.credited.append(outcome.credited)
                    local.offsets.append(record.offset)
                }
                return sequential
                    ? try merchant.verifyBatchSequentially(buffer, now: now, onRecord: collect)
                    : try merchant.verifyBatch(buffer, now: now, threads: threads, onRecord: collect)
            }.get()
        }
        local.summaries.append(summary)
        run = local
    }

    @Test("random streams with gaps up to 4097, retries, reordering and every bad record",
          arguments: configurations.indices)
    func randomStreams(configuration: Int) throws {
        let (kernel, threads, window) = Self.configurations[configuration]
        for seed in UInt64(1)...3 {
            let key = SecretKey.random()
            var world = PaymentWorld(seed: seed &* 7919 &+ UInt64(configuration), merchantKey: key)
            let fast = try Merchant(bankID: PaymentWorld.bankID, merchant: PaymentWorld.merchant, merchantKey: key, store: MerchantStore())
            fast.batchLaneKernel = kernel
            fast.batchWindowRecords = window
            let slow = try Merchant(bankID: PaymentWorld.bankID, merchant: PaymentWorld.merchant, merchantKey: key, store: MerchantStore())
            // No callbacks: the path where each shard counts its own verdicts.
            let counting = try Merchant(bankID: PaymentWorld.bankID, merchant: PaymentWorld.merchant, merchantKey: key, store: MerchantStore())
            counting.batchLaneKernel = kernel
            counting.batchWindowRecords = window
            var countingSummaries: [BatchSummary] = []
            var progress: [Int] = []
            var fastRun = Run(), slowRun = Run()
            for batchNumber in 0..<6 {
                let now = PaymentWorld.start + UInt64(batchNumber) * 70
                var writer = try PaymentWorld.batch(world.records(atLeast: 300))
                if batchNumber == 3 { writer.appendRaw([0x00]) }  // a cut tail
                try Self.verify(fast, writer.bytes, now: now, sequential: false, threads: threads, into: &fastRun)
                try Self.verify(slow, writer.bytes, now: now, sequential: true, threads: 1, into: &slowRun)
                countingSummaries.append(try counting.verifyBatch(bytes: writer.bytes, now: now, threads: threads,
                                                                  onProgress: { progress.append($0) }))
                #expect(progress.last == writer.bytes.count, "the last window reaches the end of the file")
            }
            #expect(fastRun == slowRun, "kernel \(kernel), \(threads) threads, window \(window), seed \(seed)")
            #expect(countingSummaries == slowRun.summaries, "counting: kernel \(kernel), \(threads) threads, window \(window)")
            #expect(countingSummaries.map(\.truncatedTailOffset) == slowRun.summaries.map(\.truncatedTailOffset))
            #expect(fast.ticketStates == slow.ticketStates)
            #expect(counting.ticketStates == slow.ticketStates)
            #expect(Set(slowRun.verdicts).count >= 10)
        }
    }

    @Test("thread counts: the verifier takes 1 to 256 shards, the merchant caps what it is given")
    func threadCounts() throws {
        let key = SecretKey.random()
        for threads in [0, BatchVerifier.maxThreads + 1] {
            #expect(throws: MicropayError.threadCount(threads)) {
                try BatchVerifier(bankID: PaymentWorld.bankID, merchant: PaymentWorld.merchant, merchantKey: key, threads: threads)
            }
        }
        #expect(try BatchVerifier(bankID: PaymentWorld.bankID, merchant: PaymentWorld.merchant, merchantKey: key,
                                  threads: BatchVerifier.maxThreads).threads == 256)
        var world = PaymentWorld(seed: 5, merchantKey: key)
        let batch = try PaymentWorld.batch(world.records(atLeast: 100)).bytes
        var runs: [Run] = []
        for threads in [1, 1000] {
            let merchant = try Merchant(bankID: PaymentWorld.bankID, merchant: PaymentWorld.merchant, merchantKey: key,
                                        store: MerchantStore(), threads: threads)
            var run = Run()
            try Self.verify(merchant, batch, now: PaymentWorld.start, sequential: false, threads: threads, into: &run)
            #expect(merchant.verifierThreads == min(threads, BatchVerifier.maxThreads))
            runs.append(run)
        }
        #expect(runs[0] == runs[1])
    }

    /// The pipeline hashes a serial's payments side by side, each chain walk
    /// guessing that the payment before it is accepted. One serial's stream,
    /// thick with refusals, makes most guesses fail: the verdicts must not move.
    @Test("one serial's stream in one chunk: every refused payment breaks the next one's guess",
          arguments: configurations.indices)
    func oneSerialStream(configuration: Int) throws {
        let (kernel, threads, window) = Self.configurations[configuration]
        let key = SecretKey.random()
        for ticket in [0, 1] {  // ticket 0: a chain of 5000 words; ticket 1: orders
            var world = PaymentWorld(seed: 77 &+ UInt64(configuration), merchantKey: key)
            func merchant() throws -> Merchant {
                let m = try Merchant(bankID: PaymentWorld.bankID, merchant: PaymentWorld.merchant, merchantKey: key, store: MerchantStore())
                m.batchLaneKernel = kernel
                m.batchWindowRecords = window
                return m
            }
            let fast = try merchant(), counting = try merchant(), slow = try merchant()
            // The ticket first, in a batch of its own: in the stream's batch it is known from the first record.
            let records = world.records(atLeast: 900, only: ticket)
            let writers = [try PaymentWorld.batch([world.tickets[ticket].ticket]), try PaymentWorld.batch(records)]
            var fastRun = Run(), slowRun = Run()
            var countingSummaries: [BatchSummary] = []
            for writer in writers {
                try Self.verify(fast, writer.bytes, now: PaymentWorld.start, sequential: false, threads: threads, into: &fastRun)
                try Self.verify(slow, writer.bytes, now: PaymentWorld.start, sequential: true, threads: 1, into: &slowRun)
                countingSummaries.append(try counting.verifyBatch(bytes: writer.bytes, now: PaymentWorld.start, threads: threads))
            }
            #expect(fastRun == slowRun, "ticket \(ticket), kernel \(kernel), \(threads) threads, window \(window)")
            #expect(countingSummaries == slowRun.summaries, "counting: ticket \(ticket), kernel \(kernel), \(threads) threads")
            #expect(fast.ticketStates == slow.ticketStates)
            #expect(counting.ticketStates == slow.ticketStates)
            if ticket == 0 {
                // The case under test happened: after a forged word (badChainWord), the
                // serial's next accepted payment, whose guessed walk ended at the forgery.
                var afterForgery = false, hits = 0
                for (record, verdict) in zip(records, slowRun.verdicts.dropFirst()) where record.first == 0x01 {
                    if afterForgery && verdict == 0 { hits += 1 }
                    if verdict == 6 { afterForgery = true } else if verdict == 0 { afterForgery = false }
                }
                #expect(hits >= 10, "accepted payments right after a forgery: \(hits)")
            }
        }
    }

    /// Tickets registered in pass 1 grow the table (mremap moves it) while
    /// the same chunks carry payments on tickets already in it.
    @Test("registrations that grow the table, between payments on earlier tickets", arguments: [1, 2])
    func growthMidChunk(threads: Int) throws {
        let spec = BatchSpec(tickets: 5000, payments: 10_000, fraudRate: 0.05, seed: 9, mode: .mixed)
        var bytes: [UInt8] = []
        let generated = try BatchGenerator.generate(spec, keepVerdicts: false) { bytes.append(contentsOf: $0) }
        // The generator writes every ticket first; deal the later ones in among the payments.
        var tickets: [[UInt8]] = [], payments: [[UInt8]] = []
        var at = 4
        while at < bytes.count {
            let length = Int(bytes[at]) << 8 | Int(bytes[at + 1])
            let record = Array(bytes[(at + 2)..<(at + 2 + length)])
            if record.first == 0x10 { tickets.append(record) } else { payments.append(record) }
            at += 2 + length
        }
        var ordered = Array(tickets.prefix(1000))
        var next = payments.makeIterator()
        for record in tickets.dropFirst(1000) {
            ordered.append(record)
            for _ in 0..<2 { if let payment = next.next() { ordered.append(payment) } }
        }
        while let payment = next.next() { ordered.append(payment) }
        let writer = try PaymentWorld.batch(ordered)
        let fast = try Merchant(bankID: spec.bankID, merchant: spec.merchant, merchantKey: generated.merchantKey, store: MerchantStore())
        let slow = try Merchant(bankID: spec.bankID, merchant: spec.merchant, merchantKey: generated.merchantKey, store: MerchantStore())
        var fastRun = Run(), slowRun = Run()
        try Self.verify(fast, writer.bytes, now: spec.now, sequential: false, threads: threads, into: &fastRun)
        try Self.verify(slow, writer.bytes, now: spec.now, sequential: true, threads: 1, into: &slowRun)
        #expect(fastRun == slowRun)
        #expect(fast.ticketStates == slow.ticketStates)
        let acceptedPayments = zip(ordered, slowRun.verdicts).filter { $0.0.first != 0x10 && $0.1 == 0 }.count
        #expect(acceptedPayments > 4_000, "payments accepted on registered tickets: \(acceptedPayments)")
    }

    /// Each window is scanned once, by one shard in turn, one window ahead of
    /// its verifying, and dealt to all; a ring slot is scanned again only when
    /// every shard is done with it. Windows of one record make every step a
    /// hand-over; a window that ends where the file does leaves an empty one.
    @Test("windows scanned in turn by the shards: every size, every thread count, the file's end anywhere",
          arguments: [1, 2, 3, 4])
    func sharedScan(threads: Int) throws {
        let key = SecretKey.random()
        var world = PaymentWorld(seed: 500 &+ UInt64(threads), merchantKey: key)
        let records = world.records(atLeast: 200)
        for cutTail in [false, true] {
            var writer = try PaymentWorld.batch(records)
            if cutTail { writer.appendRaw([0x00, 0x07, 0x01]) }
            let count = records.count
            for window in [1, 2, 3, 7, count / 4, count - 1, count, count + 1] {
                func merchant() throws -> Merchant {
                    let m = try Merchant(bankID: PaymentWorld.bankID, merchant: PaymentWorld.merchant, merchantKey: key,
                                         store: MerchantStore())
                    m.batchWindowRecords = window
                    return m
                }
                let fast = try merchant(), counting = try merchant(), slow = try merchant()
                var fastRun = Run(), slowRun = Run()
                var progress: [Int] = []
                try Self.verify(fast, writer.bytes, now: PaymentWorld.start, sequential: false, threads: threads, into: &fastRun)
                try Self.verify(slow, writer.bytes, now: PaymentWorld.start, sequential: true, threads: 1, into: &slowRun)
                let totals = try counting.verifyBatch(bytes: writer.bytes, now: PaymentWorld.start, threads: threads,
                                                      onProgress: { progress.append($0) })
                let label = "\(threads) threads, window \(window), cut tail \(cutTail)"
                #expect(fastRun == slowRun, "\(label)")
                #expect(fastRun.verdicts.count == count, "\(label)")
                #expect([totals] == slowRun.summaries, "counting: \(label)")
                #expect(fast.ticketStates == slow.ticketStates, "\(label)")
                #expect(counting.ticketStates == slow.ticketStates, "\(label)")
                #expect(progress == progress.sorted() && progress.last == writer.bytes.count,
                        "progress \(progress.suffix(2)), \(label)")
                #expect(slowRun.summaries[0].truncatedTailOffset == (cutTail ? writer.bytes.count - 3 : nil), "\(label)")
            }
        }
    }

    @Test("a generated day over many tickets: the verdicts known by construction", arguments: configurations.indices)
    func generatedBatch(configuration: Int) throws {
        let (kernel, threads, window) = Self.configurations[configuration]
        let spec = BatchSpec(tickets: 300, payments: 20_000, fraudRate: 0.1, seed: 42 &+ UInt64(configuration), mode: .mixed)
        var bytes: [UInt8] = []
        let generated = try BatchGenerator.generate(spec, keepVerdicts: true) { bytes.append(contentsOf: $0) }
        let fast = try Merchant(bankID: spec.bankID, merchant: spec.merchant, merchantKey: generated.merchantKey, store: MerchantStore())
        fast.batchLaneKernel = kernel
        fast.batchWindowRecords = window * 97
        var run = Run()
        try Self.verify(fast, bytes, now: spec.now, sequential: false, threads: threads, into: &run)
        #expect(run.verdicts == generated.expectedVerdicts)
        #expect(run.summaries[0].credited == generated.expectation.credited)
        #expect(run.summaries[0].accepted == generated.expectation.accepted)
        // The same again, now every ticket is known: retries are duplicates, the rest replays or as before.
        let slow = try Merchant(bankID: spec.bankID, merchant: spec.merchant, merchantKey: generated.merchantKey, store: MerchantStore())
        var slowRun = Run()
        try Self.verify(slow, bytes, now: spec.now, sequential: true, threads: 1, into: &slowRun)
        var fastAgain = Run(), slowAgain = Run()
        try Self.verify(fast, bytes, now: spec.now, sequential: false, threads: threads, into: &fastAgain)
        try Self.verify(slow, bytes, now: spec.now, sequential: true, threads: 1, into: &slowAgain)
        #expect(fastAgain == slowAgain)
        #expect(fastAgain.summaries[0].credited == 0)
        #expect(fast.ticketStates == slow.ticketStates)
    }

    @Test("a resent last order is a duplicate even where a loaded state's last_seq disagrees with it, or its head is odd",
          arguments: Engine.availableLaneKernels)
    func duplicateOrderAgainstLoadedState(kernel: Engine.LaneKernel) throws {
        let merchantKey = SecretKey.random(), sessionKey = SecretKey.random()
        let serial: UInt64 = 0x5EED
        func order(seq: UInt32, cumulative: UInt64, item: UInt8) -> PaymentOrder {
            var bytes = Bytes16()
            bytes.withUnsafeMutableBytes { $0[0] = item }
            return PaymentOrder.make(bankID: PaymentWorld.bankID, serial: serial, seq: seq, cumulative: cumulative, item: bytes,
                                     customerMAC: MACKey(macOf: SecretKey.random()), sessionMAC: MACKey(macOf: sessionKey))
        }
        let last = order(seq: 5, cumulative: 50, item: 1)
        // The table keeps a last order's first 16 bytes (header, bank, serial)
        // apart when a loaded state has other ones than an accepted order has:
        // the same order with its reserved byte set is no duplicate of it.
        var oddHead = last.encoded()
        oddHead[3] = 1
        // (last_seq in the state, its last order, record, expected verdict): the
        // state's last_seq agreeing with its last order, behind it, and ahead of it.
        let cases: [(UInt32, [UInt8], PaymentOrder, Verdict)] = [
            (5, last.encoded(), last, .duplicate), (4, last.encoded(), last, .duplicate), (6, last.encoded(), last, .duplicate),
            (5, last.encoded(), order(seq: 5, cumulative: 50, item: 2), .replay),
            (4, last.encoded(), order(seq: 5, cumulative: 60, item: 2), .accepted),
            (5, oddHead, last, .replay), (4, oddHead, last, .accepted),
        ]
        for (lastSeq, stored, record, expected) in cases {
            for threads in [1, 2] {
                let verifier = try BatchVerifier(bankID: PaymentWorld.bankID, merchant: PaymentWorld.merchant,
                                                 merchantKey: merchantKey, threads: threads, kernel: kernel)
                try verifier.load(TicketProgress(
                    serial: serial, customer: 1, limit: 1000, unit: 0, chainLength: 0, chainID: Bytes12(),
                    issued: 0, expires: UInt64.max, root: Bytes32(), sessionKey: sessionKey,
                    last: 0, lastWord: nil, lastSeq: lastSeq, lastCumulative: 50, lastOrder: stored, credited: 50,
                    claimed: 0, settled: 0, settledAmount: 0))
                var writer = BatchFileWriter()
                try writer.append(record.encoded())
                var verdicts: [UInt8] = []
                _ = try writer.bytes.withUnsafeBytes { buffer in
                    try verifier.verify(buffer, now: 1) { window in verdicts += window.verdicts }
                }
                let context = "last_seq \(lastSeq), head \(stored[3]), seq \(record.seq), \(threads) threads"
                #expect(verdicts == [expected.rawValue], "\(context)")
                var exported: [[UInt8]?] = []
                verifier.forEachTicket { exported.append($0.lastOrder) }
                #expect(exported == [expected == .accepted ? record.encoded() : stored], "\(context)")
            }
        }
    }

    @Test("state moves between the table and the store: a reopened merchant goes on where the batch stopped")
    func persistence() throws {
        let spec = BatchSpec(tickets: 50, payments: 2000, fraudRate: 0.05, seed: 9, mode: .mixed)
        var first: [UInt8] = []
        let generated = try BatchGenerator.generate(spec) { first.append(contentsOf: $0) }
        let path = TemporaryStorePath("pipeline")
        defer { path.cleanUp() }
        do {
            let merchant = try Merchant(bankID: spec.bankID, merchant: spec.merchant, merchantKey: generated.merchantKey,
                                        store: try MerchantStore(path: path.path))
            _ = try merchant.verifyBatch(bytes: first, now: spec.now, threads: 2)
        }
        let reopened = try Merchant(bankID: spec.bankID, merchant: spec.merchant, merchantKey: generated.merchantKey,
                                    store: try MerchantStore(path: path.path))
        let reference = try Merchant(bankID: spec.bankID, merchant: spec.merchant, merchantKey: generated.merchantKey, store: MerchantStore())
        var ignored = Run()
        try Self.verify(reference, first, now: spec.now, sequential: true, threads: 1, into: &ignored)
        #expect(reopened.ticketStates == reference.ticketStates)
        #expect(reopened.totalCredited == generated.expectation.credited)
    }
}
