import Foundation
import MicropayCore
import Testing

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
}
