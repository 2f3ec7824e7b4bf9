import Foundation
import MicropayCore
import MicropayMerchant
import Testing

/// One expected line of a batch vector.
struct ExpectedRecord: CustomStringConvertible {
    let what: String
    let code: UInt8
    let verdict: String
    let credited: UInt64
    var description: String { what }

    static func list(_ value: Any?) -> [ExpectedRecord] {
        (value as! [[String: Any]]).map {
            ExpectedRecord(what: $0["what"] as! String, code: UInt8(Vectors.int($0["code"])),
                           verdict: $0["verdict"] as! String, credited: Vectors.int($0["credited"]))
        }
    }
}

@Suite("Merchant on the v1 batch vectors")
struct BatchVectorTests {
    nonisolated(unsafe) static let batch = Vectors.object("batch")
    static let file = Vectors.hex(batch["file"])
    static let now = Vectors.int(batch["now"])
    static let expected = ExpectedRecord.list(batch["expected"])
    nonisolated(unsafe) static let later = (Vectors.object("batch_later")["batches"] as! [[String: Any]])
    static let truncatedFile = Vectors.hex(Vectors.object("batch_truncated")["file"])

    /// Checks a report line by line against the vector, naming each record.
    static func check(_ report: BatchReport, against expected: [ExpectedRecord]) {
        #expect(report.verdictBytes.count == expected.count)
        for (i, e) in expected.enumerated() where i < report.verdictBytes.count {
            #expect(report.verdictBytes[i] == e.code, "record \(i): \(e.what)")
            #expect(report.verdicts[i].description == e.verdict, "record \(i): \(e.what)")
            #expect(report.credited[i] == e.credited, "record \(i): \(e.what)")
        }
        #expect(report.summary.records == expected.count)
        #expect(report.summary.accepted == expected.filter { $0.code == 0 }.count)
        #expect(report.summary.duplicates == expected.filter { $0.code == 12 }.count)
        #expect(report.summary.credited == expected.reduce(0) { $0 + $1.credited })
        for verdict in Verdict.allCases {
            #expect(report.summary.count(verdict) == expected.filter { $0.code == verdict.rawValue }.count, "\(verdict)")
        }
    }

    /// final_state of the vector: chain tickets 42 and 45, order ticket 43.
    static func checkFinalState(_ merchant: Merchant) throws {
        let final = Vectors.object("batch", "final_state")
        for serial in ["42", "45"] {
            let want = final[serial] as! [String: Any]
            let state = try #require(merchant.ticketState(serial: UInt64(serial)!))
            #expect(state.isChainMode)
            #expect(UInt64(state.last) == Vectors.int(want["last"]), "ticket \(serial)")
            #expect(state.lastWord.bytes == Vectors.hex(want["word"]), "ticket \(serial)")
            #expect(state.credited == Vectors.int(want["credited"]), "ticket \(serial)")
        }
        let want = final["43"] as! [String: Any]
        let state = try #require(merchant.ticketState(serial: 43))
        #expect(!state.isChainMode)
        #expect(UInt64(state.lastSeq) == Vectors.int(want["seq"]))
        #expect(state.lastCumulative == Vectors.int(want["cumulative"]))
        #expect(state.credited == Vectors.int(want["credited"]))
        #expect(merchant.ticketCount == 3)
    }

    @Test("batch: every verdict code, every credit, the summary and final_state")
    func batch() throws {
        let merchant = try makeVectorMerchant(store: MerchantStore())
        let report = try merchant.verifyBatchReport(Self.file, now: Self.now)
        Self.check(report, against: Self.expected)
        #expect(!report.summary.truncatedTail)
        try Self.checkFinalState(merchant)
    }

    @Test("batch_later: each later batch at its own now, on the state `batch` left")
    func later() throws {
        let merchant = try makeVectorMerchant(store: MerchantStore())
        _ = try merchant.verifyBatchReport(Self.file, now: Self.now)
        for (n, batch) in Self.later.enumerated() {
            let report = try merchant.verifyBatchReport(Vectors.hex(batch["file"]), now: Vectors.int(batch["now"]))
            let expected = ExpectedRecord.list(batch["expected"])
            #expect(report.verdictBytes == expected.map(\.code), "later batch \(n)")
            Self.check(report, against: expected)
        }
    }

    @Test("batch_truncated: the same verdicts, and a truncated tail at the last record's offset")
    func truncated() throws {
        let merchant = try makeVectorMerchant(store: MerchantStore())
        let report = try merchant.verifyBatchReport(Self.truncatedFile, now: Self.now)
        Self.check(report, against: Self.expected)
        let tail = try #require(report.summary.truncatedTailOffset)
        // The tail starts right after the last complete record of `batch`.
        #expect(tail == Self.file.count)
        #expect(Array(Self.truncatedFile.prefix(Self.file.count)) == Self.file)
        try Self.checkFinalState(merchant)
    }

    @Test("persistence: the state survives reopening the store; the later batches continue from it")
    func persistence() throws {
        let path = TemporaryStorePath()
        defer { path.cleanUp() }
        do {
            let merchant = try makeVectorMerchant(store: MerchantStore(path: path.path))
            let report = try merchant.verifyBatchReport(Self.file, now: Self.now, tag: "batch")
            Self.check(report, against: Self.expected)
        }
        let reopened = try makeVectorMerchant(store: MerchantStore(path: path.path))
        try Self.checkFinalState(reopened)
        let log = try reopened.store.batchLog()
        #expect(log.map(\.tag) == ["batch"])
        #expect(log.first?.credited == Self.expected.reduce(0) { $0 + $1.credited })
        for batch in Self.later {
            let report = try reopened.verifyBatchReport(Vectors.hex(batch["file"]), now: Vectors.int(batch["now"]))
            #expect(report.verdictBytes == ExpectedRecord.list(batch["expected"]).map(\.code))
        }
    }

    @Test("the batch verified again, after reopening: no payment is accepted twice")
    func reverifyAfterReopen() throws {
        let path = TemporaryStorePath()
        defer { path.cleanUp() }
        do {
            let merchant = try makeVectorMerchant(store: MerchantStore(path: path.path))
            _ = try merchant.verifyBatchReport(Self.file, now: Self.now)
        }
        let reopened = try makeVectorMerchant(store: MerchantStore(path: path.path))
        let again = try reopened.verifyBatchReport(Self.file, now: Self.now)
        #expect(again.summary.credited == 0)
        for (i, e) in Self.expected.enumerated() where e.code == 0 && e.credited > 0 {
            let verdict = again.verdicts[i]
            #expect(verdict == .duplicate || verdict == .replay, "record \(i): \(e.what) is \(verdict)")
        }
    }

    @Test("a batch file from disk (memory-mapped) gives the same verdicts")
    func mappedFile() throws {
        let path = TemporaryStorePath("batch")
        defer { path.cleanUp() }
        try Data(Self.truncatedFile).write(to: URL(fileURLWithPath: path.path))
        let merchant = try makeVectorMerchant(store: MerchantStore())
        var codes: [UInt8] = []
        let summary = try merchant.verifyBatch(file: path.path, now: Self.now) { _, outcome in
            codes.append(outcome.verdict.rawValue)
        }
        #expect(codes == Self.expected.map(\.code))
        #expect(summary.truncatedTailOffset == Self.file.count)
    }

    @Test("a file that does not begin with MPB1 is refused whole, and changes nothing")
    func badMagic() throws {
        let merchant = try makeVectorMerchant(store: MerchantStore())
        var file = Self.file
        file[3] = 0x32  // "MPB2"
        #expect(throws: MerchantError.batchFile(.badMagic(found: [0x4D, 0x50, 0x42, 0x32]))) {
            try merchant.verifyBatchReport(file, now: Self.now)
        }
        #expect(merchant.ticketCount == 0)
        #expect(try merchant.store.batchLog().isEmpty)
    }
}
