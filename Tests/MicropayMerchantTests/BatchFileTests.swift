import Foundation
import MicropayCore
import MicropaySimulation
import Testing

@testable import MicropayMerchant

@Suite("BatchFile (§10): magic, records, offsets, truncated tails")
struct BatchFileTests {
    /// Reads every record and the tail offset.
    static func read(_ bytes: [UInt8]) throws(BatchFileError) -> (records: [(Int, [UInt8])], tail: Int?) {
        let result = bytes.withUnsafeBytes { buffer in
            Result { () throws(BatchFileError) -> ([(Int, [UInt8])], Int?) in
                var reader = try BatchFileReader(buffer)
                var records: [(Int, [UInt8])] = []
                while let record = reader.next() { records.append((record.offset, Array(record.bytes))) }
                return (records, reader.truncatedTailOffset)
            }
        }
        return try result.get()
    }

    @Test("records come back with their offsets; the bytes are views into the buffer, not copies")
    func roundTrip() throws {
        var writer = BatchFileWriter()
        let records: [[UInt8]] = [[1, 2, 3], [], Array(repeating: 9, count: 300), [0x10]]
        for r in records { try writer.append(r) }
        // Written by hand: magic, then u16 big-endian length + bytes.
        var expected: [UInt8] = Array("MPB1".utf8)
        var offsets: [Int] = []
        for r in records {
            offsets.append(expected.count)
            expected += [UInt8(r.count >> 8), UInt8(r.count & 0xff)] + r
        }
        #expect(writer.bytes == expected)
        let (read, tail) = try Self.read(writer.bytes)
        #expect(read.map(\.1) == records)
        #expect(read.map(\.0) == offsets)
        #expect(tail == nil)
        try writer.bytes.withUnsafeBytes { buffer in
            var reader = try BatchFileReader(buffer)
            let first = reader.next()
            #expect(first?.bytes.baseAddress == buffer.baseAddress! + 6)
        }
    }

    @Test("a file not beginning with MPB1 is refused with what it began with",
          arguments: [([UInt8](), [UInt8]()), ([0x4D, 0x50], [0x4D, 0x50]), (Array("MPB2xx".utf8), Array("MPB2".utf8)),
                      (Array("mpb1".utf8), Array("mpb1".utf8))])
    func badMagic(file: [UInt8], found: [UInt8]) {
        #expect(throws: BatchFileError.badMagic(found: found)) { try Self.read(file) }
    }

    @Test("a last record cut short is a truncated tail, not a record",
          arguments: [
              [0x00],  // one byte of length left
              [0x00, 0x05, 1, 2, 3, 4],  // length runs past the end by one
              [0xFF, 0xFF],  // a full length, no bytes
          ])
    func truncatedTail(tail: [UInt8]) throws {
        var writer = BatchFileWriter()
        try writer.append([7, 7])
        let tailOffset = writer.bytes.count
        writer.appendRaw(tail)
        let (read, offset) = try Self.read(writer.bytes)
        #expect(read.map(\.1) == [[7, 7]])
        #expect(offset == tailOffset)
    }

    @Test("the magic alone is an empty batch; a record longer than 65535 bytes cannot be written")
    func edges() throws {
        let (read, tail) = try Self.read(Array("MPB1".utf8))
        #expect(read.isEmpty)
        #expect(tail == nil)
        var writer = BatchFileWriter()
        #expect(throws: BatchFileError.recordTooLong(65536)) { try writer.append([UInt8](repeating: 0, count: 65536)) }
        try writer.append([UInt8](repeating: 1, count: 65535))
        #expect(try Self.read(writer.bytes).records.first?.1.count == 65535)
    }

    @Test("a written file maps back to the same bytes; a missing file is an io error")
    func files() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("batch-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var writer = BatchFileWriter()
        try writer.append([1, 2, 3])
        try writer.write(toFile: path)
        let mapped = try MappedFile(path: path)
        #expect(Array(mapped.bytes) == writer.bytes)
        #expect(throws: BatchFileError.self) { try MappedFile(path: path + ".missing") }
    }

    @Test("released pages read back from the file unchanged; a windowed verification of a file sees every record")
    func releasedPages() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("batch-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        var writer = BatchFileWriter()
        var rng = SplitMix64(seed: 3)
        for n in 0..<3000 { try writer.append((0..<(1 + n % 90)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }) }
        try writer.write(toFile: path)
        let mapped = try MappedFile(path: path)
        mapped.release(before: 4096 * 3 + 100)
        mapped.release(before: 20_000)
        #expect(Array(mapped.bytes) == writer.bytes)

        // The merchant releases each window of a mapped file as it goes (windows of 37 records here).
        let spec = BatchSpec(tickets: 30, payments: 3000, fraudRate: 0.05, seed: 8, mode: .mixed)
        var bytes: [UInt8] = []
        let generated = try BatchGenerator.generate(spec, keepVerdicts: true) { bytes.append(contentsOf: $0) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let merchant = try Merchant(bankID: spec.bankID, merchant: spec.merchant, merchantKey: generated.merchantKey,
                                    store: MerchantStore())
        merchant.batchWindowRecords = 37
        var verdicts: [UInt8] = []
        var progress: [Int] = []
        let summary = try merchant.verifyBatch(file: path, now: spec.now, threads: 2,
                                               onRecord: { verdicts.append($1.verdict.rawValue) },
                                               onProgress: { progress.append($0) })
        #expect(verdicts == generated.expectedVerdicts)
        #expect(summary.credited == generated.expectation.credited)
        #expect(progress.count > 80 && progress == progress.sorted() && progress.last == bytes.count)
    }
}
