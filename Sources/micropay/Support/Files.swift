import Foundation
import MicropayBank
import MicropayCore
import MicropayCustomer
import MicropayMerchant

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Keys

/// Parses a key given as 64 hex digits on the command line (`--key`) or in a
/// file (`--key-file`: 64 hex digits, surrounding whitespace ignored, or the
/// 32 raw bytes). A bad key is bad input data: exit 65.
func loadKey(hex: String?, file: String?, option: String = "--key") throws -> SecretKey {
    switch (hex, file) {
    case (let hex?, nil):
        guard let key = try? SecretKey(hex: hex.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw ToolError(.dataError, "\(option): not a key: a key is 64 hex digits (32 bytes)")
        }
        return key
    case (nil, let file?):
        let bytes = try readInput(file)
        if bytes.count == SecretKey.byteCount, let key = try? SecretKey(bytes: bytes) { return key }
        let text = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let key = try? SecretKey(hex: text) else {
            throw ToolError(.dataError, "\(file): not a key file: it must hold 64 hex digits (32 bytes)")
        }
        return key
    case (nil, nil):
        throw ToolError(.usage, "give the key with \(option) HEX or \(option)-file FILE")
    default:
        throw ToolError(.usage, "give either \(option) or \(option)-file, not both")
    }
}

/// Writes a key as 64 hex digits and a newline, readable by its owner only (0600).
func writeKeyFile(_ path: String, _ key: SecretKey) throws {
    try writeOutput(path, Array((key.hexExposingSecret + "\n").utf8), mode: 0o600)
}

// MARK: - Files

/// Writes an output file whole: a temporary file in the same folder with
/// `mode`, then a rename, so nobody sees half a file.
func writeOutput(_ path: String, _ bytes: [UInt8], mode: mode_t) throws {
    let temporary = "\(path).tmp-\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw ToolError(.cannotCreate, "\(path): cannot create the file (\(errnoText()))") }
    fchmod(fd, mode)
    let failure = bytes.withUnsafeBytes { writeAll(fd, $0) }
    close(fd)
    guard failure == nil, rename(temporary, path) == 0 else {
        unlink(temporary)
        throw ToolError(.cannotCreate, "\(path): cannot write the file (\(errnoText()))")
    }
}

/// Writes every byte, retrying short writes and EINTR; the errno of a failure, else nil.
func writeAll(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> Int32? {
    var done = 0
    while done < buffer.count {
        let n = write(fd, buffer.baseAddress! + done, buffer.count - done)
        if n < 0 {
            if errno == EINTR { continue }
            return errno
        }
        done += n
    }
    return nil
}

func errnoText() -> String { String(cString: strerror(errno)) }

/// Fails with exit 66 unless `path` is a regular file we can read.
func requireReadableFile(_ path: String) throws {
    var info = stat()
    guard stat(path, &info) == 0 else {
        throw ToolError(.noInput, "\(path): cannot read the file (\(errnoText()))")
    }
    guard (info.st_mode & S_IFMT) == S_IFREG else { throw ToolError(.noInput, "\(path): not a regular file") }
    guard access(path, R_OK) == 0 else { throw ToolError(.noInput, "\(path): cannot read the file (\(errnoText()))") }
}

/// Checks that `path` is a readable batch file (§10: it begins with "MPB1"),
/// before anything else is opened or created.
func checkBatchFile(_ path: String) throws {
    try requireReadableFile(path)
    guard let handle = FileHandle(forReadingAtPath: path) else {
        throw ToolError(.noInput, "\(path): cannot read the file")
    }
    defer { try? handle.close() }
    let head = [UInt8]((try? handle.read(upToCount: 4)) ?? Data())
    guard head == BatchFile.magic else {
        throw ToolError(.dataError, "\(path): \(BatchFileError.badMagic(found: head))")
    }
}

/// Decodes a wire object read from `path`, naming the file on failure.
func readObject<T>(_ path: String, as what: String, _ decode: ([UInt8]) throws -> T) throws -> T {
    let bytes = try readInput(path)
    do {
        return try decode(bytes)
    } catch {
        throw ToolError(.dataError, "\(path): not a valid \(what): \(error)")
    }
}

/// A batch file opened for appending before its records exist, so that a
/// file that cannot be written is found before anything is paid. A missing
/// file is created whole, holding "MPB1", in one step (a link of a
/// finished temporary file), so no process ever sees it empty, and it is
/// never removed again. Refuses a file that is not a batch. Each append
/// holds an exclusive lock on the file, so that a failed write can cut the
/// file back to where it was without cutting another process's records,
/// and adds its records whole or not at all.
final class BatchAppender {
    let path: String
    private let fd: Int32

    init(path: String) throws {
        self.path = path
        if !FileManager.default.fileExists(atPath: path) { try Self.create(path) }
        try checkBatchFile(path)
        let fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else { throw ToolError(.cannotCreate, "\(path): cannot open the batch file for writing (\(errnoText()))") }
        self.fd = fd
    }

    deinit { close(fd) }

    /// Puts a batch file holding only the magic at `path`, unless one appears there first.
    private static func create(_ path: String) throws {
        let temporary = "\(path).tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ToolError(.cannotCreate, "\(path): cannot create the batch file (\(errnoText()))") }
        defer { unlink(temporary) }
        let failure = BatchFile.magic.withUnsafeBytes { writeAll(fd, $0) }
        close(fd)
        guard failure == nil else { throw ToolError(.cannotCreate, "\(path): cannot create the batch file (\(errnoText()))") }
        // link fails with EEXIST if another process made the file meanwhile: it is a batch too.
        guard link(temporary, path) == 0 || errno == EEXIST else {
            throw ToolError(.cannotCreate, "\(path): cannot create the batch file (\(errnoText()))")
        }
    }

    func append(_ records: [[UInt8]]) throws {
        // The format's own framing, then without the magic the file already has.
        var writer = BatchFileWriter()
        do {
            for record in records { try writer.append(record) }
        } catch {
            throw ToolError(.dataError, "\(path): \(error)")
        }
        let bytes = writer.bytes.dropFirst(BatchFile.magic.count)
        guard flock(fd, LOCK_EX) == 0 else { throw ToolError(.ioError, "\(path): cannot lock the batch file (\(errnoText()))") }
        defer { flock(fd, LOCK_UN) }
        let start = lseek(fd, 0, SEEK_END)
        if let failure = bytes.withUnsafeBytes({ writeAll(fd, $0) }) {
            _ = ftruncate(fd, start)
            throw ToolError(.ioError, "\(path): cannot append to the batch file (\(String(cString: strerror(failure))))")
        }
    }
}

/// An output file written incrementally through a buffer (memory does not
/// grow with what is written), to a temporary name that `commit` renames
/// into place; `discard` (or an early exit) removes it.
final class StreamingOutput {
    let path: String
    private let temporary: String
    private let fd: Int32
    private var buffer: [UInt8] = []
    private var failure: Int32?
    private var done = false

    init(path: String) throws {
        self.path = path
        // A folder in the way would only fail the rename, after the work is done.
        var info = stat()
        if stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
            throw ToolError(.cannotCreate, "\(path): cannot create the file (it is a folder)")
        }
        temporary = "\(path).tmp-\(getpid())"
        fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ToolError(.cannotCreate, "\(path): cannot create the file (\(errnoText()))") }
        buffer.reserveCapacity(1 << 16)
    }

    deinit { discard() }

    @inline(__always)
    func append(_ byte: UInt8) {
        buffer.append(byte)
        if buffer.count >= 1 << 16 { flush() }
    }

    func append(_ bytes: UnsafeBufferPointer<UInt8>) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 16 { flush() }
    }

    private func flush() {
        guard failure == nil else { buffer.removeAll(keepingCapacity: true); return }
        failure = buffer.withUnsafeBytes { writeAll(fd, $0) }
        buffer.removeAll(keepingCapacity: true)
    }

    func commit() throws {
        flush()
        done = true
        close(fd)
        if let failure {
            unlink(temporary)
            throw ToolError(.ioError, "\(path): cannot write the file (\(String(cString: strerror(failure))))")
        }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw ToolError(.cannotCreate, "\(path): cannot write the file (\(errnoText()))")
        }
    }

    func discard() {
        guard !done else { return }
        done = true
        close(fd)
        unlink(temporary)
    }
}

/// Removes an SQLite database, its WAL companions and its lock file (a state
/// this command created and must not leave behind after a failure).
func removeDatabase(_ path: String) {
    for suffix in ["", "-wal", "-shm", "-journal", ".lock"] { unlink(path + suffix) }
}

/// The current Unix time in seconds.
func currentTime() -> UInt64 { UInt64(Date().timeIntervalSince1970) }

func parseHex16(_ text: String, option: String) throws -> Bytes16 {
    guard let value = Bytes16(hex: text) else { throw ToolError(.usage, "\(option): expected 32 hex digits (16 bytes)") }
    return value
}

// MARK: - Role errors → exit status

/// A refusal by a role (bank, customer, merchant) as one line and an exit
/// status: storage failures are 74, contention that may pass is 75 (try
/// again), everything else is input the role refused (65).
func toolError(_ error: BankError, _ context: String = "bank") -> ToolError {
    switch error {
    case .storage: ToolError(.ioError, "\(context): \(error)")
    case .masterKeyIO, .masterKeyMissing: ToolError(.noInput, "\(context): master key: \(error)")
    case .settlementContended: ToolError(.tryAgain, "\(context): \(error)")
    default: ToolError(.dataError, "\(context): \(error)")
    }
}

func toolError(_ error: MerchantError, _ context: String = "merchant") -> ToolError {
    switch error {
    case .database, .ticketLogIO: ToolError(.ioError, "\(context): \(error)")
    case .storeInUse: ToolError(.tryAgain, "\(context): \(error)")
    case .batchFile(.io(let path, _, _)): ToolError(.noInput, "\(path): cannot read the batch file (\(error))")
    default: ToolError(.dataError, "\(context): \(error)")
    }
}

func toolError(_ error: CustomerError, _ context: String = "wallet") -> ToolError {
    switch error {
    case .storage: ToolError(.ioError, "\(context): \(error)")
    default: ToolError(.dataError, "\(context): \(error)")
    }
}

/// Runs a role call, turning its typed error into a ToolError.
@discardableResult
func bankCall<T>(_ context: String = "bank", _ body: () throws(BankError) -> T) throws -> T {
    do { return try body() } catch { throw toolError(error, context) }
}

func merchantCall<T>(_ context: String = "merchant", _ body: () throws(MerchantError) -> T) throws -> T {
    do { return try body() } catch { throw toolError(error, context) }
}

func customerCall<T>(_ context: String = "wallet", _ body: () throws(CustomerError) -> T) throws -> T {
    do { return try body() } catch { throw toolError(error, context) }
}

/// Money in micro-units, with the currency units beside it: 1234567 → "1234567 µ (1.234567)".
func money(_ amount: UInt64) -> String {
    "\(amount) µ (\(amount / 1_000_000).\(String(format: "%06llu", amount % 1_000_000)))"
}
