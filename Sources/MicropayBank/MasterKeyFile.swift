#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import MicropayCore

/// The bank's only long-term secret (PROTOCOL.md §3.2): 32 random bytes in a
/// file only its owner may read. Created on first use, atomically, so a crash
/// never leaves a short or world-readable key behind.
public enum MasterKeyFile {
    public static let byteCount = 32

    /// Reads the key at `path`, or creates it from `random` if there is none.
    /// Refuses a file that group or others can access, or that is not 32 bytes.
    public static func loadOrCreate(path: String, random: any RandomSource = SystemRandom()) throws(BankError) -> SecretKey {
        if let key = try load(path: path) { return key }
        try create(path: path, random: random)
        // Another process may have won the race to create it: read whatever is there.
        guard let key = try load(path: path) else { throw .masterKeyIO(path: path, errno: ENOENT) }
        return key
    }

    /// nil if there is no file at `path`.
    public static func load(path: String) throws(BankError) -> SecretKey? {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw .masterKeyIO(path: path, errno: errno)
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .masterKeyIO(path: path, errno: errno) }
        let mode = UInt32(info.st_mode) & 0o777
        guard mode & 0o077 == 0 else { throw .masterKeyTooOpen(path: path, mode: mode) }
        var buffer = [UInt8](repeating: 0, count: byteCount + 1)
        defer { for i in buffer.indices { buffer[i] = 0 } }
        var total = 0
        while total < buffer.count {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + total, $0.count - total) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .masterKeyIO(path: path, errno: errno)
            }
            if n == 0 { break }
            total += n
        }
        guard total == byteCount else { throw .masterKeyCorrupt(path: path, length: total) }
        do {
            return try SecretKey(bytes: Array(buffer[..<byteCount]))
        } catch {
            throw .masterKeyCorrupt(path: path, length: total)
        }
    }

    /// Writes a fresh key to a private temporary file (O_EXCL, 0600), syncs
    /// it, then links it into place: `link` fails rather than replace an
    /// existing key, which a plain rename would silently do.
    static func create(path: String, random: any RandomSource) throws(BankError) {
        var bytes = [UInt8](repeating: 0, count: byteCount)
        defer { for i in bytes.indices { bytes[i] = 0 } }
        bytes.withUnsafeMutableBytes { random.fill($0) }
        var nonce = Bytes16()
        nonce.withUnsafeMutableBytes { SystemRandom().fill($0) }
        let temporary = "\(path).tmp-\(getpid())-\(nonce.hex.prefix(8))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .masterKeyIO(path: temporary, errno: errno) }
        defer { unlink(temporary) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        let writeErrno = errno
        guard written == byteCount, fsync(fd) == 0 else {
            close(fd)
            throw .masterKeyIO(path: temporary, errno: writeErrno)
        }
        close(fd)
        if link(temporary, path) != 0 && errno != EEXIST {
            throw .masterKeyIO(path: path, errno: errno)
        }
        syncDirectory(of: path)
    }

    private static func syncDirectory(of path: String) {
        var directory = "."
        if let slash = path.lastIndex(of: "/") { directory = slash == path.startIndex ? "/" : String(path[..<slash]) }
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 {
            fsync(fd)
            close(fd)
        }
    }
}
