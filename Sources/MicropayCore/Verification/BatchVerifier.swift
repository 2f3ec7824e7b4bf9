import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
internal import CEngine

/// The merchant's batch verifier (PROTOCOL §7, §10) over the engine's ticket
/// table: records are dealt to `threads` shards by serial, each shard judges
/// its records in file order, hashing a chunk's records side by side through
/// the multi-lane kernels first. Verdicts, credits and the final state are
/// exactly those of judging the records one by one.
///
/// Memory: the ticket table, plus a ring of a few windows of at most
/// `windowRecords` records' lists and results per shard (4 windows with
/// several threads, 1 with one); never the whole batch.
public final class BatchVerifier: @unchecked Sendable {
    public let bankID: UInt32
    public let merchant: UInt64
    public let threads: Int
    /// The lane kernel pinned at creation; nil: the active one.
    public let kernel: Engine.LaneKernel?
    /// Records verified between two hand-overs of results.
    public var windowRecords: Int
    /// 16 k records: a window's lists and results (about 400 KB a shard)
    /// stay in L2. 256 k-record windows spilled them and verified 10 M
    /// payments over 1 k tickets in 1.07 s (1 thread) and 0.79 s (2),
    /// against 0.75 s and 0.64 s with these (medians of 3 runs each, when
    /// each shard scanned the file itself). With the shared scan, 8 k, 16 k
    /// and 32 k came within 7 % of each other, the host's noise (7 runs).
    public static let defaultWindowRecords = 1 << 14
    /// The most shards (threads) a table takes: the engine's limit.
    public static let maxThreads = 256
    private let handle: OpaquePointer

    /// `kernel` pins the lane kernel (tests, benchmarks); nil follows the active one.
    public init(bankID: UInt32, merchant: UInt64, merchantKey: SecretKey, threads: Int,
                windowRecords: Int = BatchVerifier.defaultWindowRecords,
                kernel: Engine.LaneKernel? = nil) throws(MicropayError) {
        precondition(windowRecords >= 1)
        guard (1...Self.maxThreads).contains(threads) else { throw .threadCount(threads) }
        Engine.ensureInitialized()
        self.bankID = bankID
        self.merchant = merchant
        self.threads = threads
        self.windowRecords = windowRecords
        self.kernel = kernel
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

    /// Makes room for `tickets` in all before loading that many.
    public func reserve(tickets: Int) {
        guard tickets > 0 else { return }
        if mp_verifier_reserve(handle, tickets) == MP_ERR_LIBRARY { fatalError("out of memory sizing the ticket table") }
    }

    /// Adds a ticket the merchant had registered before. Throws for a serial already there.
    public func load(_ ticket: TicketProgress) throws(MicropayError) {
        var export = mp_ticket_export()
        Self.fill(&export, from: ticket)
        defer { withUnsafeMutableBytes(of: &export.session_key) { Engine.zero($0) } }
        guard mp_verifier_load(handle, &export) == MP_OK else {
            throw .invalidField(.ticket, field: "serial", reason: "ticket \(ticket.serial) loaded twice")
        }
    }

    /// The results of one window of records, in file order. Valid only
    /// during the call that hands it over.
    public struct Window {
        public let count: Int
        /// The §7 code of each record.
        public let verdicts: UnsafeBufferPointer<UInt8>
        public let credited: UnsafeBufferPointer<UInt64>
        /// Where each record's bytes start in the buffer (its length prefix is 2 bytes before).
        public let starts: UnsafeBufferPointer<UInt64>
        let buffer: UnsafeRawBufferPointer

        /// The bytes of record `i` of the window.
        public func bytes(_ i: Int) -> UnsafeRawBufferPointer {
            let start = Int(starts[i])
            let length = Int(buffer[start - 2]) << 8 | Int(buffer[start - 1])
            return UnsafeRawBufferPointer(rebasing: buffer[start..<(start + length)])
        }
    }

    /// Verifies the batch file in `buffer` at `now`, handing the results to
    /// `body` one window at a time, in file order. Returns the offset of a
    /// truncated tail, if any.
    ///
    /// Each window is scanned once, by the shards' threads in turn, and dealt
    /// to every shard; a shard runs at most a few windows ahead of the
    /// slowest. A window's results go to `body` as soon as every shard has
    /// done it, from whichever shard's thread finished it last, one call at
    /// a time. So `body` must not wait for the calling thread (which runs a
    /// shard), nor use this verifier: its shards go on while it runs.
    public func verify(
        _ buffer: UnsafeRawBufferPointer, now: UInt64, body: (Window) -> Void
    ) throws(BatchFileError) -> Int? {
        _ = try BatchFileReader(buffer)
        guard let file = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return nil }
        return withoutActuallyEscaping(body) { body in
            let work = WindowWork(handle: handle, buffer: buffer, file: file, shards: threads, capacity: windowRecords,
                                  now: now, body: body)
            defer { work.deallocate() }
            onThreads(threads) { work.run(shard: $0) }
            return work.truncated == UInt64.max ? nil : Int(work.truncated)
        }
    }

    /// What a batch comes to when no one needs its records one by one.
    public struct Totals: Sendable, Equatable {
        public var records = 0
        /// Records per §7 code (index = code).
        public var perVerdict = [Int](repeating: 0, count: 16)
        /// Total credited, wrapping like the per-record sum it replaces.
        public var credited: UInt64 = 0
        public var truncatedTailOffset: Int?
    }

    /// Verifies the batch file in `buffer` at `now` like `verify`, keeping
    /// only the totals. Each window is scanned once, by the shards' threads
    /// in turn, one window ahead of their verifying, and dealt to every
    /// shard; each shard counts its own verdicts (no shard's verdict depends
    /// on another's records), and none runs more than a few windows ahead of
    /// the slowest. `progress` gets, after each window, the byte offset every
    /// shard has passed; it is called from the shards' threads, one call at
    /// a time.
    public func verifyTotals(
        _ buffer: UnsafeRawBufferPointer, now: UInt64, progress: ((Int) -> Void)? = nil
    ) throws(BatchFileError) -> Totals {
        _ = try BatchFileReader(buffer)
        var totals = Totals()
        guard let file = buffer.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return totals }
        let work = TallyWork(handle: handle, file: file, length: buffer.count, shards: threads, capacity: windowRecords,
                             now: now, progress: progress)
        defer { work.deallocate() }
        onThreads(threads) { work.run(shard: $0) }
        for shard in 0..<threads {
            let tally = work.tally(shard: shard)
            for code in 0..<16 { totals.perVerdict[code] += tally.perVerdict[code] }
            totals.credited &+= tally.credited
        }
        totals.records = work.records
        totals.truncatedTailOffset = work.truncated == UInt64.max ? nil : Int(work.truncated)
        return totals
    }

    /// Tickets registered or advanced since the last `clearChanges()`.
    public var changeCount: Int { mp_verifier_dirty_count(handle) }

    /// Forgets which tickets changed: they are in the store now.
    public func clearChanges() { mp_verifier_clear_dirty(handle) }

    /// Every ticket in the table, in no particular order.
    public func forEachTicket<E: Error>(_ body: (TicketProgress) throws(E) -> Void) throws(E) {
        var export = mp_ticket_export()
        defer { withUnsafeMutableBytes(of: &export.session_key) { Engine.zero($0) } }
        for shard in 0..<UInt32(threads) {
            for index in 0..<UInt32(mp_verifier_partition_count(handle, shard)) {
                mp_verifier_export_at(handle, shard, index, &export)
                try body(Self.progress(from: export))
            }
        }
    }

    // MARK: - The ticket log

    /// The most log bytes one ticket takes: its body and its progress.
    public static let logBytesPerTicketMax = Int(MP_LOG_TICKET_MAX)

    /// The log form of the table (see `TicketLog`), handed to `body` in
    /// pieces of whole records, at most `pieceBytes` each: every ticket, or
    /// (`changesOnly`) those changed since `clearChanges()`, with bodies for
    /// the ones registered since. It goes in rounds: each shard encodes its
    /// next piece, in parallel, into a buffer of its own that every round
    /// reuses (fresh memory for each piece cost a page fault every 4 KB),
    /// then the round's pieces go to `body` in shard order. A piece is valid
    /// only during its call; the buffers hold session keys and are zeroed
    /// at the end.
    public func encodeLog<E: Error>(
        changesOnly: Bool, pieceBytes: Int = 1 << 20, _ body: (UnsafeRawBufferPointer) throws(E) -> Void
    ) throws(E) {
        let capacity = max(pieceBytes, Int(MP_LOG_TICKET_MAX))
        let shards = threads
        let work = LogShardWork(handle: handle, changesOnly: changesOnly, capacity: capacity, shards: shards)
        defer { work.release() }
        while work.unfinished > 0 {
            if work.unfinished == 1 {
                for shard in 0..<shards { work.encode(shard: shard) }
            } else {
                DispatchQueue.concurrentPerform(iterations: shards) { work.encode(shard: $0) }
            }
            for shard in 0..<shards where work.lengths[shard] > 0 {
                try body(UnsafeRawBufferPointer(rebasing: work.buffers[shard * capacity ..< shard * capacity + work.lengths[shard]]))
            }
        }
    }

    /// Applies log records in order (bodies add tickets, progress replaces a
    /// ticket's), each shard's from its own thread. Returns nil, or the
    /// offset of a record that is cut short, of no known kind, or does not
    /// fit the table (a second body, or progress with no body).
    public func replayLog(_ records: UnsafeRawBufferPointer) -> Int? {
        guard let base = records.baseAddress, records.count > 0 else { return nil }
        let work = ReplayWork(handle: handle, records: base.assumingMemoryBound(to: UInt8.self), count: records.count)
        // Small pieces are not worth waking the other threads for.
        if threads == 1 || records.count < 1 << 16 {
            return work.replay(partition: MP_ALL_PARTITIONS)
        }
        let failures = UnsafeMutableBufferPointer<Int>.allocate(capacity: threads)
        defer { failures.deallocate() }
        let slots = FailureSlots(slots: failures)
        DispatchQueue.concurrentPerform(iterations: threads) { shard in
            slots.slots[shard] = work.replay(partition: UInt32(shard)) ?? Int.max
        }
        let first = failures.min() ?? Int.max
        return first == Int.max ? nil : first
    }

    static func fill(_ e: inout mp_ticket_export, from t: TicketProgress) {
        e.serial = t.serial; e.customer = t.customer; e.limit = t.limit; e.unit = t.unit
        e.issued = t.issued; e.expires = t.expires; e.credited = t.credited; e.last_cumulative = t.lastCumulative
        e.registered_at = UInt64.max
        e.claimed = t.claimed; e.settled = t.settled; e.settled_amount = t.settledAmount
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
            claimed: e.claimed, settled: e.settled, settledAmount: e.settled_amount)
    }
}

/// encodeLog's shards: a piece buffer and a cursor each. A shard whose
/// cursor is done encodes nothing more (length 0).
private struct LogShardWork: @unchecked Sendable {
    let handle: OpaquePointer
    let changesOnly: Bool
    let capacity: Int
    let buffers: UnsafeMutableRawBufferPointer
    let lengths: UnsafeMutableBufferPointer<Int>
    let written: UnsafeMutableBufferPointer<Int> // the most of each buffer ever used
    let cursors: UnsafeMutableBufferPointer<UInt64>

    init(handle: OpaquePointer, changesOnly: Bool, capacity: Int, shards: Int) {
        self.handle = handle
        self.changesOnly = changesOnly
        self.capacity = capacity
        buffers = .allocate(byteCount: capacity * shards, alignment: 64)
        lengths = .allocate(capacity: shards)
        lengths.initialize(repeating: 0)
        written = .allocate(capacity: shards)
        written.initialize(repeating: 0)
        cursors = .allocate(capacity: shards)
        cursors.initialize(repeating: 0)
    }

    var unfinished: Int { cursors.count { $0 != UInt64.max } }

    func encode(shard: Int) {
        guard cursors[shard] != UInt64.max else { lengths[shard] = 0; return }
        lengths[shard] = mp_verifier_log_encode(handle, UInt32(shard), changesOnly ? 1 : 0, &cursors[shard],
                                                (buffers.baseAddress! + shard * capacity).assumingMemoryBound(to: UInt8.self),
                                                capacity)
        written[shard] = max(written[shard], lengths[shard])
    }

    func release() {
        // What was written, not the pages never touched.
        for shard in written.indices {
            Engine.zero(UnsafeMutableRawBufferPointer(rebasing: buffers[shard * capacity ..< shard * capacity + written[shard]]))
        }
        buffers.deallocate()
        lengths.deallocate()
        written.deallocate()
        cursors.deallocate()
    }
}

/// Replays one piece of the log for one shard (or all).
private struct ReplayWork: @unchecked Sendable {
    let handle: OpaquePointer
    let records: UnsafePointer<UInt8>
    let count: Int

    func replay(partition: UInt32) -> Int? {
        var failedAt = 0
        let status = mp_verifier_replay(handle, partition, records, count, &failedAt)
        if status == MP_ERR_LIBRARY { fatalError("out of memory loading the ticket table") }
        return status == MP_OK ? nil : failedAt
    }
}

private struct FailureSlots: @unchecked Sendable {
    let slots: UnsafeMutableBufferPointer<Int>
}

/// A batch's windows, each scanned once and dealt to every shard's list, in
/// a ring of `depth` windows. Window w is scanned by shard w % shards, one
/// window ahead of that shard's own verifying (see `run`), so the scanning
/// is shared among the shards' threads and overlaps their verifying; a
/// window's ring slot is scanned again only once every shard is done with
/// the window before it there (`done(through:)`), which also bounds how far
/// any shard runs ahead of the slowest.
private class WindowRing: @unchecked Sendable {
    /// Windows in the ring: one shard alone needs only the window it is on,
    /// and reuses its lists while they are in cache.
    static func depth(shards: Int) -> Int { shards == 1 ? 1 : 4 }
    let depth: Int
    let handle: OpaquePointer
    let file: UnsafePointer<UInt8>
    let length: Int
    let shards: Int
    let capacity: Int
    let now: UInt64
    let windowSlots: Bool
    /// Each window's records per shard: [ring slot * shards + shard].
    let refs: UnsafeMutablePointer<UnsafeMutablePointer<mp_record_ref>?>
    let counts: UnsafeMutablePointer<Int>
    /// Per ring slot: records in the window, and the offset just past it.
    let taken: UnsafeMutablePointer<Int>
    let ends: UnsafeMutablePointer<Int>
    /// Under `lock`: windows scanned, where the next one starts, the window
    /// whose scan reached the end (Int.max: not yet), windows each shard has
    /// verified, windows every shard is done with (their ring slots free),
    /// the records taken and a truncated tail's offset.
    let lock = ShardLock()
    private var scanned = 0
    private var position = 4
    private var lastWindow = Int.max
    private let windowsDone: UnsafeMutablePointer<Int>
    private(set) var finished = 0
    private(set) var records = 0
    private(set) var truncated = UInt64.max

    init(handle: OpaquePointer, file: UnsafePointer<UInt8>, length: Int, shards: Int, capacity: Int, now: UInt64,
         windowSlots: Bool) {
        self.handle = handle
        self.file = file
        self.length = length
        self.shards = shards
        self.capacity = capacity
        self.now = now
        self.windowSlots = windowSlots
        depth = Self.depth(shards: shards)
        let lists = depth * shards
        refs = .allocate(capacity: lists)
        for list in 0..<lists { refs[list] = .allocate(capacity: capacity) }
        counts = filled(lists, 0)
        taken = filled(depth, 0)
        ends = filled(depth, 0)
        windowsDone = filled(shards, 0)
    }

    func deallocate() {
        for list in 0..<depth * shards { refs[list]!.deallocate() }
        refs.deallocate(); counts.deallocate(); taken.deallocate(); ends.deallocate(); windowsDone.deallocate()
    }

    /// Shard `shard`'s pass: verifies its records of every window in order,
    /// scanning each window of its turn just before verifying the one
    /// before it, while the other shards verify.
    final func run(shard: Int) {
        // One shard alone scans each window just before verifying it, while
        // its records are still in cache: nothing could overlap the scan.
        if shard == 0 && shards > 1 { scan(window: 0) }
        var window = 0
        while true {
            if shards == 1 {
                scan(window: window)
            } else if (window + 1) % shards == shard {
                scan(window: window + 1)
            }
            guard let slot = awaitScan(of: window) else { return }
            let list = slot * shards + shard
            let count = counts[list]
            if count > 0 {
                let (verdicts, credited) = results(shard: shard, slot: slot)
                mp_verifier_run(handle, UInt32(shard), file, refs[list], count, now, verdicts, credited)
            }
            verified(shard: shard, window: window, slot: slot, count: count)
            window += 1
        }
    }

    /// Where a shard puts its verdicts and credits of the window in ring slot `slot`.
    func results(shard: Int, slot: Int) -> (UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<UInt64>) {
        fatalError("a subclass chooses")
    }

    /// What a shard does with its results of a window; calls `done(through:)`.
    func verified(shard: Int, window: Int, slot: Int, count: Int) {}

    /// Scans `window` into its ring slot, once the window before it is
    /// scanned (its end is where this one starts) and every shard is done
    /// with the one the slot held; nothing if the file ended before it.
    private func scan(window: Int) {
        guard let start = lock.wait(until: { scanned == window && window - finished < depth || lastWindow < window },
                                    then: { lastWindow < window ? nil : position }) else { return }
        let slot = window % depth
        var at = start
        var tail = UInt64.max
        let count = mp_verifier_scan_window(handle, file, length, &at, capacity, refs + slot * shards,
                                            counts + slot * shards, &tail, windowSlots ? 1 : 0)
        taken[slot] = count
        ends[slot] = at
        lock.locked {
            position = at
            records += count
            if tail != UInt64.max { truncated = tail }
            if count < capacity { lastWindow = window }
            scanned = window + 1
        }
    }

    /// Waits for `window`'s scan; its ring slot, or nil past the file's end.
    private func awaitScan(of window: Int) -> Int? {
        lock.wait(until: { scanned > window || lastWindow < window }, then: { scanned > window ? window % depth : nil })
    }

    /// Notes that `shard` has verified `window`; returns how many windows
    /// every shard has verified. Call under `lock`.
    final func verifiedByAll(shard: Int, window: Int) -> Int {
        windowsDone[shard] = window + 1
        var all = Int.max
        for other in 0..<shards { all = min(all, windowsDone[other]) }
        return all
    }

    /// Frees the ring slots of windows before `windows`: every shard is done
    /// with them. Returns the offset just past them if this call freed any,
    /// read before the slot can be scanned again; nil if none. Call under `lock`.
    @discardableResult
    final func done(through windows: Int) -> Int? {
        guard windows > finished else { return nil }
        let end = ends[(windows - 1) % depth]
        finished = windows
        return end
    }
}

/// The shards' passes of `verifyTotals`: each verifies its records of every
/// window and counts its own verdicts; the caller reads the counts after.
private final class TallyWork: WindowRing, @unchecked Sendable {
    let progress: ((Int) -> Void)?
    /// Per shard: its verdicts and credits of the window it is verifying.
    let shardResults: ResultSlots
    /// Per shard, far enough apart that no two shards share a cache line: the
    /// count of each §7 code (16 of `countsStride` Ints), and the credited
    /// sum (1 of `sumStride`).
    let counted: UnsafeMutablePointer<Int>
    let sums: UnsafeMutablePointer<UInt64>
    static let countsStride = 32
    static let sumStride = 8
    /// Under `lock`: the offset last reported.
    private var reported = 0

    init(handle: OpaquePointer, file: UnsafePointer<UInt8>, length: Int, shards: Int, capacity: Int, now: UInt64,
         progress: ((Int) -> Void)?) {
        self.progress = progress
        shardResults = ResultSlots(slots: shards, capacity: capacity)
        counted = filled(shards * Self.countsStride, 0)
        sums = filled(shards * Self.sumStride, 0)
        super.init(handle: handle, file: file, length: length, shards: shards, capacity: capacity, now: now,
                   windowSlots: false)
    }

    override func deallocate() {
        shardResults.deallocate()
        counted.deallocate(); sums.deallocate()
        super.deallocate()
    }

    override func results(shard: Int, slot: Int) -> (UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<UInt64>) {
        (shardResults.verdicts[shard], shardResults.credited[shard])
    }

    /// The shard's count of each §7 code, and its credited sum (wrapping).
    func tally(shard: Int) -> (perVerdict: UnsafeMutablePointer<Int>, credited: UInt64) {
        (counted + shard * Self.countsStride, sums[shard * Self.sumStride])
    }

    /// Counts the shard's verdicts of the window, then frees the windows all
    /// shards have done and reports the offset they have passed; `progress`
    /// runs on one thread at a time.
    override func verified(shard: Int, window: Int, slot: Int, count: Int) {
        let verdicts = shardResults.verdicts[shard], credited = shardResults.credited[shard]
        let perVerdict = counted + shard * Self.countsStride
        var sum = sums[shard * Self.sumStride]
        for i in 0..<count {
            perVerdict[Int(verdicts[i] & 15)] += 1
            sum &+= credited[i]
        }
        sums[shard * Self.sumStride] = sum
        lock.locked {
            let all = verifiedByAll(shard: shard, window: window)
            guard let reached = done(through: all), let progress, reached > reported else { return }
            reported = reached
            progress(reached)
        }
    }
}

/// The shards' passes of `verify`: each verifies its records of every
/// window into its own results, each record's at its place in the window;
/// the last shard to finish a window puts the shards' results in file order
/// and hands them to `body`.
private final class WindowWork: WindowRing, @unchecked Sendable {
    let buffer: UnsafeRawBufferPointer
    let body: (BatchVerifier.Window) -> Void
    /// Each shard's results by ring slot: [ring slot * shards + shard].
    let kept: ResultSlots
    /// The window in file order, handed to `body`.
    let outVerdicts: UnsafeMutablePointer<UInt8>
    let outCredited: UnsafeMutablePointer<UInt64>
    let outStarts: UnsafeMutablePointer<UInt64>

    init(handle: OpaquePointer, buffer: UnsafeRawBufferPointer, file: UnsafePointer<UInt8>, shards: Int, capacity: Int,
         now: UInt64, body: @escaping (BatchVerifier.Window) -> Void) {
        self.buffer = buffer
        self.body = body
        kept = ResultSlots(slots: shards * WindowRing.depth(shards: shards), capacity: capacity)
        outVerdicts = .allocate(capacity: capacity)
        outCredited = .allocate(capacity: capacity)
        outStarts = .allocate(capacity: capacity)
        super.init(handle: handle, file: file, length: buffer.count, shards: shards, capacity: capacity, now: now,
                   windowSlots: true)
    }

    override func deallocate() {
        kept.deallocate()
        outVerdicts.deallocate(); outCredited.deallocate(); outStarts.deallocate()
        super.deallocate()
    }

    /// Each shard's results stay by the window's ring slot until handed over.
    override func results(shard: Int, slot: Int) -> (UnsafeMutablePointer<UInt8>, UnsafeMutablePointer<UInt64>) {
        (kept.verdicts[slot * shards + shard], kept.credited[slot * shards + shard])
    }

    /// Hands over every window all shards have done, in order, and frees
    /// its ring slot: the windows handed over are the `finished` ones.
    override func verified(shard: Int, window: Int, slot: Int, count: Int) {
        lock.locked {
            let all = verifiedByAll(shard: shard, window: window)
            while finished < all {
                let ring = finished % depth
                for other in 0..<shards {
                    let list = ring * shards + other
                    mp_verifier_scatter(refs[list], counts[list], kept.verdicts[list], kept.credited[list],
                                        outVerdicts, outCredited, outStarts)
                }
                let count = taken[ring]
                if count > 0 {
                    body(BatchVerifier.Window(
                        count: count, verdicts: UnsafeBufferPointer(start: outVerdicts, count: count),
                        credited: UnsafeBufferPointer(start: outCredited, count: count),
                        starts: UnsafeBufferPointer(start: outStarts, count: count), buffer: buffer))
                }
                done(through: finished + 1)
            }
        }
    }
}

/// Runs `body(0)`, `body(1)`, ... `body(count - 1)` each on a thread of its
/// own, `body(0)` on the calling one, and returns when all are done. Unlike
/// `concurrentPerform`, which may run iterations one after another when there
/// are more than cores, every one runs at once: they may wait for each other.
private func onThreads(_ count: Int, _ body: (Int) -> Void) {
    guard count > 1 else {
        body(0)
        return
    }
    withoutActuallyEscaping(body) { body in
        let start = ThreadStart(body: body)
        var threads: [pthread_t] = []
        // The same stack as a main thread's, whatever the platform's default
        // for new threads (512 KB on macOS): callers' closures run there too.
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, 8 << 20)
        for index in 1..<count {
            let context = Unmanaged.passRetained(ThreadArgument(start: start, index: index)).toOpaque()
            #if canImport(Darwin)
            var thread: pthread_t?
            let status = pthread_create(&thread, &attributes, { ThreadArgument.run($0) }, context)
            #else
            var thread = pthread_t()
            let status = pthread_create(&thread, &attributes, { ThreadArgument.run($0!) }, context)
            #endif
            precondition(status == 0, "pthread_create failed: \(status)")
            #if canImport(Darwin)
            threads.append(thread!)
            #else
            threads.append(thread)
            #endif
        }
        body(0)
        for thread in threads { pthread_join(thread, nil) }
    }
}

private final class ThreadStart: @unchecked Sendable {
    let body: (Int) -> Void
    init(body: @escaping (Int) -> Void) { self.body = body }
}

private final class ThreadArgument: @unchecked Sendable {
    let start: ThreadStart
    let index: Int
    init(start: ThreadStart, index: Int) {
        self.start = start
        self.index = index
    }

    /// A thread's start: takes back the argument retained for it.
    static func run(_ raw: UnsafeMutableRawPointer) -> UnsafeMutableRawPointer? {
        let argument = Unmanaged<ThreadArgument>.fromOpaque(raw).takeRetainedValue()
        argument.start.body(argument.index)
        return nil
    }
}

/// Verdicts and credits for `slots` windows of `capacity` records, each
/// slot its own allocation: no two shards write to one cache line.
private struct ResultSlots {
    let verdicts: [UnsafeMutablePointer<UInt8>]
    let credited: [UnsafeMutablePointer<UInt64>]

    init(slots: Int, capacity: Int) {
        verdicts = (0..<slots).map { _ in .allocate(capacity: capacity) }
        credited = (0..<slots).map { _ in .allocate(capacity: capacity) }
    }

    func deallocate() {
        verdicts.forEach { $0.deallocate() }
        credited.forEach { $0.deallocate() }
    }
}

/// The lock over the shards' shared bookkeeping, and a wait on it: a pthread
/// mutex and condition (Synchronization's Mutex would need macOS 15). Every
/// locked section may move what a waiter waits for, so each wakes them all;
/// there are as many waiters as shards at most, and a few sections a window.
private final class ShardLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer {
            pthread_cond_broadcast(condition)
            pthread_mutex_unlock(mutex)
        }
        return body()
    }

    /// Returns `body()` once `ready` holds, both under the lock; `ready` is
    /// checked each time another thread leaves a locked section.
    func wait<T>(until ready: () -> Bool, then body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while !ready() { pthread_cond_wait(condition, mutex) }
        return body()
    }
}

/// `count` values, each `value`; the caller deallocates.
private func filled<T>(_ count: Int, _ value: T) -> UnsafeMutablePointer<T> {
    let pointer = UnsafeMutablePointer<T>.allocate(capacity: count)
    pointer.initialize(repeating: value, count: count)
    return pointer
}
