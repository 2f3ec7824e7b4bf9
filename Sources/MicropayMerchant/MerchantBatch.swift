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

    public init() {}

    public var truncatedTail: Bool { truncatedTailOffset != nil }
    /// `accepted` and `duplicate` are counted apart (§7.1).
    public var accepted: Int { perVerdict[Int(Verdict.accepted.rawValue)] }
    public var duplicates: Int { perVerdict[Int(Verdict.duplicate.rawValue)] }
    /// Every verdict other than accepted and duplicate.
    public var rejected: Int { records - accepted - duplicates }

    public func count(_ verdict: Verdict) -> Int { perVerdict[Int(verdict.rawValue)] }

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
    public func verifyBatch(
        _ buffer: UnsafeRawBufferPointer, now: UInt64, tag: String = "",
        onRecord: ((BatchRecord, RecordOutcome) -> Void)? = nil
    ) throws(MerchantError) -> BatchSummary {
        var reader: BatchFileReader
        do { reader = try BatchFileReader(buffer) } catch { throw .batchFile(error) }
        var summary = BatchSummary()
        if let onRecord {
            while let record = reader.next() {
                let outcome = judge(record.bytes, now: now)
                summary.add(outcome)
                onRecord(record, outcome)
            }
        } else {
            while let record = reader.next() {
                summary.add(judge(record.bytes, now: now))
            }
        }
        summary.truncatedTailOffset = reader.truncatedTailOffset
        try commit(log: summary, tag: tag, now: now)
        return summary
    }

    /// As `verifyBatch(_:now:tag:onRecord:)` over a file mapped into memory.
    public func verifyBatch(
        file path: String, now: UInt64, tag: String = "",
        onRecord: ((BatchRecord, RecordOutcome) -> Void)? = nil
    ) throws(MerchantError) -> BatchSummary {
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch { throw .batchFile(error) }
        return try file.withUnsafeBytes { (bytes) throws(MerchantError) -> BatchSummary in
            try verifyBatch(bytes, now: now, tag: tag, onRecord: onRecord)
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
