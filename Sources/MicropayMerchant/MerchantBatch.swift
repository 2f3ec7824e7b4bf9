import Foundation
import MicropayCore

/// Counts over one verified batch.
public struct BatchSummary: Sendable, Equatable {
    /// Records that got a verdict (a truncated tail is not one).
    public var records = 0
    /// Records per verdict code (index = code, §7.1).
    public var perVerdict = [Int](repeating: 0, count: Verdict.allCases.count)
    /// Total credited by the batch.
    public var credited: UInt64 = 0
    /// Offset of the cut-short final record, if any (§10).
    public var truncatedTailOffset: Int?
    /// Seconds from the first record read to the last verdict, without
    /// loading or saving state. Not part of equality: it is a measurement.
    public var verifySeconds: Double = 0
    /// Seconds the batch's commit took (ticket log and store), also a measurement.
    public var commitSeconds: Double = 0

    public init() {}

    public static func == (a: BatchSummary, b: BatchSummary) -> Bool {
        a.records == b.records && a.perVerdict == b.perVerdict && a.credited == b.credited
            && a.truncatedTailOffset == b.truncatedTailOffset
    }

    public var truncatedTail: Bool { truncatedTailOffset != nil }
    /// `accepted` and `duplicate` are counted apart (§7.1).
    public var accepted: Int { perVerdict[Int(Verdict.accepted.rawValue)] }
    public var duplicates: Int { perVerdict[Int(Verdict.duplicate.rawValue)] }
    /// Every verdict other than accepted and duplicate.
    public var rejected: Int { records - accepted - duplicates }

    public func count(_ verdict: Verdict) -> Int { perVerdict[Int(verdict.rawValue)] }

    /// Counts a window of results in one pass.
    mutating func add(_ window: BatchVerifier.Window) {
        var counts = (0..<16).map { _ in 0 }
        var total: UInt64 = 0
        for i in 0..<window.count {
            counts[Int(window.verdicts[i] & 15)] += 1
            total &+= window.credited[i]
        }
        for code in perVerdict.indices { perVerdict[code] += counts[code] }
        records += window.count
        credited &+= total
    }

    @inline(__always)
    mutating func add(_ outcome: RecordOutcome) {
        records += 1
        perVerdict[Int(outcome.verdict.rawValue)] += 1
        credited &+= outcome.credited
    }
}

/// A batch verified with every per-record result kept (tests, small batches, tools).
public struct BatchReport: Sendable, Equatable {
    public var summary: BatchSummary
    /// One §7 code per record, in file order: the verdict bytes.
    public var verdictBytes: [UInt8]
    /// What each record credited.
    public var credited: [UInt64]
    /// Each record's offset in the file.
    public var offsets: [Int]

    public var verdicts: [Verdict] { verdictBytes.map { Verdict(rawValue: $0)! } }
}

extension Merchant {
    /// Verifies a batch file held in memory (§10) at `now`, in file order,
    /// calling `onRecord` with each record and its outcome, then commits the
    /// batch's changes and a `batch_log` row tagged `tag` in ONE transaction.
    ///
    /// Memory is bounded by the number of tickets, not records: outcomes go
    /// to `onRecord` and are not kept. If the commit fails or the process
    /// dies before it, nothing of the batch is stored and it may be verified
    /// again as if new; once this returns, every acceptance is on disk and a
    /// second verification finds each accepted payment `duplicate` or `replay`.
    ///
    /// `onWindow` sees the results a window of records at a time (verdict
    /// bytes in bulk, for tools); `onRecord` one record at a time;
    /// `onProgress` the byte offset reached after each window. With neither
    /// `onRecord` nor `onWindow` (and no goods for sale, whose purchases are
    /// noted record by record), no per-record result leaves the verifier's
    /// threads: each counts its own. The three are called from the
    /// verifier's threads, one call at a time and windows in file order, while
    /// the other shards go on: they must not wait for the calling thread
    /// (it runs a shard) nor call back into this merchant.
    public func verifyBatch(
        _ buffer: UnsafeRawBufferPointer, now: UInt64, tag: String = "", threads: Int = Merchant.defaultThreads,
        onRecord: ((BatchRecord, RecordOutcome) -> Void)? = nil,
        onWindow: ((BatchVerifier.Window) -> Void)? = nil,
        onProgress: ((Int) -> Void)? = nil
    ) throws(MerchantError) -> BatchSummary {
        try checkUsable()
        do { _ = try BatchFileReader(buffer) } catch { throw .batchFile(error) }
        let verifier = preparedVerifier(threads: Self.verifierThreads(threads))
        verifierThreads = verifier.threads
        var summary = BatchSummary()
        let watchGoods = !goods.isEmpty
        let started = ContinuousClock.now
        do throws(BatchFileError) {
            if onRecord == nil && onWindow == nil && !watchGoods {
                let totals = try verifier.verifyTotals(buffer, now: now, progress: onProgress)
                summary.records = totals.records
                for code in summary.perVerdict.indices { summary.perVerdict[code] = totals.perVerdict[code] }
                summary.credited = totals.credited
                summary.truncatedTailOffset = totals.truncatedTailOffset
            } else {
                summary.truncatedTailOffset = try verifier.verify(buffer, now: now) { window in
                    summary.add(window)
                    onWindow?(window)
                    defer {
                        if let onProgress, window.count > 0 {
                            onProgress(Int(window.starts[window.count - 1]) + window.bytes(window.count - 1).count)
                        }
                    }
                    guard watchGoods || onRecord != nil else { return }
                    for i in 0..<window.count {
                        let bytes = window.bytes(i)
                        let outcome = RecordOutcome(Verdict(rawValue: window.verdicts[i])!, credited: window.credited[i])
                        if watchGoods, outcome.verdict == .accepted, bytes.first == WireKind.paymentOrder.rawValue {
                            notePurchase(order: bytes, credited: outcome.credited)
                        }
                        onRecord?(BatchRecord(offset: Int(window.starts[i]) - 2, bytes: bytes), outcome)
                    }
                }
            }
        } catch {
            // The table may have run part of the batch: back to what is stored.
            reloadAfterFailure()
            throw .batchFile(error)
        }
        summary.verifySeconds = seconds(ContinuousClock.now - started)
        // The table ran ahead of the entries: they are rebuilt from it when needed.
        if verifier.changeCount > 0 { ticketEntries = nil }
        let committing = ContinuousClock.now
        try commit(log: summary, tag: tag, now: now)
        summary.commitSeconds = seconds(ContinuousClock.now - committing)
        return summary
    }

    private func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
    }

    /// All cores by default, up to the verifier's 256: the shards of the
    /// batch verifier run one per thread.
    public static var defaultThreads: Int { verifierThreads(ProcessInfo.processInfo.activeProcessorCount) }

    /// The batch verifier's table for `threads` shards and the pinned
    /// kernel: the one in memory if it fits, else one built from it or from
    /// the entries.
    private func preparedVerifier(threads: Int) -> BatchVerifier {
        if let batchVerifier, batchVerifier.threads == threads, batchVerifier.kernel == batchLaneKernel {
            batchVerifier.windowRecords = batchWindowRecords
            return batchVerifier
        }
        let verifier = newTable(threads: threads)
        if let batchVerifier {
            // Another shape: move the tickets over in their log form.
            batchVerifier.encodeLog(changesOnly: false) { records in
                precondition(verifier.replayLog(records) == nil, "a table's own log does not replay")
            }
        } else {
            for entry in tickets.values { try! verifier.load(entry.progress) }
        }
        batchVerifier = verifier
        return verifier
    }

    /// The one-record-at-a-time path: the reference the batch verifier is
    /// tested against, and what one-record `verify` uses. Same contract as
    /// `verifyBatch`.
    public func verifyBatchSequentially(
        _ buffer: UnsafeRawBufferPointer, now: UInt64, tag: String = "",
        onRecord: ((BatchRecord, RecordOutcome) -> Void)? = nil
    ) throws(MerchantError) -> BatchSummary {
        try checkUsable()
        willChangeEntries()
        var reader: BatchFileReader
        do { reader = try BatchFileReader(buffer) } catch { throw .batchFile(error) }
        var summary = BatchSummary()
        while let record = reader.next() {
            let outcome = judge(record.bytes, now: now)
            summary.add(outcome)
            onRecord?(record, outcome)
        }
        summary.truncatedTailOffset = reader.truncatedTailOffset
        try commit(log: summary, tag: tag, now: now)
        return summary
    }

    /// As `verifyBatch(_:now:tag:onRecord:)` over a file mapped into memory.
    public func verifyBatch(
        file path: String, now: UInt64, tag: String = "", threads: Int = Merchant.defaultThreads,
        onRecord: ((BatchRecord, RecordOutcome) -> Void)? = nil,
        onWindow: ((BatchVerifier.Window) -> Void)? = nil,
        onProgress: ((Int) -> Void)? = nil
    ) throws(MerchantError) -> BatchSummary {
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch { throw .batchFile(error) }
        // Each window's pages leave memory once every shard is past it:
        // resident memory is the ticket table and a few windows, not the file.
        let progress: (Int) -> Void = { offset in
            file.release(before: offset)
            onProgress?(offset)
        }
        return try file.withUnsafeBytes { (bytes) throws(MerchantError) -> BatchSummary in
            try verifyBatch(bytes, now: now, tag: tag, threads: threads, onRecord: onRecord, onWindow: onWindow,
                            onProgress: progress)
        }
    }

    /// Verifies a batch and keeps every verdict, credit and offset.
    public func verifyBatchReport(_ bytes: [UInt8], now: UInt64, tag: String = "") throws(MerchantError) -> BatchReport {
        var verdicts: [UInt8] = []
        var credited: [UInt64] = []
        var offsets: [Int] = []
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(MerchantError) -> BatchSummary in
                try verifyBatch(buffer, now: now, tag: tag) { record, outcome in
                    verdicts.append(outcome.verdict.rawValue)
                    credited.append(outcome.credited)
                    offsets.append(record.offset)
                }
            }
        }
        let summary = try result.get()
        return BatchReport(summary: summary, verdictBytes: verdicts, credited: credited, offsets: offsets)
    }
}
