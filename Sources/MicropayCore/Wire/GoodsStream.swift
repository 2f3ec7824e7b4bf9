/// An item of information goods, encrypted once for every buyer (PROTOCOL.md
/// §8, kind 0x41): a 48-byte header (id = the merchant's item number) ·
/// item_nonce · chunk · total · zero, then AES-256-GCM chunks under the
/// stream key `K_s`, each bound to the header, its index and whether it is
/// the last. The bytes are kept: the whole stream is hashed into `item`, and
/// every chunk authenticates the header.
public struct GoodsStream: Sendable, Equatable, Hashable {
    public static let headerByteCount = 48
    static let zeroOffset = 44
    static let chunkTagByteCount = 16
    /// The stream of empty content: one empty chunk, its tag only.
    public static let minimumByteCount = headerByteCount + chunkTagByteCount

    public let bankID: UInt32
    public let itemNumber: UInt64
    public let itemNonce: Bytes16
    /// Content bytes per chunk (the last chunk may be shorter); ≥ 1.
    public let chunk: UInt32
    /// The content's length.
    public let total: UInt64
    /// First 16 bytes of SHA-256 of the whole stream: what an order pays for.
    public let item: Bytes16
    /// The whole stream: header then chunks.
    public let bytes: [UInt8]

    /// `max(1, ⌈total / chunk⌉)`, for `chunk ≥ 1`, without overflow.
    public static func chunkCount(total: UInt64, chunk: UInt32) -> UInt64 {
        precondition(chunk >= 1)
        return total == 0 ? 1 : (total - 1) / UInt64(chunk) + 1
    }

    public var chunkCount: UInt64 { Self.chunkCount(total: total, chunk: chunk) }

    /// `48 + total + 16 × chunks`, or nil if it does not fit in an Int.
    static func streamLength(total: UInt64, chunk: UInt32) -> Int? {
        let (tags, o1) = chunkCount(total: total, chunk: chunk).multipliedReportingOverflow(by: UInt64(chunkTagByteCount))
        let (body, o2) = total.addingReportingOverflow(tags)
        let (length, o3) = body.addingReportingOverflow(UInt64(headerByteCount))
        guard !o1, !o2, !o3, length <= UInt64(Int.max) else { return nil }
        return Int(length)
    }

    /// Checks, after the kind: `chunk ≠ 0` (`.invalidField`, it fixes the
    /// layout); the length `total` and `chunk` imply (cut before them: the
    /// length of an empty stream; a length past 2^63: `.invalidField`);
    /// version, suite, flags; the zero field. The chunks are checked by `open`.
    public init(decoding buffer: UnsafeRawBufferPointer) throws(MicropayError) {
        let header = try WireHeader.decode(buffer, as: .goodsStream) { reader throws(MicropayError) in
            guard reader.count >= Self.zeroOffset else { return Self.minimumByteCount }
            let chunk = reader.u32(at: 32)
            guard chunk != 0 else { throw .invalidField(.goodsStream, field: "chunk", reason: "must be at least 1") }
            let total = reader.u64(at: 36)
            guard let length = Self.streamLength(total: total, chunk: chunk) else {
                throw .invalidField(.goodsStream, field: "total", reason: "\(total) bytes in chunks of \(chunk) overflow the stream length")
            }
            return length
        }
        let reader = ByteReader(buffer)
        if let offset = reader.firstNonZero(Self.zeroOffset, count: 4) { throw .nonZeroField(.goodsStream, offset: offset) }
        bankID = header.bankID
        itemNumber = header.id
        itemNonce = reader.fixed(at: 16)
        chunk = reader.u32(at: 32)
        total = reader.u64(at: 36)
        item = Engine.sha256(buffer).withUnsafeBytes { Bytes16(copying: $0) }
        bytes = Array(buffer)
    }

    public init(decoding bytes: [UInt8]) throws(MicropayError) {
        self = try bytes.withDecoding { buffer throws(MicropayError) in try Self(decoding: buffer) }
    }

    /// `K_s = HMAC(K_g, "MPG1" || item_nonce)`: one goods key serves many
    /// items, and a buyer learns only the key of the item it paid for.
    public static func streamKey(goodsKey: SecretKey, itemNonce: Bytes16) -> SecretKey {
        var message = ByteWriter(capacity: 4 + Bytes16.byteCount)
        message.append(Array("MPG1".utf8))
        message.append(itemNonce)
        var key = message.bytes.withUnsafeBytes { MACKey(goodsKey).hmac($0) }
        defer { key.withUnsafeMutableBytes { Engine.zero($0) } }
        // 32 bytes always make a key.
        return key.withUnsafeBytes { try! SecretKey(bytes: $0) }
    }

    public func streamKey(goodsKey: SecretKey) -> SecretKey {
        Self.streamKey(goodsKey: goodsKey, itemNonce: itemNonce)
    }

    /// The merchant's side: encrypts `content` once, in chunks of `chunk` (≥ 1) bytes.
    public static func seal(
        bankID: UInt32, itemNumber: UInt64, content: [UInt8], goodsKey: SecretKey,
        itemNonce: Bytes16 = .random(), chunk: UInt32
    ) throws(MicropayError) -> GoodsStream {
        precondition(chunk >= 1, "a GoodsStream's chunk is at least 1 byte")
        let total = UInt64(content.count)
        guard let length = streamLength(total: total, chunk: chunk) else { throw .amountOverflow }
        var writer = ByteWriter(capacity: length)
        WireHeader(kind: .goodsStream, bankID: bankID, id: itemNumber).encode(into: &writer)
        writer.append(itemNonce)
        writer.u32(chunk)
        writer.u64(total)
        writer.zeros(4)
        let key = try AESGCMKey(streamKey(goodsKey: goodsKey, itemNonce: itemNonce))
        let chunks = writer.bytes.withUnsafeBytes { header in
            content.withUnsafeBytes { key.sealGoods(header: header, chunk: chunk, content: $0) }
        }
        writer.append(chunks)
        // Just built: it decodes.
        return try! GoodsStream(decoding: writer.bytes)
    }

    public func encoded() -> [UInt8] { bytes }

    /// The buyer's side: the content, once every chunk verifies under `K_s`;
    /// `.authenticationFailed(.goodsStream)` otherwise.
    public func open(streamKey: SecretKey) throws(MicropayError) -> [UInt8] {
        let key = try AESGCMKey(streamKey)
        let total = Int(total)  // decoding bounded the length
        let chunk = chunk
        return try bytes.withDecoding { buffer throws(MicropayError) in
            try key.openGoods(
                header: UnsafeRawBufferPointer(rebasing: buffer[..<Self.headerByteCount]), chunk: chunk,
                sealed: UnsafeRawBufferPointer(rebasing: buffer[Self.headerByteCount...]), total: total)
        }
    }

    public static func == (lhs: GoodsStream, rhs: GoodsStream) -> Bool { lhs.bytes == rhs.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }
}
