internal import CEngine

/// The C engine's process-wide facts: initialisation, SHA-256 kernel choice,
/// hashing, randomness and constant-time comparison.
public enum Engine {
    /// A SHA-256 implementation in the engine.
    public enum SHA256Kernel: Int, CaseIterable, Sendable, CustomStringConvertible {
        case portable = 0
        case shaNI = 1

        fileprivate var c: mp_sha256_kernel { mp_sha256_kernel(rawValue: UInt32(rawValue)) }

        /// Whether this CPU runs the kernel.
        public var isAvailable: Bool {
            Engine.ensureInitialized()
            return mp_sha256_kernel_available(c) != 0
        }

        public var description: String { String(cString: mp_sha256_kernel_name(c)) }

        public init?(name: String) {
            guard let kernel = Self.allCases.first(where: { $0.description == name }) else { return nil }
            self = kernel
        }
    }

    /// A multi-lane kernel behind the batch entry points (chain and tag verification).
    public enum LaneKernel: Int, CaseIterable, Sendable, CustomStringConvertible {
        case portable = 0
        case shaNIx1 = 1
        case shaNIx2 = 2
        case shaNIx4 = 3
        case avx2x8 = 4
        /// Chains through the 2-way kernel, tags through the 4-way one.
        case shaNIx2x4 = 5

        var c: mp_lane_kernel { mp_lane_kernel(rawValue: UInt32(rawValue)) }

        public var isAvailable: Bool {
            Engine.ensureInitialized()
            return mp_lane_kernel_available(c) != 0
        }

        public var description: String { String(cString: mp_lane_kernel_name(c)) }

        public init?(name: String) {
            guard let kernel = Self.allCases.first(where: { $0.description == name }) else { return nil }
            self = kernel
        }
    }

    /// The lane kernel the batch entry points use now.
    public static var activeLaneKernel: LaneKernel {
        ensureInitialized()
        return LaneKernel(rawValue: Int(mp_lane_active_kernel().rawValue))!
    }

    public static var availableLaneKernels: [LaneKernel] { LaneKernel.allCases.filter(\.isAvailable) }

    /// Switches the batch entry points of the whole process to `kernel`.
    public static func forceLaneKernel(_ kernel: LaneKernel) throws(MicropayError) {
        ensureInitialized()
        guard mp_lane_force_kernel(kernel.c) == MP_OK else { throw .unsupportedKernel(kernel.description) }
    }

    // Swift runs a global's initialiser once, thread-safely: the engine's
    // one-time set-up hangs off it.
    private static let initStatus: mp_status = mp_init()

    /// Initialises libsodium and picks kernels; every entry point calls this.
    @inline(__always)
    static func ensureInitialized() {
        precondition(initStatus == MP_OK, "CEngine failed to initialise (libsodium)")
    }

    /// The kernel every hash in the process uses now.
    public static var activeSHA256Kernel: SHA256Kernel {
        ensureInitialized()
        return SHA256Kernel(rawValue: Int(mp_sha256_active_kernel().rawValue))!
    }

    /// The kernels this CPU runs, portable first.
    public static var availableSHA256Kernels: [SHA256Kernel] {
        SHA256Kernel.allCases.filter(\.isAvailable)
    }

    /// Switches the whole process to `kernel` (tests, benchmarks).
    public static func forceSHA256Kernel(_ kernel: SHA256Kernel) throws(MicropayError) {
        ensureInitialized()
        let status = mp_sha256_force_kernel(kernel.c)
        guard status == MP_OK else { throw .unsupportedKernel(kernel.description) }
    }

    /// SHA-256 with the active kernel.
    public static func sha256(_ message: UnsafeRawBufferPointer) -> Bytes32 {
        ensureInitialized()
        var out = Bytes32()
        out.withUnsafeMutableBytes { o in
            mp_sha256(message.baseAddress, message.count, o.baseAddress!.assumingMemoryBound(to: UInt8.self))
        }
        return out
    }

    public static func sha256(_ message: [UInt8]) -> Bytes32 {
        message.withUnsafeBytes { sha256($0) }
    }

    /// SHA-256 with a named kernel, whatever the active one.
    public static func sha256(_ message: [UInt8], kernel: SHA256Kernel) throws(MicropayError) -> Bytes32 {
        ensureInitialized()
        var out = Bytes32()
        let status = message.withUnsafeBytes { m in
            out.withUnsafeMutableBytes { o in
                mp_sha256_with_kernel(kernel.c, m.baseAddress, m.count, o.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
        guard status == MP_OK else { throw .unsupportedKernel(kernel.description) }
        return out
    }

    /// Fills `buffer` from libsodium's CSPRNG.
    public static func randomBytes(_ buffer: UnsafeMutableRawBufferPointer) {
        ensureInitialized()
        guard let base = buffer.baseAddress else { return }
        mp_random(base, buffer.count)
    }

    public static func randomBytes(count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            randomBytes(UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
    }

    /// Equality whose time depends only on the length. Different lengths: false.
    public static func constantTimeEquals(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        ensureInitialized()
        guard a.count == b.count else { return false }
        guard a.count > 0 else { return true }
        return mp_ct_equal(a.baseAddress, b.baseAddress, a.count) != 0
    }

    /// Zeroes memory in a way the optimiser keeps.
    public static func zero(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress else { return }
        mp_zero(base, buffer.count)
    }
}
