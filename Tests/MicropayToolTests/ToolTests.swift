import Foundation
import MicropaySimulation
import Testing

/// The `micropay` executable: beside the test bundle (SwiftPM puts products
/// and test bundles in one folder), or in .build/debug of this package.
let toolURL: URL = {
    var candidates: [URL] = []
    if let exe = Bundle.main.executableURL { candidates.append(exe.deletingLastPathComponent()) }
    candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
    let bundle = Bundle.allBundles.map(\.bundleURL).filter { $0.pathExtension == "xctest" }
    candidates += bundle.map { $0.deletingLastPathComponent() }
    let package = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    candidates.append(package.appendingPathComponent(".build/debug"))
    for folder in candidates {
        let url = folder.appendingPathComponent("micropay")
        if FileManager.default.isExecutableFile(atPath: url.path) { return url }
    }
    fatalError("the micropay executable was not found (looked in \(candidates.map(\.path))): build it with `swift build`")
}()

struct ToolRun {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs the tool in `directory` and waits for it.
@discardableResult
func micropay(_ arguments: [String], in directory: String) throws -> ToolRun {
    let process = Process()
    process.executableURL = toolURL
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    // Files, not pipes: a chatty child cannot block on a full pipe.
    let outPath = "\(directory)/.stdout-\(UUID().uuidString)"
    let errPath = "\(directory)/.stderr-\(UUID().uuidString)"
    precondition(FileManager.default.createFile(atPath: outPath, contents: nil), "cannot create \(outPath)")
    precondition(FileManager.default.createFile(atPath: errPath, contents: nil), "cannot create \(errPath)")
    defer { try? FileManager.default.removeItem(atPath: outPath); try? FileManager.default.removeItem(atPath: errPath) }
    let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
    let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
    process.standardOutput = out
    process.standardError = err
    try process.run()
    process.waitUntilExit()
    try out.close()
    try err.close()
    return ToolRun(status: process.terminationStatus,
                   stdout: String(decoding: FileManager.default.contents(atPath: outPath) ?? Data(), as: UTF8.self),
                   stderr: String(decoding: FileManager.default.contents(atPath: errPath) ?? Data(), as: UTF8.self))
}

func temporaryDirectory() -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("micropay-tool-\(UUID().uuidString)").path
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

/// The protocol's vectors (Resources/v1.json).
struct Vectors {
    let json: [String: Any]

    init() throws {
        let url = try #require(Bundle.module.url(forResource: "v1", withExtension: "json"))
        json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    subscript(_ key: String) -> [String: Any] { json[key] as? [String: Any] ?? [:] }

    var merchantKey: String { self["keys"]["K_M"] as! String }
    var batch: [UInt8] { hexBytes(self["batch"]["file"] as! String) }
    var truncatedBatch: [UInt8] { hexBytes(self["batch_truncated"]["file"] as! String) }
    var now: Int { self["batch"]["now"] as! Int }
    var expected: [[String: Any]] { self["batch"]["expected"] as! [[String: Any]] }
    var expectedCodes: [UInt8] { expected.map { UInt8($0["code"] as! Int) } }
}

func hexBytes(_ hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        out.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return out
}

func parseJSON(_ text: String) throws -> [String: Any] {
    try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
}

func write(_ bytes: [UInt8], to path: String) {
    precondition(FileManager.default.createFile(atPath: path, contents: Data(bytes)), "cannot write \(path)")
}

@Suite("micropay merchant verify")
struct VerifyTests {
    let dir = temporaryDirectory()
    let vectors: Vectors

    init() throws { vectors = try Vectors() }

    var identity: [String] { ["--bank-id", "7", "--merchant", "2002", "--key", vectors.merchantKey, "--now", "\(vectors.now)"] }

    @Test("the v1 batch: exactly the expected verdict bytes and JSON counts")
    func v1Batch() throws {
        write(vectors.batch, to: "\(dir)/batch.mpb")
        let run = try micropay(["merchant", "verify", "batch.mpb"] + identity + ["--json", "--verdicts", "v.bin"], in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.isEmpty)
        #expect([UInt8](FileManager.default.contents(atPath: "\(dir)/v.bin") ?? Data()) == vectors.expectedCodes)
        let json = try parseJSON(run.stdout)
        let expected = vectors.expected
        #expect(json["records"] as? Int == expected.count)
        #expect(json["accepted"] as? Int == expected.filter { $0["verdict"] as? String == "accepted" }.count)
        #expect(json["credited"] as? Int == expected.reduce(0) { $0 + ($1["credited"] as! Int) })
        var counts: [String: Int] = [:]
        for e in expected { counts[e["verdict"] as! String, default: 0] += 1 }
        #expect(json["verdicts"] as? [String: Int] == counts)
        #expect(json["truncated_tail"] as? Bool == false)
        let verifySeconds = try #require(json["verify_seconds"] as? Double)
        let seconds = try #require(json["seconds"] as? Double)
        #expect(verifySeconds > 0 && verifySeconds <= seconds)
        #expect(json["records_per_second"] as? Double ?? 0 > 0)
    }

    @Test("a truncated tail: exit 3, the same verdicts, truncated_tail true, one line naming file and offset")
    func truncatedTail() throws {
        write(vectors.truncatedBatch, to: "\(dir)/cut.mpb")
        let run = try micropay(["merchant", "verify", "cut.mpb"] + identity + ["--json", "--verdicts", "v.bin", "--state", "m.db"], in: dir)
        #expect(run.status == 3)
        #expect([UInt8](FileManager.default.contents(atPath: "\(dir)/v.bin") ?? Data()) == vectors.expectedCodes)
        let json = try parseJSON(run.stdout)
        #expect(json["truncated_tail"] as? Bool == true)
        #expect(json["truncated_tail_offset"] as? Int == vectors.batch.count)
        #expect(json["records"] as? Int == vectors.expectedCodes.count)
        let lines = run.stderr.split(separator: "\n")
        #expect(lines.count == 1)
        #expect(run.stderr.contains("cut.mpb") && run.stderr.contains("offset \(vectors.batch.count)"))
        // The complete records were committed (§10): verifying again accepts nothing new.
        let again = try micropay(["merchant", "verify", "cut.mpb"] + identity + ["--json", "--state", "m.db"], in: dir)
        #expect(again.status == 3)
        #expect(try parseJSON(again.stdout)["credited"] as? Int == 0)
    }

    @Test("without --json: a readable summary")
    func summary() throws {
        write(vectors.batch, to: "\(dir)/batch.mpb")
        let run = try micropay(["merchant", "verify", "batch.mpb"] + identity, in: dir)
        #expect(run.status == 0)
        #expect(run.stdout.contains("38 records verified"))
        #expect(run.stdout.contains("credited 26000"))
        #expect(!run.stdout.contains("\u{1B}"))  // no progress bar when not a terminal
    }

    @Test("bad input: one clear line, the documented status, no state or verdicts written",
          arguments: [
            (["missing.mpb"], "missing.mpb", Int32(66)),
            (["notbatch.bin"], "notbatch.bin", Int32(65)),
            (["empty.mpb"], "empty.mpb", Int32(65)),
            (["batch.mpb", "--key", "xyz"], "--key", Int32(65)),
            (["batch.mpb", "--key", String(repeating: "ab", count: 31)], "--key", Int32(65)),
            (["batch.mpb", "--key-file", "nokey"], "nokey", Int32(66)),
            (["batch.mpb", "--key-file", "badkey"], "badkey", Int32(65)),
          ])
    func badInput(arguments: [String], names: String, status: Int32) throws {
        write(vectors.batch, to: "\(dir)/batch.mpb")
        write(Array("this is not a batch\n".utf8), to: "\(dir)/notbatch.bin")
        write([], to: "\(dir)/empty.mpb")
        write(Array("not a key\n".utf8), to: "\(dir)/badkey")
        var args = ["merchant", "verify"] + arguments + ["--bank-id", "7", "--merchant", "2002", "--state", "m.db", "--verdicts", "v.bin"]
        if !arguments.contains("--key") && !arguments.contains("--key-file") { args += ["--key", vectors.merchantKey] }
        let run = try micropay(args, in: dir)
        #expect(run.status == status, "\(run.stderr)")
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.split(separator: "\n").count == 1)
        #expect(run.stderr.hasPrefix("micropay: ") && run.stderr.contains(names))
        let left = try FileManager.default.contentsOfDirectory(atPath: dir)
        #expect(!left.contains { $0.hasPrefix("m.db") || $0.hasPrefix("v.bin") }, "\(left)")
    }

    @Test("a state made for another merchant or key is refused and keeps what it held")
    func foreignState() throws {
        write(vectors.batch, to: "\(dir)/batch.mpb")
        #expect(try micropay(["merchant", "verify", "batch.mpb"] + identity + ["--state", "m.db"], in: dir).status == 0)
        let otherMerchant = try micropay(["merchant", "verify", "batch.mpb", "--bank-id", "7", "--merchant", "2003",
                                          "--key", vectors.merchantKey, "--state", "m.db"], in: dir)
        #expect(otherMerchant.status == 65)
        #expect(otherMerchant.stderr.contains("m.db"))
        let otherKey = try micropay(["merchant", "verify", "batch.mpb", "--bank-id", "7", "--merchant", "2002",
                                     "--key", String(repeating: "11", count: 32), "--state", "m.db"], in: dir)
        #expect(otherKey.status == 65)
        // The state still holds the first verification: every accepted payment is now a duplicate or a replay.
        let again = try micropay(["merchant", "verify", "batch.mpb"] + identity + ["--state", "m.db", "--json"], in: dir)
        #expect(again.status == 0)
        #expect(try parseJSON(again.stdout)["credited"] as? Int == 0)
    }

    @Test("--threads is validated")
    func threads() throws {
        write(vectors.batch, to: "\(dir)/batch.mpb")
        #expect(try micropay(["merchant", "verify", "batch.mpb"] + identity + ["--threads", "0"], in: dir).status == 64)
        #expect(try micropay(["merchant", "verify", "batch.mpb"] + identity + ["--threads", "2"], in: dir).status == 0)
        // The engine's table takes up to 256 shards (the cap on the default, every core, too).
        #expect(try micropay(["merchant", "verify", "batch.mpb"] + identity + ["--threads", "256"], in: dir).status == 0)
        #expect(try micropay(["merchant", "verify", "batch.mpb"] + identity + ["--threads", "257"], in: dir).status == 64)
    }

    @Test("gen batch, then merchant verify: exactly the counts in F.json")
    func generated() throws {
        let gen = try micropay(["gen", "batch", "--out", "g.mpb", "--tickets", "50", "--payments", "5000",
                                "--fraud-rate", "0.1", "--seed", "9"], in: dir)
        #expect(gen.status == 0, "\(gen.stderr)")
        let meta = try parseJSON(String(decoding: try #require(FileManager.default.contents(atPath: "\(dir)/g.mpb.json")), as: UTF8.self))
        let expected = try #require(meta["expected"] as? [String: Any])
        let run = try micropay(["merchant", "verify", "g.mpb", "--bank-id", "\(meta["bank_id"] as! Int)",
                                "--merchant", "\(meta["merchant"] as! Int)", "--key", meta["key"] as! String,
                                "--now", "\(meta["now"] as! Int)", "--json"], in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        let json = try parseJSON(run.stdout)
        #expect(json["records"] as? Int == expected["records"] as? Int)
        #expect(json["accepted"] as? Int == expected["accepted"] as? Int)
        #expect(json["credited"] as? Int == expected["credited"] as? Int)
        #expect(json["verdicts"] as? [String: Int] == expected["verdicts"] as? [String: Int])
    }
}

@Suite("micropay demo")
struct DemoTests {
    let dir = temporaryDirectory()

    @Test("a small day: the audit passes, every record gets the verdict it was built for, and a seed gives the same day")
    func smallDay() throws {
        let args = ["demo", "--dir", "d", "--customers", "4", "--merchants", "2", "--payments", "400",
                    "--fraud-rate", "0.2", "--seed", "5", "--reset"]
        let run = try micropay(args, in: dir)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stdout.contains("audit: consistent"))
        #expect(run.stdout.contains("each one the verdict the record was built to get"))
        #expect(run.stdout.contains("opened intact"))
        // The same seed: the same verdicts and money (times differ).
        let again = try micropay(args, in: dir)
        #expect(again.status == 0)
        func stable(_ text: String) -> [String] {
            // Stage lines carry times ("0.12 s"); the last line names the time too.
            text.split(separator: "\n").map(String.init).filter { !$0.contains(" s ") && !$0.hasPrefix("day ") }
        }
        #expect(stable(run.stdout) == stable(again.stdout))
        // Without --reset the next day runs on the same bank; the audit covers both.
        let next = try micropay(["demo", "--dir", "d", "--customers", "4", "--merchants", "2", "--payments", "100"], in: dir)
        #expect(next.status == 0, "\(next.stderr)")
        #expect(next.stdout.contains("day 2"))
        #expect(next.stdout.contains("audit: consistent"))
    }

    @Test("a folder that is not the demo's is refused, not wiped")
    func foreignFolder() throws {
        try FileManager.default.createDirectory(atPath: "\(dir)/mine", withIntermediateDirectories: true)
        write([1, 2, 3], to: "\(dir)/mine/precious")
        let run = try micropay(["demo", "--dir", "mine", "--reset", "--payments", "10"], in: dir)
        #expect(run.status == 64)
        #expect(FileManager.default.fileExists(atPath: "\(dir)/mine/precious"))
    }
}
