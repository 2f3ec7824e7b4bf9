import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The merchant's commands when the state is busy, or its disk fails.
@Suite("micropay merchant: a busy or failing state")
struct MerchantStateTests {
    let dir = temporaryDirectory()
    let vectors: Vectors

    init() throws { vectors = try Vectors() }

    var identity: [String] { ["--bank-id", "7", "--merchant", "2002", "--key", vectors.merchantKey, "--now", "\(vectors.now)"] }

    @Test("a state another process holds: exit 75 (try again), and nothing changes")
    func busy() throws {
        write(vectors.batch, to: "\(dir)/batch.mpb")
        let fd = open("\(dir)/m.db.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(flock(fd, LOCK_EX | LOCK_NB) == 0)
        let run = try micropay(["merchant", "verify", "batch.mpb"] + identity + ["--state", "m.db"], in: dir)
        #expect(run.status == 75, "\(run.stderr)")
        #expect(run.stderr.contains("in use by another process"))
        flock(fd, LOCK_UN)
        let again = try micropay(["merchant", "verify", "batch.mpb"] + identity + ["--state", "m.db"], in: dir)
        #expect(again.status == 0, "\(again.stderr)")
    }

    @Test("a ticket log that cannot be written (a full disk): exit 74, an I/O error, not bad data")
    func fullDisk() throws {
        write(Array("MPB1".utf8), to: "\(dir)/empty.mpb")
        write(vectors.batch, to: "\(dir)/batch.mpb")
        let created = try micropay(["merchant", "verify", "empty.mpb"] + identity + ["--state", "m.db"], in: dir)
        #expect(created.status == 0, "\(created.stderr)")
        try FileManager.default.removeItem(atPath: "\(dir)/m.db.tickets.1")
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/m.db.tickets.1", withDestinationPath: "/dev/full")
        let run = try micropay(["merchant", "verify", "batch.mpb"] + identity + ["--state", "m.db"], in: dir)
        #expect(run.status == 74, "\(run.stderr)")
        #expect(run.stderr.contains("No space left on device"))
    }
}
