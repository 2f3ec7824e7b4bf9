import Foundation
import MicropayBank
import MicropayCore
import Testing

/// The known-answer vectors of Resources/v1.json.
enum Vectors {
    nonisolated(unsafe) static let json: [String: Any] = {
        guard let url = Bundle.module.url(forResource: "v1", withExtension: "json"),
              let data = try? Data(contentsOf: url),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            Issue.record("Resources/v1.json is missing or unreadable")
            return [:]
        }
        return object
    }()

    static func section(_ name: String) -> [String: Any] { json[name] as? [String: Any] ?? [:] }
}

extension Dictionary where Key == String, Value == Any {
    func hex(_ key: String) -> [UInt8] {
        guard let text = self[key] as? String, let bytes = [UInt8](hex: text) else {
            Issue.record("vector field \(key) is not hex")
            return []
        }
        return bytes
    }

    func u64(_ key: String) -> UInt64 {
        if let n = self[key] as? NSNumber { return n.uint64Value }
        Issue.record("vector field \(key) is not a number")
        return 0
    }

    func dict(_ key: String) -> [String: Any] { self[key] as? [String: Any] ?? [:] }
}

/// Hands out exactly the bytes a test scripts, in order; records an issue
/// if asked for more or for a different size, so a vector test cannot pass
/// on nonces it did not choose.
final class ScriptedRandom: RandomSource, @unchecked Sendable {
    private let lock = NSLock()
    private var chunks: [[UInt8]]

    init(_ chunks: [[UInt8]]) { self.chunks = chunks }

    func push(_ chunk: [UInt8]) { lock.withLock { chunks.append(chunk) } }

    var remaining: Int { lock.withLock { chunks.count } }

    func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        let next: [UInt8]? = lock.withLock { chunks.isEmpty ? nil : chunks.removeFirst() }
        guard let next, next.count == buffer.count else {
            Issue.record("scripted random: asked for \(buffer.count) bytes, had \(next?.count ?? 0)")
            SystemRandom().fill(buffer)
            return
        }
        buffer.copyBytes(from: next)
    }
}

/// A fresh directory under the system's temporary directory.
func temporaryDirectory(_ name: String = #function) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("micropay-bank-\(name.filter(\.isLetter))-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A bank on a fresh SQLite ledger with the vectors' master key and bank id.
func makeBank(
    firstSerial: UInt64 = 1, random: any RandomSource = SystemRandom(), policy: BankPolicy = BankPolicy(),
    durability: SQLiteLedgerStore.Durability = .off, master: SecretKey? = nil
) throws -> Bank {
    let dir = try temporaryDirectory()
    let store = try SQLiteLedgerStore(path: dir.appendingPathComponent("ledger.sqlite").path, durability: durability)
    let key = try master ?? SecretKey(hex: Vectors.section("keys")["master"] as? String ?? "")
    return try Bank(store: store, master: key, bankID: 7, policy: policy, random: random, firstSerial: firstSerial)
}

/// Every account's balance: a snapshot to show an operation changed nothing.
func snapshot(_ bank: Bank, _ accounts: [UInt64]) throws -> [UInt64: UInt64] {
    var result: [UInt64: UInt64] = [:]
    for account in accounts { result[account] = try bank.balance(of: account) }
    return result
}

/// The records of a batch file (§10): "MPB1" then u16-length-prefixed objects.
func batchRecords(_ file: [UInt8]) -> [[UInt8]] {
    guard file.count >= 4, Array(file[0..<4]) == Array("MPB1".utf8) else { return [] }
    var records: [[UInt8]] = []
    var offset = 4
    while offset + 2 <= file.count {
        let length = Int(file[offset]) << 8 | Int(file[offset + 1])
        guard offset + 2 + length <= file.count else { break }
        records.append(Array(file[offset + 2..<offset + 2 + length]))
        offset += 2 + length
    }
    return records
}
