internal import CEngine

/// A MAC key with its HMAC inner and outer states computed once: MAC128 of a
/// short message then costs two or three SHA-256 compressions. The states are
/// as secret as the key and are zeroed when dropped.
public final class MACKey: Sendable {
    nonisolated(unsafe) let state: UnsafeMutablePointer<mp_hmac_key>

    /// Precomputes the states of `key` used as is (pass `mac(K)`, not `K`).
    public init(_ key: SecretKey) {
        Engine.ensureInitialized()
        state = .allocate(capacity: 1)
        key.withUnsafeBytes { mp_hmac_key_init(state, $0.baseAddress, $0.count) }
    }

    /// `MACKey(K.macSubkey)`: the key that MAC128 uses for party key K.
    public convenience init(macOf key: SecretKey) {
        self.init(key.macSubkey)
    }

    /// `keys.map { MACKey(macOf: $0) }`, the key schedules' compressions of
    /// several keys interleaved on the lane kernel: the merchant's batch
    /// verifier derives one per order ticket it registers or loads this way.
    public static func batch(macOf keys: [SecretKey], kernel: Engine.LaneKernel? = nil) throws(MicropayError) -> [MACKey] {
        Engine.ensureInitialized()
        let kernel = kernel ?? Engine.activeLaneKernel
        let macKeys = keys.map { _ in MACKey(uninitialized: ()) }
        // A SecretKey's bytes stay where they are for its life: no copies.
        let pointers = keys.map { Optional($0.pointer) }
        let outputs = macKeys.map { Optional($0.state) }
        let status = "MPM1".withCString { l in mp_hmac_subkey_states_batch_with(kernel.c, keys.count, pointers, l, outputs) }
        guard status == MP_OK else { throw .unsupportedKernel(kernel.description) }
        return withExtendedLifetime(keys) { macKeys }
    }

    /// Zeroed states, for `batch` to fill.
    private init(uninitialized: ()) {
        state = .allocate(capacity: 1)
        state.initialize(to: mp_hmac_key())
    }

    deinit {
        mp_zero(state, MemoryLayout<mp_hmac_key>.size)
        state.deallocate()
    }

    /// MAC128(k, label, message): the first 16 bytes of HMAC(k, label || message).
    public func mac128(label: MACLabel, _ message: UnsafeRawBufferPointer) -> Bytes16 {
        var out = Bytes16()
        label.withCString { l in
            out.withUnsafeMutableBytes { o in
                mp_mac128(state, l, message.baseAddress, message.count, o.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        return out
    }

    public func mac128(label: MACLabel, _ message: [UInt8]) -> Bytes16 {
        message.withUnsafeBytes { mac128(label: label, $0) }
    }

    /// Constant-time check of `tag` against MAC128(k, label, message).
    public func verify(label: MACLabel, _ message: UnsafeRawBufferPointer, tag: Bytes16) -> Bool {
        label.withCString { l in
            tag.withUnsafeBytes { t in
                mp_mac128_verify(state, l, message.baseAddress, message.count, t.baseAddress!.assumingMemoryBound(to: UInt8.self)) == MP_OK
            }
        }
    }

    /// Full HMAC(k, message), 32 bytes.
    public func hmac(_ message: UnsafeRawBufferPointer) -> Bytes32 {
        var out = Bytes32()
        out.withUnsafeMutableBytes { o in
            mp_hmac2(state, message.baseAddress, message.count, nil, 0, o.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return out
    }

    /// Batch check of fixed-layout records (e.g. PaymentOrders: stride 76,
    /// tag over the first 60 bytes): `keys[r]` for record r. One C call, one
    /// result per record, true where the tag matches.
    public static func verifyBatch(
        label: MACLabel, keys: [MACKey], records: UnsafeRawBufferPointer, stride: Int, macLength: Int,
        kernel: Engine.LaneKernel? = nil
    ) throws(MicropayError) -> [Bool] {
        precondition(macLength + 16 <= stride && records.count >= keys.count * stride)
        let count = keys.count
        let states = keys.map { UnsafePointer($0.state) as UnsafePointer<mp_hmac_key>? }
        let kernel = kernel ?? Engine.activeLaneKernel
        var status = MP_OK
        let ok = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            status = label.withCString { l in
                states.withUnsafeBufferPointer { s in
                    mp_mac128_verify_batch_with(kernel.c, count, s.baseAddress, l,
                                                records.baseAddress?.assumingMemoryBound(to: UInt8.self),
                                                stride, macLength, buffer.baseAddress)
                }
            }
            initialized = count
        }
        guard status == MP_OK else { throw .unsupportedKernel(kernel.description) }
        return withExtendedLifetime(keys) { ok.map { $0 == 1 } }
    }
}

/// The 4-byte domain labels of PROTOCOL.md.
public enum MACLabel: String, Sendable, CaseIterable {
    /// TicketRequest tag, under mac(K_C).
    case request = "MPR1"
    /// PaymentOrder tag, under mac(K_CM).
    case order = "MPO1"
    /// PaymentOrder bank_tag, under mac(K_C).
    case orderBank = "MPO2"
    /// Deposit tag, under mac(K_M).
    case deposit = "MPD1"
    /// Receipt tag, under mac(K_M).
    case receipt = "MPT1"

    func withCString<R>(_ body: (UnsafePointer<CChar>) -> R) -> R {
        rawValue.withCString(body)
    }
}
