import Foundation
import MicropayCore
import MicropayMerchant
import Testing

/// The known-answer vectors of PROTOCOL.md §12, from this target's own copy.
enum Vectors {
    nonisolated(unsafe) static let root: [String: Any] = {
        let url = Bundle.module.url(forResource: "v1", withExtension: "json")!
        let data = try! Data(contentsOf: url)
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()

    static func object(_ path: String...) -> [String: Any] {
        var node: Any = root
        for key in path { node = (node as! [String: Any])[key]! }
        return node as! [String: Any]
    }

    static func hex(_ value: Any?) -> [UInt8] { [UInt8](hex: value as! String)! }
    static func int(_ value: Any?) -> UInt64 { (value as! NSNumber).uint64Value }

    static var keys: [String: Any] { object("keys") }
    static var bankID: UInt32 { UInt32(int(keys["bank_id"])) }
    static var merchant: UInt64 { int(keys["merchant"]) }
    static var merchantKey: SecretKey { try! SecretKey(bytes: hex(keys["K_M"])) }
}

/// A fresh path in the temporary directory, removed (with its WAL files) by `cleanUp`.
struct TemporaryStorePath {
    let path: String

    init(_ name: String = "merchant") {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(name)-\(UUID().uuidString).sqlite").path
    }

    /// Removes the store, its WAL files, its lock and its ticket logs.
    func cleanUp() {
        let directory = (path as NSString).deletingLastPathComponent
        let logs = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [])
            .filter { $0.hasPrefix((path as NSString).lastPathComponent + ".tickets.") }
        for name in ["", "-wal", "-shm", ".lock"].map({ path + $0 }) + logs.map({ (directory as NSString).appendingPathComponent($0) }) {
            try? FileManager.default.removeItem(atPath: name)
        }
    }
}

/// Random bytes played back from a script, for known-answer tests of what
/// the merchant draws (goods key, item nonce, wrap nonce, envelope nonce).
final class ScriptedRandom: RandomSource, @unchecked Sendable {
    private var script: [UInt8]
    private let lock = NSLock()

    init(_ chunks: [UInt8]...) { script = chunks.flatMap { $0 } }

    func fill(_ buffer: UnsafeMutableRawBufferPointer) {
        lock.lock(); defer { lock.unlock() }
        for i in 0..<buffer.count {
            buffer[i] = script.isEmpty ? 0xA5 : script.removeFirst()
        }
    }
}

func makeVectorMerchant(store: MerchantStore, random: any RandomSource = SystemRandom()) throws -> Merchant {
    try Merchant(bankID: Vectors.bankID, merchant: Vectors.merchant, merchantKey: Vectors.merchantKey,
                 store: store, random: random)
}

extension Merchant {
    /// `verifyBatch` over the bytes of an array (tests).
    func verifyBatch(
        bytes: [UInt8], now: UInt64, threads: Int = Merchant.defaultThreads, onProgress: ((Int) -> Void)? = nil
    ) throws -> BatchSummary {
        try bytes.withUnsafeBytes { buffer in
            try Result { () throws(MerchantError) in
                try verifyBatch(buffer, now: now, threads: threads, onProgress: onProgress)
            }.get()
        }
    }
}
