import Dispatch
import Foundation
import MicropayCore

/// The merchant's tickets at rest: an append-only file of sealed segments of
/// ticket log records (`BatchVerifier.encodeLog`), beside the SQLite store.
///
/// Why not rows: a batch over a million tickets changes a million of them,
/// and a row per ticket costs microseconds to write and to read back, and an
/// AEAD open per ticket to recover K_CM. The log is written sequentially with
/// one fsync and read back at memory speed.
///
/// How it stays one transaction with the rest: the store's `meta` row
/// `ticket_log` holds the generation and the committed length, and it is
/// written in the same SQLite transaction as everything else a commit
/// changes. A commit appends its segments past the committed length and
/// fsyncs them before that transaction; bytes past the committed length are
/// an unfinished commit and are cut off when the log is opened. A new
/// generation (compaction) is written whole to its own file and becomes the
/// log only when the meta row names it.
///
/// A segment is `nonce (24) || length (u32 BE) || XChaCha20-Poly1305(records)`,
/// sealed under a key derived from K_M with the generation and the segment's
/// offset as associated data: segments cannot be altered, moved or swapped
/// between generations unnoticed, and the committed length catches a cut.
final class TicketLog {
    /// What the store's meta row records: the log's generation, where its
    /// committed bytes end, and how many tickets they hold (so that loading
    /// sizes the table once).
    struct Position: Equatable {
        var generation: UInt64
        var length: Int
        var tickets: Int

        static let metaKey = "ticket_log"

        var encoded: Data {
            Data([generation, UInt64(length), UInt64(tickets)].flatMap { value in
                withUnsafeBytes(of: value.bigEndian) { Array($0) }
            })
        }

        init(generation: UInt64, length: Int, tickets: Int) {
            self.generation = generation
            self.length = length
            self.tickets = tickets
        }

        init?(_ data: Data) {
            guard data.count == 24 else { return nil }
            let bytes = Array(data)
            let fields = (0..<3).map { i in bytes[(8 * i)..<(8 * i + 8)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
            guard fields[1] <= UInt64(Int.max), fields[2] <= UInt64(Int.max) else { return nil }
            generation = fields[0]
            length = Int(fields[1])
            tickets = Int(fields[2])
        }
    }

    static let headerBytes = 28
    /// Plaintext per segment: small enough to decrypt segments in parallel
    /// and to bound the memory of a commit, large enough that the 44 bytes of
    /// framing are noise.
    static let segmentBytes = 1 << 20

    /// `<store>.tickets.<generation>`, or nil for a store in memory.
    private let basePath: String?
    private let key: SecretKey
    private var fd: Int32 = -1
    /// The log of a store in memory.
    private var memory: [UInt8] = []
    /// What the store's meta row says: the log as of the last commit.
    private(set) var committed: Position

    /// Opens the log the store's meta row names (`committed`), cutting off
    /// any unfinished commit and removing other generations' files.
    init(storePath: String?, key: SecretKey, committed: Position) throws(MerchantError) {
        basePath = storePath
        self.key = key
        self.committed = committed
        guard storePath != nil else { return }
        let path = path(committed.generation)
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .ticketLogIO(path: path, "open: \(String(cString: strerror(errno)))") }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw io("fstat") }
        guard Int(info.st_size) >= committed.length else {
            throw .ticketLog(path: path, "\(info.st_size) bytes, but \(committed.length) were committed")
        }
        if Int(info.st_size) > committed.length {
            guard ftruncate(fd, off_t(committed.length)) == 0, fsync(fd) == 0 else { throw io("truncate") }
        }
        // The file may be new: its name is durable only once the directory is.
        if committed.length == 0 { try syncDirectory() }
        try removeOtherGenerations()
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    private func path(_ generation: UInt64) -> String { "\(basePath ?? "memory").tickets.\(generation)" }

    private func io(_ operation: String, path: String? = nil) -> MerchantError {
        .ticketLogIO(path: path ?? self.path(committed.generation), "\(operation): \(String(cString: strerror(errno)))")
    }

    /// Every `<store>.tickets.<generation>` file beside the store at `basePath`
    /// (for a store being created, any one of them outlived its own store,
    /// and may be all that is left of its tickets).
    static func logFiles(storePath basePath: String?) -> [String] {
        guard let basePath else { return [] }
        let directory = (basePath as NSString).deletingLastPathComponent
        let prefix = (basePath as NSString).lastPathComponent + ".tickets."
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.isEmpty ? "." : directory)) ?? []
        return names.filter { $0.hasPrefix(prefix) && UInt64($0.dropFirst(prefix.count)) != nil }
            .map { (directory as NSString).appendingPathComponent($0) }
    }

    /// Files of generations the store does not name: a compaction that never
    /// committed, or the old log after one that did.
    private func removeOtherGenerations() throws(MerchantError) {
        let current = (path(committed.generation) as NSString).lastPathComponent
        for file in Self.logFiles(storePath: basePath) where (file as NSString).lastPathComponent != current { unlink(file) }
    }

    // MARK: - Reading

    /// Hands the committed records to `body` in log order, a segment at a
    /// time, decrypting up to `threads` segments at once. Each piece is zeroed
    /// after `body` returns.
    func replay(
        threads: Int, _ body: (_ records: UnsafeRawBufferPointer, _ segmentOffset: Int) throws(MerchantError) -> Void
    ) throws(MerchantError) {
        guard committed.length > 0 else { return }
        if basePath == nil {
            try withBytes(memory) { (bytes) throws(MerchantError) in try replay(bytes, threads: threads, body) }
            return
        }
        let mapped: MappedFile
        do { mapped = try MappedFile(path: path(committed.generation)) } catch {
            throw .ticketLogIO(path: path(committed.generation), "\(error)")
        }
        try mapped.withUnsafeBytes { (bytes) throws(MerchantError) in
            guard bytes.count >= committed.length else {
                throw .ticketLog(path: path(committed.generation), "shorter than the committed \(committed.length) bytes")
            }
            try replay(UnsafeRawBufferPointer(rebasing: bytes[0..<committed.length]), threads: threads, body)
        }
    }

    private func replay(
        _ log: UnsafeRawBufferPointer, threads: Int,
        _ body: (_ records: UnsafeRawBufferPointer, _ segmentOffset: Int) throws(MerchantError) -> Void
    ) throws(MerchantError) {
        // Where each segment starts: the framing is in the clear.
        var starts: [Int] = []
        var at = 0
        while at < log.count {
            guard log.count - at >= Self.headerBytes + XChaCha20Poly1305.tagByteCount else { throw corrupt(at, "cut short") }
            let length = Int(log.u32(at: at + 24))
            guard length <= Self.segmentBytes, log.count - at - Self.headerBytes - XChaCha20Poly1305.tagByteCount >= length
            else { throw corrupt(at, "a segment runs past the end") }
            starts.append(at)
            at += Self.headerBytes + length + XChaCha20Poly1305.tagByteCount
        }
        let generation = committed.generation
        let key = key
        let source = SendableBytes(log)
        // A round decrypts `threads * 4` segments in parallel, then replays them in order.
        let round = max(1, threads) * 4
        var first = 0
        while first < starts.count {
            let chunk = Array(starts[first..<min(starts.count, first + round)])
            let opened = UnsafeMutableBufferPointer<[UInt8]?>.allocate(capacity: chunk.count)
            opened.initialize(repeating: nil)
            defer {
                // The plaintext holds session keys: zeroed in place, whether replayed or not.
                for i in opened.indices { opened[i]?.withUnsafeMutableBytes { Engine.zero($0) } }
                opened.deinitialize()
                opened.deallocate()
            }
            let slots = SendablePointer(opened)
            DispatchQueue.concurrentPerform(iterations: chunk.count) { i in
                slots.pointer[i] = Self.openSegment(source.bytes, at: chunk[i], generation: generation, key: key)
            }
            for i in 0..<chunk.count {
                guard let records = opened[i] else { throw corrupt(chunk[i], "a segment does not open under K_M") }
                let start = chunk[i]
                try withBytes(records) { (bytes) throws(MerchantError) in try body(bytes, start) }
            }
            first += chunk.count
        }
    }

    private static func openSegment(_ log: UnsafeRawBufferPointer, at: Int, generation: UInt64, key: SecretKey) -> [UInt8]? {
        let length = Int(log.u32(at: at + 24))
        let nonce = Bytes24(log[at..<(at + 24)])!
        let sealed = UnsafeRawBufferPointer(rebasing: log[(at + headerBytes)..<(at + headerBytes + length + 16)])
        let ad = associatedData(generation: generation, offset: at, length: length)
        return try? ad.withUnsafeBytes { ad in
            try XChaCha20Poly1305.open(sealed, associatedData: ad, nonce: nonce, key: key, kind: .ticket)
        }
    }

    private static func associatedData(generation: UInt64, offset: Int, length: Int) -> [UInt8] {
        Array("micropay ticket log v1".utf8) + withUnsafeBytes(of: generation.bigEndian) { Array($0) }
            + withUnsafeBytes(of: UInt64(offset).bigEndian) { Array($0) }
            + withUnsafeBytes(of: UInt32(length).bigEndian) { Array($0) }
    }

    private func corrupt(_ offset: Int, _ what: String) -> MerchantError {
        .ticketLog(path: path(committed.generation), "at byte \(offset): \(what)")
    }

    // MARK: - Writing

    /// Seals records into segments and writes them from `offset` of the log
    /// of `generation`.
    final class Writer {
        private let log: TicketLog
        private let generation: UInt64
        private let fd: Int32
        private let path: String
        private var buffer: [UInt8] = []
        private(set) var offset: Int

        fileprivate init(log: TicketLog, generation: UInt64, fd: Int32, path: String, offset: Int) {
            self.log = log
            self.generation = generation
            self.fd = fd
            self.path = path
            self.offset = offset
            buffer.reserveCapacity(TicketLog.segmentBytes + XChaCha20Poly1305.tagByteCount)
        }

        deinit { buffer.withUnsafeMutableBytes { Engine.zero($0) } }

        /// Adds records; whole records only, so a segment never splits one.
        func add<Records: Collection>(_ records: Records) throws(MerchantError) where Records.Element == UInt8 {
            // A segment holds whole pieces: one larger than a segment would not replay.
            precondition(records.count <= TicketLog.segmentBytes, "a piece of records larger than a segment")
            if buffer.count + records.count > TicketLog.segmentBytes { try flush() }
            buffer.append(contentsOf: records)
            if buffer.count >= TicketLog.segmentBytes { try flush() }
        }

        func flush() throws(MerchantError) {
            guard !buffer.isEmpty else { return }
            let nonce: Bytes24 = SystemRandom().bytes()
            let ad = TicketLog.associatedData(generation: generation, offset: offset, length: buffer.count)
            let header = nonce.withUnsafeBytes { Array($0) } + withUnsafeBytes(of: UInt32(buffer.count).bigEndian) { Array($0) }
            // Sealed where it lies, the tag after it (the capacity has room):
            // no second megabyte, and no plaintext left behind. Emptied
            // however the writes end, so a segment is never sealed twice.
            buffer.append(contentsOf: repeatElement(0, count: XChaCha20Poly1305.tagByteCount))
            defer { buffer.removeAll(keepingCapacity: true) }
            buffer.withUnsafeMutableBytes { sealed in
                ad.withUnsafeBytes { ad in XChaCha20Poly1305.sealInPlace(sealed, associatedData: ad, nonce: nonce, key: log.key) }
            }
            // Header and ciphertext written one after the other: the megabyte is not copied again.
            try write(header)
            try write(buffer)
        }

        private func write(_ bytes: [UInt8]) throws(MerchantError) {
            if fd < 0 {
                log.memory.removeSubrange(offset...)
                log.memory += bytes
                offset += bytes.count
                return
            }
            var done = 0
            while done < bytes.count {
                let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, $0.count - done, off_t(offset + done)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw .ticketLogIO(path: path, "write: \(String(cString: strerror(errno)))") }
                done += n
            }
            offset += bytes.count
        }

        /// Flushes and makes the segments durable; returns where the log ends.
        func finish() throws(MerchantError) -> Int {
            try flush()
            if fd >= 0, fsync(fd) != 0 { throw .ticketLogIO(path: path, "fsync: \(String(cString: strerror(errno)))") }
            return offset
        }
    }

    /// A writer appending to the committed log. Nothing it writes counts
    /// until `commit` is given the position it reached.
    func appender() -> Writer {
        Writer(log: self, generation: committed.generation, fd: fd, path: path(committed.generation),
               offset: committed.length)
    }

    /// The store's transaction committed `position`.
    func commit(_ position: Position) {
        committed = position
    }

    /// The transaction failed: cut off what the appender wrote.
    func abandon() {
        if fd >= 0 {
            _ = ftruncate(fd, off_t(committed.length))
        } else {
            memory.removeSubrange(committed.length...)
        }
    }

    /// Writes a whole new generation with `fill`, durable before this
    /// returns; it becomes the log only once the store's meta row names it
    /// and `switchTo` is called.
    func writeGeneration(_ fill: (Writer) throws(MerchantError) -> Void) throws(MerchantError) -> Position {
        let generation = committed.generation + 1
        if basePath == nil {
            let writer = Writer(log: self, generation: generation, fd: -1, path: "memory", offset: 0)
            let saved = memory
            memory = []
            defer { pendingMemory = memory; memory = saved }
            try fill(writer)
            return Position(generation: generation, length: try writer.finish(), tickets: 0)
        }
        let newPath = path(generation)
        let newFD = open(newPath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard newFD >= 0 else { throw io("create", path: newPath) }
        do {
            let writer = Writer(log: self, generation: generation, fd: newFD, path: newPath, offset: 0)
            try fill(writer)
            let length = try writer.finish()
            try syncDirectory()
            pendingFD = newFD
            return Position(generation: generation, length: length, tickets: 0)
        } catch {
            close(newFD)
            unlink(newPath)
            throw error
        }
    }

    private var pendingFD: Int32 = -1
    private var pendingMemory: [UInt8] = []

    /// The store's meta row now names the generation `writeGeneration` wrote.
    func switchTo(_ position: Position) {
        if basePath == nil {
            memory = pendingMemory
            pendingMemory = []
        } else {
            let old = path(committed.generation)
            close(fd)
            fd = pendingFD
            pendingFD = -1
            unlink(old)
        }
        committed = position
    }

    /// The meta row was not written: forget the new generation.
    func discardGeneration(_ position: Position) {
        pendingMemory = []
        if pendingFD >= 0 {
            close(pendingFD)
            pendingFD = -1
            unlink(path(position.generation))
        }
    }

    /// A new file's name is durable only once its directory is.
    private func syncDirectory() throws(MerchantError) {
        guard let basePath else { return }
        let directory = (basePath as NSString).deletingLastPathComponent
        let dfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw io("open directory", path: directory) }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else { throw io("fsync directory", path: directory) }
    }
}

/// One merchant at a time on a store: an exclusive `flock` on
/// `<store>.lock`, held for the merchant's life and taken before the store's
/// meta row is read. (A lock on the log itself would move with every
/// compaction, and a second merchant could lock a generation just replaced.)
final class StoreLock {
    private let fd: Int32

    init?(storePath: String?) throws(MerchantError) {
        guard let storePath else { return nil }
        let path = storePath + ".lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .ticketLogIO(path: path, "open: \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let failure = errno
            close(fd)
            guard failure == EWOULDBLOCK else { throw .ticketLogIO(path: path, "flock: \(String(cString: strerror(failure)))") }
            throw .storeInUse(path: path)
        }
        self.fd = fd
    }

    deinit { close(fd) }
}

/// `Array.withUnsafeBytes` rethrows untyped errors; this keeps them typed.
private func withBytes(
    _ array: [UInt8], _ body: (UnsafeRawBufferPointer) throws(MerchantError) -> Void
) throws(MerchantError) {
    try array.withUnsafeBytes { bytes in Result { () throws(MerchantError) in try body(bytes) } }.get()
}

/// The mapped log, read by the decrypting threads while the caller waits.
private struct SendableBytes: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }
}

/// Lets the decrypting threads write their own slot of one buffer.
private struct SendablePointer<T>: @unchecked Sendable {
    let pointer: UnsafeMutableBufferPointer<T>
    init(_ pointer: UnsafeMutableBufferPointer<T>) { self.pointer = pointer }
}
