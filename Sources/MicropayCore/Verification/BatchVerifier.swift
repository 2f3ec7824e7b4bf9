import Dispatch
internal import CEngine

/// The merchant's batch verifier (PROTOCOL §7, §10) over the engine's ticket
/// table: records are dealt to `threads` shards by serial, each shard judges
/// its records in file order, hashing whole groups of independent serials
/// through the multi-lane kernels. Verdicts, credits and the final state are
/// exactly those of judging the records one by one.
///
/// Memory: the ticket table, plus a window of at most `windowRecords`
/// records' results; never the whole batch.
public final class BatchVerifier: @unchecked Sendable {
    public let bankID: UInt32
    public let merchant: UInt64
    public let threads: Int
    /// Records verified between two hand-overs of results.
    public let windowRecords: Int
    private let handle: OpaquePointer

    /// `kernel` pins the lane kernel (tests, benchmarks); nil follows the active one.
    public init(bankID: UInt32, merchant: UInt64, merchantKey: SecretKey, threads: Int, windowRecords: Int = 1 << 20,
                kernel: Engine.LaneKernel? = nil) throws(MicropayError) {
        precondition(threads >= 1 && windowRecords >= 1)
        Engine.ensureInitialized()
        self.bankID = bankID
        self.merchant = merchant
        self.threads = threads
        self.windowRecords = windowRecords
        guard let handle = mp_verifier_new(bankID, merchant, merchantKey.pointer, UInt32(threads)) else {
            fatalError("out of memory creating the ticket table")
        }
        self.handle = handle
        if let kernel, mp_verifier_set_kernel(handle, kernel.c) != MP_OK {
            throw .unsupportedKernel(kernel.description)
        }
    }

    deinit { mp_verifier_free(handle) }

    public var ticketCount: Int { mp_verifier_ticket_count(handle) }

    /// Adds a ticket the merchant had registered before. Throws for a serial already there.
    public func load(_ ticket: TicketProgress) throws(MicropayError) {
        var export = mp_ticket_export()
        Self.fill(&export, from: ticket)
        defer { Engine.zero(UnsafeMutableRawBufferPointer(start: &export.session_key, count: 32)) }
        guard mp_verifier_load(handle, &export) == MP_OK else {
            throw .invalidField(.ticket, field: "serial", reason: "ticket \(ticket.serial) loaded twice")
        }
    }

    /// One record's result, in file order.
    public struct Outcome {
        /// Offset of the record's length prefix in the buffer.
        public let offset: Int
        /// The record's bytes (a view into the buffer).
        public let bytes: UnsafeRawBufferPointer
        public let verdict: Verdict
        public let credited: UInt64
    }

    /// Verifies the batch file in `buffer` at `now`, calling `emit` for each
    /// record in file order. Returns the offset of a truncated tail, if any.
    public func verify(
        _ buffer: UnsafeRawBufferPointer, now: UInt64, emit: (Outcome) -> Void
    ) throws(BatchFileError) -> Int? {
        var reader = try BatchFileReader(buffer)
        guard let base = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return nil }
        let shards = threads
        var verdicts = [UInt8](repeating: 0, count: windowRecords)
        var credited = [UInt64](repeating: 0, count: windowRecords)
        var refs = [[mp_record_ref]](repeating: [], count: shards)
        var window: [(offset: Int, start: Int, length: Int)] = []
        window.reserveCapacity(windowRecords)
        for s in 0..<shards { refs[s].reserveCapacity(windowRecords / shards + 64) }
        var finished = false
        while !finished {
            window.removeAll(keepingCapacity: true)
            for s in 0..<shards { refs[s].removeAll(keepingCapacity: true) }
            while window.count < windowRecords, let record = reader.next() {
                let start = record.bytes.baseAddress.map { UnsafeRawPointer($0) - UnsafeRawPointer(base) } ?? record.offset + 2
                let slot = UInt32(window.count)
                window.append((record.offset, start, record.bytes.count))
                let shard = shards == 1 ? 0 : Int(mp_verifier_partition_of_record(
                    handle, record.bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), record.bytes.count))
                refs[shard].append(mp_record_ref(offset: UInt64(start), length: UInt32(record.bytes.count), slot: slot))
            }
            finished = window.count < windowRecords
            if window.isEmpty { break }
            verdicts.withUnsafeMutableBufferPointer { v in
                credited.withUnsafeMutableBufferPointer { c in
                    let work = ShardWork(handle: handle, base: base, verdicts: v.baseAddress!, credited: c.baseAddress!, now: now)
                    if shards == 1 {
                        refs[0].withUnsafeBufferPointer { work.run(shard: 0, $0) }
                    } else {
                        refs.withUnsafeBufferPointer { all in
                            let lists = UnsafeSendable(all)
                            DispatchQueue.concurrentPerform(iterations: shards) { s in
                                lists.value[s].withUnsafeBufferPointer { work.run(shard: s, $0) }
                            }
                        }
                    }
                }
            }
            for (slot, record) in window.enumerated() {
                emit(Outcome(offset: record.offset,
                             bytes: UnsafeRawBufferPointer(rebasing: buffer[record.start..<(record.start + record.length)]),
                             verdict: Verdict(rawValue: verdicts[slot])!, credited: credited[slot]))
            }
        }
        return reader.truncatedTailOffset
    }

    /// Every ticket changed since the last call (registered or advanced), and
    /// forgets that they changed.
    public func takeChanges() -> [TicketProgress] {
        let count = mp_verifier_dirty_count(handle)
        guard count > 0 else { return [] }
        var exports = [mp_ticket_export](repeating: mp_ticket_export(), count: count)
        let written = exports.withUnsafeMutableBufferPointer { mp_verifier_export_dirty(handle, $0.baseAddress, count) }
        mp_verifier_clear_dirty(handle)
        defer {
            exports.withUnsafeMutableBytes { Engine.zero($0) }
        }
        return exports.prefix(written).map(Self.progress(from:))
    }

    private static func fill(_ e: inout mp_ticket_export, from t: TicketProgress) {
        e.serial = t.serial; e.customer = t.customer; e.limit = t.limit; e.unit = t.unit
        e.issued = t.issued; e.expires = t.expires; e.credited = t.credited; e.last_cumulative = t.lastCumulative
        e.registered_at = UInt64.max
        e.chain_len = t.chainLength; e.last = t.last; e.last_seq = t.lastSeq
        e.has_last_order = t.lastOrder == nil ? 0 : 1
        withUnsafeMutableBytes(of: &e.chain_id) { dst in t.chainID.withUnsafeBytes { dst.copyMemory(from: $0) } }
        withUnsafeMutableBytes(of: &e.root) { dst in t.root.withUnsafeBytes { dst.copyMemory(from: $0) } }
        withUnsafeMutableBytes(of: &e.last_word) { dst in t.lastWord.withUnsafeBytes { dst.copyMemory(from: $0) } }
        withUnsafeMutableBytes(of: &e.session_key) { dst in t.sessionKey.withUnsafeBytes { dst.copyMemory(from: $0) } }
        if let order = t.lastOrder, order.count == 76 {
            withUnsafeMutableBytes(of: &e.last_order) { dst in order.withUnsafeBytes { dst.copyMemory(from: $0) } }
        }
    }

    private static func progress(from e: mp_ticket_export) -> TicketProgress {
        var e = e
        let chainID = withUnsafeBytes(of: &e.chain_id) { Bytes12(copying: $0) }
        let root = withUnsafeBytes(of: &e.root) { Bytes32(copying: $0) }
        let lastWord = withUnsafeBytes(of: &e.last_word) { Bytes32(copying: $0) }
        let sessionKey = withUnsafeBytes(of: &e.session_key) { try! SecretKey(bytes: $0) }
        let lastOrder = e.has_last_order != 0 ? withUnsafeBytes(of: &e.last_order) { Array($0) } : nil
        defer { withUnsafeMutableBytes(of: &e.session_key) { Engine.zero($0) } }
        return TicketProgress(
            serial: e.serial, customer: e.customer, limit: e.limit, unit: e.unit, chainLength: e.chain_len,
            chainID: chainID, issued: e.issued, expires: e.expires, root: root, sessionKey: sessionKey,
            last: e.last, lastWord: lastWord, lastSeq: e.last_seq, lastCumulative: e.last_cumulative,
            lastOrder: lastOrder, credited: e.credited,
            registeredAt: e.registered_at == UInt64.max ? nil : Int(e.registered_at))
    }
}

/// What each shard's thread needs; the shards touch disjoint tickets and
/// disjoint result slots, so sharing these pointers is safe.
private struct ShardWork: @unchecked Sendable {
    let handle: OpaquePointer
    let base: UnsafePointer<UInt8>
    let verdicts: UnsafeMutablePointer<UInt8>
    let credited: UnsafeMutablePointer<UInt64>
    let now: UInt64

    func run(shard: Int, _ records: UnsafeBufferPointer<mp_record_ref>) {
        guard !records.isEmpty else { return }
        mp_verifier_run(handle, UInt32(shard), base, records.baseAddress, records.count, now, verdicts, credited)
    }
}

private struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
