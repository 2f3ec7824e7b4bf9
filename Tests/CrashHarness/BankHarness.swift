import Foundation
import MicropayBank
import MicropayCore

/// `CrashHarness bank run <dir> [iterations]`: issues tickets, settles
/// Deposits, funds and withdraws on the ledger in `dir` until killed (or for
/// `iterations` rounds). Before each operation it writes the request,
/// Deposit or transfer to a pending file; on start it re-sends whatever is
/// pending, as a client whose connection dropped would, so a crash at any
/// instant is followed by a retry. Exits 3 if a retry is not answered byte
/// for byte, or moves a transfer's money again. Each transfer the bank has
/// answered is appended to `transfers.log` ("kind id amount"; a line may
/// appear twice if a kill fell between the append and clearing the pending
/// file): what the ledger's funded and withdrawn totals must add up to.
///
/// `CrashHarness bank bench <dir> <count> <full|normal>`: times `count`
/// ticket issues on a fresh durable ledger and prints issues per second.
func runBankHarness(_ arguments: [String]) -> Int32 {
    do {
        switch arguments.first {
        case "run" where arguments.count >= 2:
            let iterations = arguments.count > 2 ? Int(arguments[2]) ?? Int.max : Int.max
            return try BankHarness(directory: arguments[1]).run(iterations: iterations)
        case "bench" where arguments.count == 4:
            guard let count = Int(arguments[2]),
                  let durability = SQLiteLedgerStore.Durability(rawValue: arguments[3].uppercased()) else { return 2 }
            return try BankHarness.bench(directory: arguments[1], count: count, durability: durability)
        default:
            FileHandle.standardError.write(Data("usage: CrashHarness bank run <dir> [iterations] | bench <dir> <count> <full|normal>\n".utf8))
            return 2
        }
    } catch {
        FileHandle.standardError.write(Data("bank harness: \(error)\n".utf8))
        return 1
    }
}

struct BankHarness {
    static let bankID: UInt32 = 7
    static let customer: UInt64 = 1001
    static let merchant: UInt64 = 2002
    /// The harness's clock: tickets are issued at `epoch`, settled a second later.
    static let epoch: UInt64 = 1_800_000_000

    let directory: URL
    let bank: Bank
    let customerMAC: MACKey
    let merchantMAC: MACKey
    var pendingRequest: URL { directory.appendingPathComponent("pending-request") }
    var pendingDeposit: URL { directory.appendingPathComponent("pending-deposit") }
    var pendingTransfer: URL { directory.appendingPathComponent("pending-transfer") }
    var transfersLog: URL { directory.appendingPathComponent("transfers.log") }

    init(directory path: String) throws {
        directory = URL(fileURLWithPath: path)
        bank = try Bank.open(ledgerPath: directory.appendingPathComponent("ledger.sqlite").path,
                             masterKeyPath: directory.appendingPathComponent("master.key").path,
                             bankID: Self.bankID, firstSerial: 1)
        // Each open is its own transaction: a crash between them is resumed here.
        if try bank.account(Self.customer) == nil { _ = try bank.openCustomer(number: Self.customer) }
        if try bank.account(Self.merchant) == nil { _ = try bank.openMerchant(number: Self.merchant) }
        customerMAC = MACKey(macOf: try bank.accountKey(Self.customer))
        merchantMAC = MACKey(macOf: try bank.accountKey(Self.merchant))
    }

    func run(iterations: Int) throws -> Int32 {
        if let code = try resendPending() { return code }
        var rng = SplitMix64(seed: UInt64(getpid()) ^ UInt64(Date().timeIntervalSince1970 * 1000))
        for round in 0..<iterations {
            if try bank.balance(of: Self.customer) < 2_000_000 {
                guard try transfer("fund", amount: 10_000_000, rng: &rng) else { return 3 }
            }
            guard let (issued, claims) = try issueOne(round: round, rng: &rng) else { return 3 }
            let deposit = Deposit.make(bankID: Self.bankID, batchID: issued.serial, merchant: Self.merchant,
                                       claims: claims, merchantMAC: merchantMAC)
            try write(deposit.bytes, to: pendingDeposit)
            let receipt = try bank.settle(deposit: deposit.bytes, now: Self.epoch + 1)
            if rng.next() % 3 == 0, try bank.settle(deposit: deposit.bytes, now: Self.epoch + 1) != receipt { return 3 }
            try? FileManager.default.removeItem(at: pendingDeposit)
            if round % 10 == 9 { _ = try bank.refundExpired(now: Self.epoch + 10 * 86400) }
            if round % 7 == 3 {
                guard try transfer("withdraw", amount: 1 + rng.next() % 1000, rng: &rng) else { return 3 }
            }
            if round % 5 == 1 {
                guard try transfer("fund", amount: 1 + rng.next() % 100_000, rng: &rng) else { return 3 }
            }
        }
        return 0
    }

    /// Funds or withdraws under a new request id, pending until answered, and
    /// logs it; false if a retry moved the money again.
    private func transfer(_ kind: String, amount: UInt64, rng: inout SplitMix64) throws -> Bool {
        let line = "\(kind) \(UUID().uuidString) \(amount)"
        try write(Array(line.utf8), to: pendingTransfer)
        guard try send(line) == .moved else { return false }
        if rng.next() % 3 == 0, try send(line) != .alreadyDone { return false }
        try log(line)
        try? FileManager.default.removeItem(at: pendingTransfer)
        return true
    }

    /// Sends the transfer a pending-transfer line describes.
    private func send(_ line: String) throws -> Bank.TransferOutcome {
        let fields = line.split(separator: " ").map(String.init)
        guard fields.count == 3, let amount = UInt64(fields[2]) else { throw HarnessError.pendingTransfer(line) }
        switch fields[0] {
        case "fund": return try bank.fund(customer: Self.customer, amount: amount, requestID: fields[1])
        case "withdraw": return try bank.withdraw(account: Self.customer, amount: amount, requestID: fields[1])
        default: throw HarnessError.pendingTransfer(line)
        }
    }

    private func log(_ line: String) throws {
        if !FileManager.default.fileExists(atPath: transfersLog.path) {
            _ = FileManager.default.createFile(atPath: transfersLog.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: transfersLog)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data((line + "\n").utf8))
    }

    enum HarnessError: Error {
        case pendingTransfer(String)
    }

    /// A client that lost its connection sends the same bytes again.
    private func resendPending() throws -> Int32? {
        if let bytes = try? [UInt8](Data(contentsOf: pendingRequest)) {
            do { _ = try bank.issue(request: bytes, now: Self.epoch) } catch {
                // A request cut short by the kill never reached the bank: nothing to retry.
                guard case .malformed = error else { throw error }
            }
            try? FileManager.default.removeItem(at: pendingRequest)
        }
        if let bytes = try? [UInt8](Data(contentsOf: pendingDeposit)) {
            do { _ = try bank.settle(deposit: bytes, now: Self.epoch + 1) } catch {
                guard case .malformed = error else { throw error }
            }
            try? FileManager.default.removeItem(at: pendingDeposit)
        }
        // Written atomically, so whole: the kill fell before the bank answered or after.
        if let data = try? Data(contentsOf: pendingTransfer) {
            let line = String(decoding: data, as: UTF8.self)
            _ = try send(line)
            try log(line)
            try? FileManager.default.removeItem(at: pendingTransfer)
        }
        return nil
    }

    /// Issues one ticket (chain or order mode, alternately) and builds the
    /// claims its merchant would deposit; nil if a retry came back different.
    private func issueOne(round: Int, rng: inout SplitMix64) throws -> (IssuedTicket, [Deposit.Claim])? {
        var requestID = Bytes16()
        requestID.withUnsafeMutableBytes { SystemRandom().fill($0) }
        let request: TicketRequest
        var chain: (id: Bytes12, seed: Bytes32, length: UInt32)?
        if round % 2 == 0 {
            let length = UInt32(8 + rng.next() % 56)
            var chainID = Bytes12()
            chainID.withUnsafeMutableBytes { SystemRandom().fill($0) }
            var seed = Bytes32()
            seed.withUnsafeMutableBytes { SystemRandom().fill($0) }
            let unit = 1 + rng.next() % 100
            request = TicketRequest.make(
                bankID: Self.bankID, customer: Self.customer, merchant: Self.merchant, limit: UInt64(length) * unit,
                unit: unit, chainLength: length, lifetime: 3600,
                root: HashChain.walk(chainID: chainID, from: length, word: seed, to: 0), chainID: chainID,
                requestID: requestID, customerMAC: customerMAC)
            chain = (chainID, seed, length)
        } else {
            request = TicketRequest.make(
                bankID: Self.bankID, customer: Self.customer, merchant: Self.merchant, limit: 1000 + rng.next() % 50_000,
                unit: 0, chainLength: 0, lifetime: 3600, requestID: requestID, customerMAC: customerMAC)
        }
        try write(request.bytes, to: pendingRequest)
        let issued = try bank.issue(request: request.bytes, now: Self.epoch)
        if rng.next() % 3 == 0 {
            let again = try bank.issue(request: request.bytes, now: Self.epoch)
            guard again.isRetry, again.envelope == issued.envelope, again.ticket == issued.ticket else { return nil }
        }
        try? FileManager.default.removeItem(at: pendingRequest)

        let serial = issued.serial
        if let chain {
            let index = UInt32(1 + rng.next() % UInt64(chain.length))
            let word = HashChain.walk(chainID: chain.id, from: chain.length, word: chain.seed, to: index)
            return (issued, [.chain(ChainPayment(bankID: Self.bankID, serial: serial, index: index, word: word))])
        }
        let sessionKey = try bank.sessionKeyForHarness(issued)
        let sessionMAC = MACKey(macOf: sessionKey)
        let first = rng.next() % (request.limit / 2)
        let orders = [(UInt32(1), first), (UInt32(2), first + rng.next() % (request.limit - first))].map { seq, cumulative in
            Deposit.Claim.order(PaymentOrder.make(bankID: Self.bankID, serial: serial, seq: seq, cumulative: cumulative,
                                                  item: Bytes16(), customerMAC: customerMAC, sessionMAC: sessionMAC))
        }
        return (issued, orders)
    }

    /// Atomic (temp + rename): a kill never leaves half a pending file.
    private func write(_ bytes: [UInt8], to url: URL) throws {
        try Data(bytes).write(to: url, options: .atomic)
    }

    static func bench(directory: String, count: Int, durability: SQLiteLedgerStore.Durability) throws -> Int32 {
        let dir = URL(fileURLWithPath: directory)
        let bank = try Bank.open(ledgerPath: dir.appendingPathComponent("bench.sqlite").path,
                                 masterKeyPath: dir.appendingPathComponent("bench.key").path,
                                 bankID: bankID, durability: durability)
        let customer = try bank.openCustomer()
        let merchant = try bank.openMerchant()
        try bank.fund(customer: customer.number, amount: UInt64(count) * 1000)
        let mac = MACKey(macOf: customer.key)
        let requests = (0..<count).map { _ in
            TicketRequest.make(bankID: bankID, customer: customer.number, merchant: merchant.number, limit: 1000,
                               unit: 0, chainLength: 0, lifetime: 3600, requestID: .random(), customerMAC: mac).bytes
        }
        let start = DispatchTime.now().uptimeNanoseconds
        for request in requests { _ = try bank.issue(request: request, now: epoch) }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        print("issued \(count) tickets in \(String(format: "%.3f", seconds)) s: \(String(format: "%.0f", Double(count) / seconds)) issues/s (synchronous=\(durability.rawValue), WAL)")
        return 0
    }
}

extension Bank {
    /// The customer's view: K_CM out of the Envelope, opened with K_C.
    func sessionKeyForHarness(_ issued: IssuedTicket) throws -> SecretKey {
        try issued.envelope.open(customerKey: try accountKey(issued.envelope.customer)).sessionKey
    }
}
