import Benchmark
import Foundation
import MicropayBaseline
import MicropayCore
import MicropaySimulation

// Per-core rates of the engine's batch kernels, one benchmark per lane kernel
// this CPU runs, each beside a naive OpenSSL baseline over the same inputs.
// These sizes are fixed (they take milliseconds); MICROPAY_BENCH_SCALE is for
// the end-to-end batches.

let chainCount = 1024
let chainSteps = 1000

/// 1024 chains, each claimed from index 1000 down to its root: 1,024,000 steps.
struct ChainWork {
    let claims: [HashChain.Claim]
    var steps: Int { claims.reduce(0) { $0 + Int($1.index - $1.last) } }

    static func make() -> ChainWork {
        let random = SeededRandom(seed: 0xC4A1)
        var claims: [HashChain.Claim] = []
        claims.reserveCapacity(chainCount)
        for _ in 0..<chainCount {
            let chainID: Bytes12 = random.bytes()
            let word: Bytes32 = random.bytes()
            let root = HashChain.walk(chainID: chainID, from: UInt32(chainSteps), word: word, to: 0)
            claims.append(HashChain.Claim(chainID: chainID, index: UInt32(chainSteps), word: word, last: 0, lastWord: root))
        }
        return ChainWork(claims: claims)
    }
}

/// 262,144 PaymentOrders over 1024 session keys; every 16th tag is broken,
/// so the count of good tags checks that the work was done.
struct TagWork {
    static let count = 1 << 18
    static let keyCount = 1024
    let records: UnsafeMutableRawBufferPointer
    let keys: [MACKey]
    /// mac(K_CM) as plain bytes, for the naive HMAC() calls.
    let rawKeys: [[UInt8]]
    let keyOfRecord: [Int]
    let expectedGood: Int

    static func make() -> TagWork {
        let random = SeededRandom(seed: 0x7A65)
        let customerMAC = MACKey(macOf: random.secretKey())
        var macKeys: [MACKey] = []
        var raw: [[UInt8]] = []
        for _ in 0..<keyCount {
            let sub = random.secretKey().macSubkey
            macKeys.append(MACKey(sub))
            raw.append(sub.withUnsafeBytes { Array($0) })
        }
        let records = UnsafeMutableRawBufferPointer.allocate(byteCount: count * PaymentOrder.byteCount, alignment: 64)
        var keys: [MACKey] = []
        var keyOfRecord: [Int] = []
        keys.reserveCapacity(count)
        var good = 0
        for r in 0..<count {
            let k = r % keyCount
            var bytes = PaymentOrder.make(bankID: 7, serial: UInt64(k + 1), seq: UInt32(r / keyCount + 1),
                                          cumulative: UInt64(r), item: Bytes16(), customerMAC: customerMAC,
                                          sessionMAC: macKeys[k]).bytes
            if r % 16 == 5 { bytes[60 + r % 16] ^= 0x01 } else { good += 1 }
            bytes.withUnsafeBytes {
                UnsafeMutableRawBufferPointer(rebasing: records[(r * 76)..<(r * 76 + 76)]).copyMemory(from: $0)
            }
            keys.append(macKeys[k])
            keyOfRecord.append(k)
        }
        return TagWork(records: records, keys: keys, rawKeys: raw, keyOfRecord: keyOfRecord, expectedGood: good)
    }
}

// MARK: - Naive baselines: one OpenSSL call per hash, fresh arrays per call

// naiveChainWalk and naiveTagIsValid: the shared baseline in MicropayBaseline.

struct NaiveChainWork {
    let ids: [[UInt8]]
    let words: [[UInt8]]
    let roots: [[UInt8]]
    let steps: Int
    init(_ work: ChainWork) {
        ids = work.claims.map(\.chainID.bytes)
        words = work.claims.map(\.word.bytes)
        roots = work.claims.map(\.lastWord.bytes)
        steps = work.steps
    }
}

func registerKernelBenchmarks() {
    let sha = Engine.activeSHA256Kernel.description
    for kernel in Engine.availableLaneKernels {
        Benchmark(
            "chain steps \(chainCount)x\(chainSteps) | \(kernel)",
            configuration: microConfiguration(Rate.stepsPerSecond, ["kernel": "\(kernel)", "sha256": sha]),
            closure: { benchmark, work in
                let ok = measure(benchmark, items: work.steps, rate: Rate.stepsPerSecond) {
                    try! HashChain.verifyBatch(work.claims, kernel: kernel)
                }
                if !ok.allSatisfy({ $0 }) { benchmark.error("\(kernel): a valid chain failed to verify") }
            },
            setup: { ChainWork.make() })

        Benchmark(
            "order tags \(short(TagWork.count)) | \(kernel)",
            configuration: microConfiguration(Rate.tagsPerSecond, ["kernel": "\(kernel)", "sha256": sha]),
            closure: { benchmark, work in
                let ok = measure(benchmark, items: TagWork.count, rate: Rate.tagsPerSecond) {
                    try! MACKey.verifyBatch(label: .order, keys: work.keys, records: UnsafeRawBufferPointer(work.records),
                                            stride: PaymentOrder.byteCount, macLength: 60, kernel: kernel)
                }
                let good = ok.reduce(0) { $0 + ($1 ? 1 : 0) }
                if good != work.expectedGood { benchmark.error("\(kernel): \(good) good tags, expected \(work.expectedGood)") }
            },
            setup: { TagWork.make() })
    }

    Benchmark(
        "chain steps \(chainCount)x\(chainSteps) | naive OpenSSL SHA256",
        configuration: microConfiguration(Rate.stepsPerSecond, ["kernel": "naive-openssl"]),
        closure: { benchmark, work in
            let good = measure(benchmark, items: work.steps, rate: Rate.stepsPerSecond) { () -> Int in
                var good = 0
                for c in 0..<work.ids.count {
                    let w = naiveChainWalk(chainID: work.ids[c], from: UInt32(chainSteps), word: work.words[c], to: 0)
                    if w == work.roots[c] { good += 1 }
                }
                return good
            }
            if good != work.ids.count { benchmark.error("naive: \(good) of \(work.ids.count) chains verified") }
        },
        setup: { NaiveChainWork(ChainWork.make()) })

    Benchmark(
        "order tags \(short(TagWork.count)) | naive OpenSSL HMAC",
        configuration: microConfiguration(Rate.tagsPerSecond, ["kernel": "naive-openssl"]),
        closure: { benchmark, work in
            let good = measure(benchmark, items: TagWork.count, rate: Rate.tagsPerSecond) { () -> Int in
                var good = 0
                for r in 0..<TagWork.count {
                    // Per-record parse: the record copied out of the buffer.
                    let record = Array(UnsafeRawBufferPointer(rebasing: work.records[(r * 76)..<(r * 76 + 76)]))
                    if naiveTagIsValid(key: work.rawKeys[work.keyOfRecord[r]], record: record) { good += 1 }
                }
                return good
            }
            if good != work.expectedGood { benchmark.error("naive: \(good) good tags, expected \(work.expectedGood)") }
        },
        setup: { TagWork.make() })
}

// MARK: - Ticket opens

struct TicketWork {
    static let count = 1 << 16
    let tickets: [Ticket]
    let encryptionKey: SecretKey

    static func make() -> TicketWork {
        let random = SeededRandom(seed: 0x71C4)
        let merchantKey = random.secretKey()
        var tickets: [Ticket] = []
        tickets.reserveCapacity(count)
        for t in 0..<count {
            let body = TicketBody(customer: 1000, limit: 5000, unit: 5, chainLength: 1000, chainID: random.bytes(),
                                  issued: 1_800_000_000, expires: 1_800_086_400, root: random.bytes(),
                                  sessionKey: random.secretKey())
            tickets.append(Ticket.seal(body: body, bankID: 7, serial: UInt64(t + 1), merchant: 2002,
                                       merchantKey: merchantKey, nonce: random.bytes()))
        }
        return TicketWork(tickets: tickets, encryptionKey: merchantKey.encryptionSubkey)
    }
}

func registerTicketBenchmarks() {
    Benchmark(
        "ticket open \(short(TicketWork.count)) | Ticket.open(encryptionKey:)",
        configuration: microConfiguration(Rate.opensPerSecond, [:]),
        closure: { benchmark, work in
            let opened = measure(benchmark, items: work.tickets.count, rate: Rate.opensPerSecond) { () -> Int in
                var opened = 0
                for ticket in work.tickets {
                    if let body = try? ticket.open(encryptionKey: work.encryptionKey) {
                        blackHole(body)
                        opened += 1
                    }
                }
                return opened
            }
            if opened != work.tickets.count { benchmark.error("\(opened) of \(work.tickets.count) tickets opened") }
        },
        setup: { TicketWork.make() })
}
