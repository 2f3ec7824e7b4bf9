import MicropayCore
import Testing

@Suite("Wire decoders on damaged input")
struct WireRobustnessTests {
    /// The length a decoder must name when `vector` is cut to `n` bytes
    /// (PROTOCOL §7 sizes; for variable kinds, what the fields present imply).
    static func expectedLength(_ vector: WireVector, cutTo n: Int) -> Int {
        if let size = vector.kind.fixedSize { return size }
        switch vector.kind {
        case .deposit:
            // The settle deposit: count 2, a ChainPayment at 32, a PaymentOrder at 84.
            // Cut before count: an empty Deposit (48). Before the second claim's kind
            // byte is inside the claims area (n - 16 > 84): the second claim counts
            // at the smallest size, 52. Then the real 176.
            precondition(vector.bytes.count == 176)
            if n < 28 { return 48 }
            if n <= 100 { return 32 + 52 + 52 + 16 }
            return 176
        case .receipt:
            return n < 28 ? 72 : vector.bytes.count
        case .goodsStream:
            return n < 44 ? 64 : vector.bytes.count
        default:
            preconditionFailure()
        }
    }

    @Test("the vector decodes the same through both overloads", arguments: WireVector.all)
    func decodes(vector: WireVector) throws {
        let object = try Wire.decode(vector.kind, vector.bytes).get()
        let viaBuffer = try Wire.decodeBuffer(vector.kind, vector.bytes).get()
        #expect(object.encoded() == vector.bytes)
        #expect(Wire.fingerprint(object) == Wire.fingerprint(viaBuffer))
        if let authentic = Wire.authenticates(object) { #expect(authentic) }
    }

    @Test("every truncation and one extra byte fail with the exact length error", arguments: WireVector.all)
    func truncations(vector: WireVector) {
        #expect(throws: MicropayError.empty) { try Wire.decode(vector.kind, []).get() }
        for n in 1..<vector.bytes.count {
            let cut = Array(vector.bytes.prefix(n))
            let expected = MicropayError.wrongLength(vector.kind, expected: Self.expectedLength(vector, cutTo: n), actual: n)
            #expect(throws: expected, "cut to \(n)") { try Wire.decode(vector.kind, cut).get() }
            #expect(throws: expected, "cut to \(n), buffer") { try Wire.decodeBuffer(vector.kind, cut).get() }
        }
        let extended = vector.bytes + [0]
        #expect(throws: MicropayError.wrongLength(vector.kind, expected: vector.bytes.count, actual: extended.count)) {
            try Wire.decode(vector.kind, extended).get()
        }
    }

    /// A flipped bit is never silently accepted: the object is refused, or it
    /// decodes to other fields, and a MAC'd or sealed object then fails its
    /// tag or does not open (for sealed ones, flips in the ciphertext leave
    /// the clear fields alone and are caught only there).
    @Test("every single-bit flip is refused, changes the value, or fails authentication", arguments: WireVector.all)
    func bitFlips(vector: WireVector) throws {
        let original = try Wire.decode(vector.kind, vector.bytes).get()
        let originalPrint = Wire.fingerprint(original)
        let sealed: Set<WireKind> = [.ticket, .envelope, .keyEnvelope, .goodsStream]
        for bit in 0..<(vector.bytes.count * 8) {
            var flipped = vector.bytes
            let offset = bit / 8
            flipped[offset] ^= UInt8(1) << (bit % 8)
            switch Wire.decode(vector.kind, flipped) {
            case .failure(let error):
                switch offset {
                case 0:
                    let byte = flipped[0]
                    let expected: MicropayError = WireKind(rawValue: byte).map { .unexpectedKind(expected: vector.kind, found: $0) }
                        ?? .unknownKind(byte)
                    #expect(error == expected, "bit \(bit)")
                case 1: #expect(error == .unsupportedVersion(vector.kind, flipped[1]), "bit \(bit)")
                case 2: #expect(error == .unsupportedSuite(vector.kind, flipped[2]), "bit \(bit)")
                case 3: #expect(error == .nonZeroFlags(vector.kind, flipped[3]), "bit \(bit)")
                default:
                    let allowed: Set<WireKind> = vector.kind == .deposit ? [.deposit, .chainPayment, .paymentOrder] : [vector.kind]
                    #expect(error.namedKind.map(allowed.contains) == true, "bit \(bit): \(error)")
                }
            case .success(let decoded):
                #expect(offset >= 4, "bit \(bit) in the header's first word was ignored")
                let changed = Wire.fingerprint(decoded) != originalPrint
                #expect(changed || sealed.contains(vector.kind), "bit \(bit) was ignored")
                if let authentic = Wire.authenticates(decoded) {
                    #expect(!authentic, "bit \(bit) still authenticates")
                }
            }
        }
    }

    static let decoders = WireKind.allCases

    /// Checks the invariants every decoder keeps on any input; returns whether it decoded.
    @discardableResult
    static func check(_ input: [UInt8], as kind: WireKind) -> Bool {
        let result = Wire.decode(kind, input)
        let viaBuffer = Wire.decodeBuffer(kind, input)
        switch (result, viaBuffer) {
        case (.failure(let a), .failure(let b)): #expect(a == b)
        case (.success(let a), .success(let b)): #expect(Wire.fingerprint(a) == Wire.fingerprint(b))
        default: Issue.record("the two overloads disagree on \(input.hexString)")
        }
        guard let first = input.first else {
            #expect(throws: MicropayError.empty) { try result.get() }
            return false
        }
        guard let found = WireKind(rawValue: first) else {
            #expect(throws: MicropayError.unknownKind(first)) { try result.get() }
            return false
        }
        guard found == kind else {
            #expect(throws: MicropayError.unexpectedKind(expected: kind, found: found)) { try result.get() }
            return false
        }
        switch result {
        case .success(let object):
            #expect(object.encoded() == input)
            // Decoding is a function of the bytes: again gives the same fields.
            let again = try? Wire.decode(kind, object.encoded()).get()
            #expect(again.map(Wire.fingerprint) == Wire.fingerprint(object))
            return true
        case .failure(let error):
            let allowed: Set<WireKind> = kind == .deposit ? [.deposit, .chainPayment, .paymentOrder] : [kind]
            #expect(error.namedKind.map(allowed.contains) == true, "\(kind) on \(input.hexString): \(error)")
            if case .authenticationFailed = error { Issue.record("a decoder authenticated: \(error)") }
            return false
        }
    }

    /// Inputs shaped like the variable-length kinds, so that they get past the
    /// length check to the field checks (zero fields, codes, padding, claims).
    static func plausible(_ kind: WireKind, using rng: inout WireFuzzRNG) -> [UInt8] {
        func header(_ kind: UInt8) -> [UInt8] {
            var h = [kind, 1, 1, 0] + rng.bytes(12)
            if Int.random(in: 0..<8, using: &rng) == 0 { h[Int.random(in: 1...3, using: &rng)] ^= 0x40 }
            return h
        }
        func zeroField() -> [UInt8] { Int.random(in: 0..<8, using: &rng) == 0 ? [0, 0, 1, 0] : [0, 0, 0, 0] }
        func u32(_ x: Int) -> [UInt8] { [UInt8(x >> 24 & 0xff), UInt8(x >> 16 & 0xff), UInt8(x >> 8 & 0xff), UInt8(x & 0xff)] }
        switch kind {
        case .deposit:
            let count = Int.random(in: 0...3, using: &rng)
            var bytes = header(kind.rawValue) + rng.bytes(8) + u32(count) + zeroField()
            for _ in 0..<count {
                let claimKind = [UInt8(1), 2, 1, 2, 0x10, 0x77].randomElement(using: &rng)!
                bytes += header(claimKind) + rng.bytes(claimKind == 2 ? 60 : 36)
            }
            return bytes + rng.bytes(16)
        case .receipt:
            let count = Int.random(in: 0...20, using: &rng)
            var bytes = header(kind.rawValue) + rng.bytes(8) + u32(count) + zeroField() + rng.bytes(24)
            bytes += (0..<count).map { _ in UInt8.random(in: 0...13, using: &rng) }
            bytes += [UInt8](repeating: 0, count: (8 - count % 8) % 8)
            if count % 8 != 0 && Int.random(in: 0..<8, using: &rng) == 0 { bytes[bytes.count - 1] = 1 }
            return bytes + rng.bytes(16)
        case .goodsStream:
            let chunk = Int.random(in: 0...40, using: &rng)
            let total = Int.random(in: 0...120, using: &rng)
            var bytes = header(kind.rawValue) + rng.bytes(16) + u32(chunk) + [0, 0, 0, 0] + u32(total) + zeroField()
            let chunks = chunk == 0 ? 1 : max(1, (total + chunk - 1) / chunk)
            bytes += rng.bytes(total + 16 * chunks)
            return bytes
        default:
            return header(kind.rawValue) + rng.bytes(kind.fixedSize! - 16)
        }
    }

    @Test("random and mutated inputs never crash a decoder, and errors name the decoder's kind")
    func fuzz() throws {
        var rng = WireFuzzRNG(seed: 0x4D50_5749_5245)
        let kinds = WireKind.allCases
        var decodedCount = 0
        for round in 0..<4000 {
            var input: [UInt8]
            switch round % 4 {
            case 0:
                input = rng.bytes(Int.random(in: 0...300, using: &rng))
            case 1:
                input = rng.bytes(Int.random(in: 1...300, using: &rng))
                input[0] = kinds.randomElement(using: &rng)!.rawValue
                if input.count >= 4 { input[1] = 1; input[2] = 1; input[3] = 0 }
            case 2:
                input = Self.plausible(kinds.randomElement(using: &rng)!, using: &rng)
            default:
                input = WireVector.all.randomElement(using: &rng)!.bytes
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    input[Int.random(in: 0..<input.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: input = Array(input.prefix(Int.random(in: 0...input.count, using: &rng)))
                case 1: input += rng.bytes(Int.random(in: 1...20, using: &rng))
                default: break
                }
            }
            for kind in kinds where Self.check(input, as: kind) { decodedCount += 1 }

            // The bodies decode exactly their own length, whatever the bytes.
            let ticketBody = Result { () throws(MicropayError) in try TicketBody(decoding: input) }
            let envelopeBody = Result { () throws(MicropayError) in try EnvelopeBody(decoding: input) }
            if input.count == TicketBody.byteCount {
                #expect(try ticketBody.get().encoded() == input)
            } else {
                #expect(throws: MicropayError.wrongLength(.ticket, expected: 120, actual: input.count)) { try ticketBody.get() }
            }
            if input.count == EnvelopeBody.byteCount {
                #expect(try envelopeBody.get().encoded() == input)
            } else {
                #expect(throws: MicropayError.wrongLength(.envelope, expected: 104, actual: input.count)) { try envelopeBody.get() }
            }
        }
        // The plausible and mutated inputs reach the success path too.
        #expect(decodedCount > 100)
    }
}
