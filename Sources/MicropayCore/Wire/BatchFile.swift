#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Batch files of PROTOCOL.md §10: `"MPB1"`, then records, each a u16
/// big-endian length and that many bytes. Reading never copies a record:
/// records are views into memory the caller owns (often a mapped file).
public enum BatchFile {
    /// `"MPB1"`.
    public static let magic: [UInt8] = [0x4D, 0x50, 0x42, 0x31]
    /// The longest record a u16 length can announce.
    public static let maxRecordLength = Int(UInt16.max)
}

/// Why a batch file was refused whole, or could not be read or written.
public enum BatchFileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file does not begin with `"MPB1"`; `found` holds its first bytes (at most 4).
    case badMagic(found: [UInt8])
    /// A record the u16 length prefix cannot announce (writer side).
    case recordTooLong(Int)
    /// The system refused an operation on `path` (`errno` as reported).
    case io(path: String, operation: String, errno: Int32)

    public var description: String {
        switch self {
        case .badMagic(let found):
            "not a batch file: it must begin with \"MPB1\" (4d504231), found \(found.hexString.isEmpty ? "nothing" : found.hexString)"
        case .recordTooLong(let n): "a batch record holds at most \(BatchFile.maxRecordLength) bytes, got \(n)"
        case .io(let path, let operation, let errno): "\(operation) \(path): errno \(errno)"
        }
    }
}

/// One record of a batch file, as a view into the file's memory (valid as
/// long as that memory is).
public struct BatchRecord {
    /// Byte offset of the record's length prefix from the start of the file.
    public let offset: Int
    /// The record's bytes (without the length prefix).
    public let bytes: UnsafeRawBufferPointer

    public init(offset: Int, bytes: UnsafeRawBufferPointer) {
        self.offset = offset
        self.bytes = bytes
    }
}

/// Iterates the records of a batch file held in `buffer`, without copying.
/// After `next()` has returned nil, `truncatedTailOffset` tells whether the
/// file ended in a record cut short (§10: it gets no verdict).
public struct BatchFileReader: Sequence, IteratorProtocol {
    public let buffer: UnsafeRawBufferPointer
    private var position: Int
    /// Offset of a final record cut short (its length prefix), once reached.
    public private(set) var truncatedTailOffset: Int?

    /// Refuses a buffer that does not begin with `"MPB1"`.
    public init(_ buffer: UnsafeRawBufferPointer) throws(BatchFileError) {
        let head = Array(buffer.prefix(4))
        guard head == BatchFile.magic else { throw .badMagic(found: head) }
        self.buffer = buffer
        position = 4
    }

    /// Whether iteration has met a cut-short final record.
    public var hasTruncatedTail: Bool { truncatedTailOffset != nil }

    public mutating func next() -> BatchRecord? {
        let remaining = buffer.count - position
        guard remaining > 0 else { return nil }
        guard remaining >= 2 else {
            truncatedTailOffset = position
            position = buffer.count
            return nil
        }
        let length = Int(buffer[position]) << 8 | Int(buffer[position + 1])
        guard length <= remaining - 2 else {
            truncatedTailOffset = position
            position = buffer.count
            return nil
        }
        let start = position + 2
        let record = BatchRecord(
            offset: position, bytes: UnsafeRawBufferPointer(rebasing: buffer[start..<(start + length)]))
        position = start + length
        return record
    }

    /// Walks the whole buffer: the number of complete records and the tail's offset, if cut short.
    public static func scan(_ buffer: UnsafeRawBufferPointer) throws(BatchFileError) -> (records: Int, truncatedTailOffset: Int?) {
        var reader = try BatchFileReader(buffer)
        var count = 0
        while reader.next() != nil { count += 1 }
        return (count, reader.truncatedTailOffset)
    }
}

/// A file mapped read-only into memory, unmapped when released: records read
/// from it are views into the mapping, never copies.
public final class MappedFile {
    public let path: String
    private let base: UnsafeMutableRawPointer?
    private let length: Int

    public init(path: String) throws(BatchFileError) {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw .io(path: path, operation: "open", errno: errno) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .io(path: path, operation: "stat", errno: errno) }
        length = Int(info.st_size)
        // mmap refuses length 0: an empty file is an empty buffer.
        guard length > 0 else { base = nil; return }
        let mapped = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let mapped, mapped != UnsafeMutableRawPointer(bitPattern: -1) else {
            throw .io(path: path, operation: "mmap", errno: errno)
        }
        base = mapped
        _ = madvise(mapped, length, MADV_SEQUENTIAL)
    }

    deinit {
        if let base { munmap(base, length) }
    }

    /// The file's bytes, valid while `self` is alive.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: length) }

    private var released = 0

    /// Drops the mapped pages wholly before `offset` from this process's
    /// memory: the file stays in the page cache, and a later read of those
    /// bytes maps them again from it. A reader going through the file once
    /// calls it as it goes, so that its resident memory stays one window,
    /// whatever the file's size.
    public func release(before offset: Int) {
        guard let base else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let end = min(offset, length) / page * page
        guard end > released else { return }
        _ = madvise(base + released, end - released, MADV_DONTNEED)
        released = end
    }

    /// Runs `body` over the file's bytes, keeping the mapping alive meanwhile.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try withExtendedLifetime(self) { () throws(E) -> R in try body(bytes) }
    }
}

/// Builds a batch file in memory, record by record (tests and tools).
public struct BatchFileWriter: Sendable {
    /// The file so far: the magic, then every record appended.
    public private(set) var bytes: [UInt8]
    public private(set) var recordCount = 0

    public init(reservingCapacity capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(max(capacity, 4))
        bytes += BatchFile.magic
    }

    public mutating func append(_ record: UnsafeRawBufferPointer) throws(BatchFileError) {
        guard record.count <= BatchFile.maxRecordLength else { throw .recordTooLong(record.count) }
        bytes.append(UInt8(record.count >> 8))
        bytes.append(UInt8(record.count & 0xff))
        bytes.append(contentsOf: record)
        recordCount += 1
    }

    public mutating func append(_ record: [UInt8]) throws(BatchFileError) {
        guard record.count <= BatchFile.maxRecordLength else { throw .recordTooLong(record.count) }
        bytes.append(UInt8(record.count >> 8))
        bytes.append(UInt8(record.count & 0xff))
        bytes.append(contentsOf: record)
        recordCount += 1
    }

    /// Appends raw bytes with no length prefix: for tests that build a cut-short tail.
    public mutating func appendRaw(_ raw: [UInt8]) {
        bytes.append(contentsOf: raw)
    }

    /// Writes the file to `path` through a temporary file and a rename, so a
    /// reader never sees a half-written batch.
    public func write(toFile path: String) throws(BatchFileError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw .io(path: temporary, operation: "open", errno: errno) }
        var failure: BatchFileError?
        bytes.withUnsafeBytes { buffer in
            var done = 0
            while done < buffer.count {
                let n = systemWrite(fd, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = .io(path: temporary, operation: "write", errno: errno)
                    return
                }
                done += n
            }
        }
        if failure == nil, fsync(fd) != 0 { failure = .io(path: temporary, operation: "fsync", errno: errno) }
        close(fd)
        if let failure { throw failure }
        guard rename(temporary, path) == 0 else { throw .io(path: path, operation: "rename", errno: errno) }
    }
}

/// `write(2)`, named apart from `BatchFileWriter.write(toFile:)`.
private func systemWrite(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, pointer, count)
}
