import COpenSSL
import MicropayCore
import Testing

/// OpenSSL as the independent reference for the engine's own SHA-256 and HMAC.
enum OpenSSLReference {
    static func sha256(_ message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        message.withUnsafeBufferPointer { m in _ = SHA256(m.baseAddress, m.count, &out) }
        return out
    }

    static func hmac(key: [UInt8], _ message: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        key.withUnsafeBufferPointer { k in
            message.withUnsafeBufferPointer { m in
                _ = HMAC(EVP_sha256(), k.baseAddress, Int32(k.count), m.baseAddress, m.count, &out, &length)
            }
        }
        precondition(length == 32)
        return out
    }
}

func randomBytes(_ count: Int, using generator: inout SplitMix64) -> [UInt8] {
    (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}

@Suite("SHA-256 kernels")
struct SHA256KernelTests {
    static let kernels = Engine.availableSHA256Kernels

    @Test("every kernel equals OpenSSL on random inputs of every length 0...300", arguments: kernels)
    func againstOpenSSL(kernel: Engine.SHA256Kernel) throws {
        var generator = SplitMix64(seed: 0x5348_4132 &+ UInt64(kernel.rawValue))
        for length in 0...300 {
            for _ in 0..<3 {
                let message = randomBytes(length, using: &generator)
                #expect(try Engine.sha256(message, kernel: kernel).bytes == OpenSSLReference.sha256(message),
                        "length \(length)")
            }
        }
    }

    @Test("every kernel equals the portable one", arguments: kernels)
    func againstPortable(kernel: Engine.SHA256Kernel) throws {
        var generator = SplitMix64(seed: 99)
        for length in [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 4096 + 7] {
            let message = randomBytes(length, using: &generator)
            #expect(try Engine.sha256(message, kernel: kernel) == Engine.sha256(message, kernel: .portable))
        }
    }

    static let nist: [(String, String)] = [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        ("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"),
    ]

    @Test("NIST examples", arguments: kernels)
    func nistExamples(kernel: Engine.SHA256Kernel) throws {
        for (message, digest) in Self.nist {
            #expect(try Engine.sha256(Array(message.utf8), kernel: kernel).hex == digest)
        }
    }

    @Test("NIST one million 'a'", arguments: kernels)
    func millionA(kernel: Engine.SHA256Kernel) throws {
        let message = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
        #expect(try Engine.sha256(message, kernel: kernel).hex
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

}

@Suite("HMAC-SHA-256 and MAC128")
struct HMACTests {
    // RFC 4231 test cases 1–4, 6, 7 (5 is a truncated output).
    static let rfc4231: [(key: [UInt8], data: [UInt8], mac: String)] = [
        ([UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        ([UInt8](repeating: 0xaa, count: 20), [UInt8](repeating: 0xdd, count: 50),
         "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        (Array(1...25), [UInt8](repeating: 0xcd, count: 50),
         "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        ([UInt8](repeating: 0xaa, count: 131), Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
         "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        ([UInt8](repeating: 0xaa, count: 131),
         Array("This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".utf8),
         "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ]

    @Test("RFC 4231", arguments: 0..<6)
    func rfc4231Case(index: Int) {
        let (key, data, mac) = Self.rfc4231[index]
        #expect(HMAC.authenticate(data, key: key).hex == mac)
    }

    @Test("batch MAC verification gives one verdict per record, as the scalar check")
    func batch() throws {
        var generator = SplitMix64(seed: 11)
        let keys = (0..<5).map { _ in MACKey(try! SecretKey(bytes: randomBytes(32, using: &generator))) }
        var records: [UInt8] = []
        var recordKeys: [MACKey] = []
        var expected: [Bool] = []
        for r in 0..<200 {
            let key = keys[r % keys.count]
            let body = randomBytes(60, using: &generator)
            var tag = key.mac128(label: .order, body).bytes
            let good = r % 3 != 0
            if !good { tag[r % 16] ^= 0x80 }
            records += body + tag
            recordKeys.append(key)
            expected.append(good)
        }
        for kernel in Engine.availableLaneKernels {
            let verdicts = try records.withUnsafeBytes {
                try MACKey.verifyBatch(label: .order, keys: recordKeys, records: $0, stride: 76, macLength: 60, kernel: kernel)
            }
            #expect(verdicts == expected, "\(kernel)")
        }
    }
}

@Suite("Hash chains")
struct HashChainTests {
    @Test("a step is SHA-256 of the 52-byte step input")
    func stepIsSHA256() {
        var generator = SplitMix64(seed: 3)
        for _ in 0..<50 {
            let chainID = Bytes12(randomBytes(12, using: &generator))!
            let word = Bytes32(randomBytes(32, using: &generator))!
            let index = UInt32.random(in: 0...UInt32.max, using: &generator)
            let input = Array("MPC1".utf8) + chainID.bytes
                + [UInt8(index >> 24), UInt8(truncatingIfNeeded: index >> 16), UInt8(truncatingIfNeeded: index >> 8), UInt8(truncatingIfNeeded: index)]
                + word.bytes
            #expect(HashChain.step(chainID: chainID, index: index, word: word).bytes == OpenSSLReference.sha256(input))
        }
    }

}

@Suite("AEAD")
struct AEADTests {
    /// draft-irtf-cfrg-xchacha-03, A.3.1.
    enum Draft {
        static let key = try! SecretKey(hex: "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
        static let nonce = Bytes24(hex: "404142434445464748494a4b4c4d4e4f5051525354555657")!
        static let ad = [UInt8](hex: "50515253c0c1c2c3c4c5c6c7")!
        static let plaintext = Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
        static let sealed = [UInt8](hex: "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52ec0875924c1c7987947deafd8780acf49")!
    }

    @Test("XChaCha20-Poly1305: draft-irtf-cfrg-xchacha-03 A.3.1, sealed apart and in place, and tampering fails")
    func xchacha() throws {
        let (key, nonce, ad, plaintext, expected) = (Draft.key, Draft.nonce, Draft.ad, Draft.plaintext, Draft.sealed)
        let sealed = plaintext.withUnsafeBytes { p in ad.withUnsafeBytes { XChaCha20Poly1305.seal(p, associatedData: $0, nonce: nonce, key: key) } }
        #expect(sealed == expected)
        var inPlace = plaintext + [UInt8](repeating: 0, count: XChaCha20Poly1305.tagByteCount)
        inPlace.withUnsafeMutableBytes { b in ad.withUnsafeBytes { XChaCha20Poly1305.sealInPlace(b, associatedData: $0, nonce: nonce, key: key) } }
        #expect(inPlace == expected)
        let opened = try sealed.withUnsafeBytes { s in try ad.withUnsafeBytes { try XChaCha20Poly1305.open(s, associatedData: $0, nonce: nonce, key: key, kind: .ticket) } }
        #expect(opened == plaintext)
        var tampered = sealed
        tampered[10] ^= 1
        #expect(throws: MicropayError.authenticationFailed(.ticket)) {
            try tampered.withUnsafeBytes { s in try ad.withUnsafeBytes { try XChaCha20Poly1305.open(s, associatedData: $0, nonce: nonce, key: key, kind: .ticket) } }
        }
    }

    @Test("XChaCha20-Poly1305 batch opens equal single opens: the draft's vector in every lane, forgeries, every length up to 128 and past it")
    func xchachaBatch() throws {
        // The draft's A.3.1 item in every position of a batch of 11 random items.
        let (key, nonce, ad, plaintext, vector) = (Draft.key, Draft.nonce, Draft.ad, Draft.plaintext, Draft.sealed)
        var generator = SplitMix64(seed: 0xC4AC4A)
        func randomItem(plain: Int, ad adCount: Int, under key: SecretKey) -> (sealed: [UInt8], associatedData: [UInt8], nonce: Bytes24) {
            let p = randomBytes(plain, using: &generator), a = randomBytes(adCount, using: &generator)
            let n = Bytes24(randomBytes(24, using: &generator))!
            return (p.withUnsafeBytes { p in a.withUnsafeBytes { XChaCha20Poly1305.seal(p, associatedData: $0, nonce: n, key: key) } }, a, n)
        }
        for position in 0..<11 {
            var items = (0..<11).map { _ in randomItem(plain: plaintext.count, ad: ad.count, under: key) }
            items[position] = (vector, ad, nonce)
            #expect(XChaCha20Poly1305.openBatch(items, key: key)[position] == plaintext)
        }
        // Random batches against single opens: tampered tags, ciphertexts and
        // associated data, other keys; plaintexts of 0...130 bytes (past 128
        // the batch goes one by one).
        let other = SecretKey.random()
        var opened = 0, refused = 0
        for round in 0..<120 {
            let plain = round < 100 ? Int.random(in: 0...128, using: &generator) : Int.random(in: 129...300, using: &generator)
            let adCount = round % 3 == 0 ? 48 : Int.random(in: 0...49, using: &generator)
            let count = Int.random(in: 0...19, using: &generator)
            let items = (0..<count).map { _ in
                var item = randomItem(plain: plain, ad: adCount, under: Int.random(in: 0..<10, using: &generator) == 0 ? other : key)
                switch Int.random(in: 0..<8, using: &generator) {
                case 0: item.sealed[Int.random(in: plain..<(plain + 16), using: &generator)] ^= 1
                case 1 where plain > 0: item.sealed[Int.random(in: 0..<plain, using: &generator)] ^= 0x40
                case 2 where adCount > 0: item.associatedData[Int.random(in: 0..<adCount, using: &generator)] ^= 2
                default: break
                }
                return item
            }
            let expected = items.map { item in
                try? item.sealed.withUnsafeBytes { s in
                    try item.associatedData.withUnsafeBytes { try XChaCha20Poly1305.open(s, associatedData: $0, nonce: item.nonce, key: key, kind: .ticket) }
                }
            }
            #expect(XChaCha20Poly1305.openBatch(items, key: key) == expected, "round \(round): \(count) items of \(plain) bytes")
            opened += expected.filter { $0 != nil }.count
            refused += expected.filter { $0 == nil }.count
        }
        #expect(opened > 500 && refused > 200, "both outcomes exercised: \(opened) opened, \(refused) refused")
    }

    static let backends = AESGCMKey.Backend.allCases.filter { $0 != .automatic && $0.isAvailable }

    // McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13, 14 and 16 (AES-256).
    static let gcmVectors: [(key: String, plaintext: String, ad: String, nonce: String, sealed: String)] = [
        (String(repeating: "00", count: 32), "", "", String(repeating: "00", count: 12), "530f8afbc74536b9a963b4f1c4cb738b"),
        (String(repeating: "00", count: 32), String(repeating: "00", count: 16), "", String(repeating: "00", count: 12),
         "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919"),
        ("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
         "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
         "feedfacedeadbeeffeedfacedeadbeefabaddad2", "cafebabefacedbaddecaf888",
         "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
         + "76fc6ece0f4e1768cddf8853bb2d551b"),
    ]

    @Test("AES-256-GCM known answers on every backend", arguments: backends)
    func gcmKnownAnswers(backend: AESGCMKey.Backend) throws {
        for v in Self.gcmVectors {
            let key = try AESGCMKey(SecretKey(hex: v.key), backend: backend)
            #expect(key.backend == backend)
            let sealed = key.seal([UInt8](hex: v.plaintext)!, associatedData: [UInt8](hex: v.ad)!, nonce: [UInt8](hex: v.nonce)!)
            #expect(sealed.hexString == v.sealed)
            // The key's context is reused: open twice, then tamper.
            for _ in 0..<2 {
                #expect(try key.open(sealed, associatedData: [UInt8](hex: v.ad)!, nonce: [UInt8](hex: v.nonce)!) == [UInt8](hex: v.plaintext)!)
            }
            var bad = sealed
            bad[bad.count - 1] ^= 0x40
            #expect(throws: MicropayError.authenticationFailed(nil)) {
                try key.open(bad, associatedData: [UInt8](hex: v.ad)!, nonce: [UInt8](hex: v.nonce)!)
            }
        }
    }

    @Test("the backends agree on random messages")
    func backendsAgree() throws {
        var generator = SplitMix64(seed: 17)
        let secret = try SecretKey(bytes: randomBytes(32, using: &generator))
        let keys = try Self.backends.map { try AESGCMKey(secret, backend: $0) }
        for length in [0, 1, 15, 16, 17, 100, 1000] {
            let message = randomBytes(length, using: &generator)
            let ad = randomBytes(length % 40, using: &generator)
            let nonce = randomBytes(12, using: &generator)
            let sealed = keys.map { $0.seal(message, associatedData: ad, nonce: nonce) }
            #expect(Set(sealed).count == 1)
        }
    }
}

@Suite("Utilities")
struct UtilityTests {
    @Test("constant-time equality")
    func constantTimeEquals() {
        let a: [UInt8] = Array(0..<32)
        var b = a
        #expect(a.withUnsafeBytes { x in b.withUnsafeBytes { Engine.constantTimeEquals(x, $0) } })
        b[31] ^= 1
        #expect(!a.withUnsafeBytes { x in b.withUnsafeBytes { Engine.constantTimeEquals(x, $0) } })
        #expect(!a.withUnsafeBytes { x in b.prefix(31).withUnsafeBytes { Engine.constantTimeEquals(x, $0) } })
    }

    @Test("random keys differ and secret keys compare by value")
    func randomKeys() throws {
        let keys = (0..<64).map { _ in SecretKey.random().hexExposingSecret }
        #expect(Set(keys).count == 64)
        let k = SecretKey.random()
        #expect(try SecretKey(hex: k.hexExposingSecret) == k)
        #expect(throws: MicropayError.invalidKeyLength(31)) { try SecretKey(bytes: [UInt8](repeating: 0, count: 31)) }
    }
}

/// Tests that switch the process-wide kernel run one at a time, so that each
/// restores the state the next one starts from.
@Suite("Forced kernels", .serialized)
struct ForcedKernelTests {
    @Test("the active kernel is the best available and can be forced")
    func dispatch() throws {
        let best = Engine.availableSHA256Kernels.last!
        #expect(Engine.activeSHA256Kernel == best)
        #expect(Engine.availableSHA256Kernels.first == .portable)
        #expect(Engine.SHA256Kernel(name: best.description) == best)
    }

    @Test("cached key states equal OpenSSL HMAC on random messages", arguments: Engine.availableSHA256Kernels)
    func cachedStates(kernel: Engine.SHA256Kernel) throws {
        var generator = SplitMix64(seed: 7)
        let saved = Engine.activeSHA256Kernel
        try Engine.forceSHA256Kernel(kernel)
        defer { try? Engine.forceSHA256Kernel(saved) }
        for length in 0...200 {
            let keyBytes = randomBytes(32, using: &generator)
            let key = try SecretKey(bytes: keyBytes)
            let message = randomBytes(length, using: &generator)
            let macKey = MACKey(key)
            let expected = OpenSSLReference.hmac(key: keyBytes, message)
            #expect(message.withUnsafeBytes { macKey.hmac($0) }.bytes == expected)
            #expect(HMAC.authenticate(message, key: keyBytes).bytes == expected)
            // MAC128 is the first half of HMAC over label || message.
            let tag = macKey.mac128(label: .order, message)
            #expect(tag.bytes == Array(OpenSSLReference.hmac(key: keyBytes, Array("MPO1".utf8) + message).prefix(16)))
            #expect(message.withUnsafeBytes { macKey.verify(label: .order, $0, tag: tag) })
            var wrong = tag
            wrong.withUnsafeMutableBytes { $0[Int(length % 16)] ^= 0x01 }
            #expect(!message.withUnsafeBytes { macKey.verify(label: .order, $0, tag: wrong) })
            #expect(!message.withUnsafeBytes { macKey.verify(label: .orderBank, $0, tag: tag) })
        }
    }

    @Test("walk equals repeated steps; batch equals scalar verification", arguments: Engine.availableSHA256Kernels)
    func walkAndBatch(kernel: Engine.SHA256Kernel) throws {
        let saved = Engine.activeSHA256Kernel
        try Engine.forceSHA256Kernel(kernel)
        defer { try? Engine.forceSHA256Kernel(saved) }
        var generator = SplitMix64(seed: 5)
        let chainID = Bytes12(randomBytes(12, using: &generator))!
        let n: UInt32 = 64
        var words = [Bytes32](repeating: Bytes32(), count: Int(n) + 1)
        words[Int(n)] = Bytes32(randomBytes(32, using: &generator))!
        for i in stride(from: n, to: 0, by: -1) {
            words[Int(i) - 1] = HashChain.step(chainID: chainID, index: i, word: words[Int(i)])
        }
        #expect(HashChain.walk(chainID: chainID, from: n, word: words[Int(n)], to: 0) == words[0])
        #expect(HashChain.walk(chainID: chainID, from: 9, word: words[9], to: 9) == words[9])

        var claims: [HashChain.Claim] = []
        var expected: [Bool] = []
        for _ in 0..<300 {
            let last = UInt32.random(in: 0...n, using: &generator)
            let index = UInt32.random(in: 0...n, using: &generator)
            var word = words[Int(index)]
            let forge = Bool.random(using: &generator)
            if forge { word.withUnsafeMutableBytes { $0[0] ^= 1 } }
            claims.append(.init(chainID: chainID, index: index, word: word, last: last, lastWord: words[Int(last)]))
            expected.append(index > last && !forge)
            #expect(HashChain.verify(chainID: chainID, index: index, word: word, last: last, lastWord: words[Int(last)])
                    == (index > last && !forge))
        }
        #expect(try HashChain.verifyBatch(claims) == expected)
    }
}

/// Every multi-lane kernel against the scalar path (one `HashChain.verify` or
/// `MACKey.verify` per element) on random batches.
@Suite("Lane kernels")
struct LaneKernelTests {
    static let kernels = Engine.availableLaneKernels

    @Test("the portable kernel is always there and the best one is active")
    func dispatch() {
        #expect(Self.kernels.first == .portable)
        #expect(Engine.activeLaneKernel.isAvailable)
        #expect(Engine.LaneKernel(name: "sha-ni-x4") == .shaNIx4)
    }

    @Test("chain verification: mixed distances, forged words, nothing to walk, many chains", arguments: kernels)
    func chains(kernel: Engine.LaneKernel) throws {
        var generator = SplitMix64(seed: 0xC4A1 &+ UInt64(kernel.rawValue))
        // A few real chains of different lengths.
        let chains: [(id: Bytes12, words: [Bytes32])] = (0..<9).map { c in
            let id = Bytes12(randomBytes(12, using: &generator))!
            let n = 20 + 7 * c
            var words = [Bytes32](repeating: Bytes32(), count: n + 1)
            words[n] = Bytes32(randomBytes(32, using: &generator))!
            for i in stride(from: n, to: 0, by: -1) { words[i - 1] = HashChain.step(chainID: id, index: UInt32(i), word: words[i]) }
            return (id, words)
        }
        for count in [0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 200] {
            var claims: [HashChain.Claim] = []
            for _ in 0..<count {
                let chain = chains[Int.random(in: 0..<chains.count, using: &generator)]
                let n = chain.words.count - 1
                let last = Int.random(in: 0...n, using: &generator)
                // Mostly short walks (distance 1), some long, some with nothing to walk.
                let index: Int = switch Int.random(in: 0..<10, using: &generator) {
                case 0: Int.random(in: 0...last, using: &generator)
                case 1...3: Int.random(in: last...n, using: &generator)
                default: min(last + 1, n)
                }
                var word = chain.words[index]
                if Int.random(in: 0..<4, using: &generator) == 0 { word.withUnsafeMutableBytes { $0[Int.random(in: 0..<32, using: &generator)] ^= 0x10 } }
                var lastWord = chain.words[last]
                if Int.random(in: 0..<20, using: &generator) == 0 { lastWord.withUnsafeMutableBytes { $0[31] ^= 1 } }
                claims.append(.init(chainID: chain.id, index: UInt32(index), word: word, last: UInt32(last), lastWord: lastWord))
            }
            let expected = claims.map { HashChain.verify(chainID: $0.chainID, index: $0.index, word: $0.word, last: $0.last, lastWord: $0.lastWord) }
            #expect(try HashChain.verifyBatch(claims, kernel: kernel) == expected, "count \(count)")
            if count == 200 { #expect(expected.contains(true) && expected.contains(false)) }
        }
    }

    @Test("order tags: many keys, forged tags and bodies, every batch size", arguments: kernels)
    func tags(kernel: Engine.LaneKernel) throws {
        var generator = SplitMix64(seed: 0x7A65 &+ UInt64(kernel.rawValue))
        let keys = (0..<13).map { _ in MACKey(try! SecretKey(bytes: randomBytes(32, using: &generator))) }
        for count in [0, 1, 2, 3, 4, 5, 7, 8, 9, 17, 300] {
            var records: [UInt8] = []
            var recordKeys: [MACKey] = []
            var expected: [Bool] = []
            for _ in 0..<count {
                let key = keys[Int.random(in: 0..<keys.count, using: &generator)]
                var record = randomBytes(60, using: &generator)
                record += key.mac128(label: .order, record).bytes
                switch Int.random(in: 0..<6, using: &generator) {
                case 0: record[Int.random(in: 60..<76, using: &generator)] ^= 0x01
                case 1: record[Int.random(in: 0..<60, using: &generator)] ^= 0x80
                default: break
                }
                expected.append(record.withUnsafeBytes { r in
                    key.verify(label: .order, UnsafeRawBufferPointer(rebasing: r[..<60]), tag: Bytes16(r[60..<76])!)
                })
                records += record
                recordKeys.append(key)
            }
            let verdicts = try records.withUnsafeBytes {
                try MACKey.verifyBatch(label: .order, keys: recordKeys, records: $0, stride: 76, macLength: 60, kernel: kernel)
            }
            #expect(verdicts == expected, "count \(count)")
        }
    }

    @Test("mac(K) states derived in batches equal OpenSSL's HMAC under HMAC(K, \"MPM1\"), every group size", arguments: kernels)
    func subkeyStates(kernel: Engine.LaneKernel) throws {
        var generator = SplitMix64(seed: 0x5B4E &+ UInt64(kernel.rawValue))
        for count in [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33] {
            let keyBytes = (0..<count).map { _ in randomBytes(32, using: &generator) }
            let derived = try MACKey.batch(macOf: keyBytes.map { try SecretKey(bytes: $0) }, kernel: kernel)
            #expect(derived.count == count)
            for (i, key) in keyBytes.enumerated() {
                let subkey = OpenSSLReference.hmac(key: key, Array("MPM1".utf8))
                let message = randomBytes(Int.random(in: 0..<100, using: &generator), using: &generator)
                #expect(message.withUnsafeBytes { derived[i].hmac($0) }.bytes == OpenSSLReference.hmac(key: subkey, message),
                        "count \(count), key \(i)")
            }
        }
    }
}
