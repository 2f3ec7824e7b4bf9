/// Known-answer checks run at start-up by `micropay selftest`: standard
/// vectors for each primitive, the protocol's own vectors (PROTOCOL.md, v1),
/// and every SHA-256 kernel this CPU runs against the portable one.
public enum SelfTest {
    public struct Result: Sendable {
        public let name: String
        public let passed: Bool
    }

    public static func run() -> [Result] {
        var results: [Result] = []
        func check(_ name: String, _ body: () throws -> Bool) {
            let passed = (try? body()) ?? false
            results.append(Result(name: name, passed: passed))
        }
        func hex(_ s: String) -> [UInt8] { [UInt8](hex: s)! }

        // FIPS 180-4 / NIST CAVP examples.
        let sha256Vectors: [(String, [UInt8], String)] = [
            ("SHA-256 empty", [], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("SHA-256 \"abc\"", Array("abc".utf8), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            ("SHA-256 448-bit", Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8),
             "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
            ("SHA-256 one million 'a'", [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000),
             "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
        ]
        for kernel in Engine.availableSHA256Kernels {
            for (name, message, digest) in sha256Vectors {
                check("\(name) [\(kernel)]") { try Engine.sha256(message, kernel: kernel).hex == digest }
            }
        }

        // Kernels against the portable reference on every length 0...300.
        var generator = SplitMix64(seed: 0x4d50_5354)
        let portable = Engine.SHA256Kernel.portable
        for kernel in Engine.availableSHA256Kernels where kernel != portable {
            check("SHA-256 \(kernel) = portable, lengths 0...300") {
                try (0...300).allSatisfy { length in
                    let message = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
                    return try Engine.sha256(message, kernel: kernel) == Engine.sha256(message, kernel: portable)
                }
            }
        }

        // RFC 4231 test cases 1, 2 and 6.
        let hmacVectors: [(String, [UInt8], [UInt8], String)] = [
            ("HMAC-SHA-256 RFC 4231 #1", [UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
             "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            ("HMAC-SHA-256 RFC 4231 #2", Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
             "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            ("HMAC-SHA-256 RFC 4231 #6", [UInt8](repeating: 0xaa, count: 131),
             Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
             "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        ]
        for (name, key, message, mac) in hmacVectors {
            check(name) { HMAC.authenticate(message, key: key).hex == mac }
        }

        // draft-irtf-cfrg-xchacha-03, A.3.1.
        check("XChaCha20-Poly1305 draft-irtf-cfrg-xchacha A.3.1, one and eight at a time") {
            let key = try SecretKey(hex: "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
            let nonce = Bytes24(hex: "404142434445464748494a4b4c4d4e4f5051525354555657")!
            let ad = hex("50515253c0c1c2c3c4c5c6c7")
            let plaintext = Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
            let expected = hex("bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e"
                + "c0875924c1c7987947deafd8780acf49")
            let sealed = plaintext.withUnsafeBytes { p in ad.withUnsafeBytes { a in
                XChaCha20Poly1305.seal(p, associatedData: a, nonce: nonce, key: key) } }
            let opened = try sealed.withUnsafeBytes { s in try ad.withUnsafeBytes { a in
                try XChaCha20Poly1305.open(s, associatedData: a, nonce: nonce, key: key, kind: .ticket) } }
            // The batch opener's own lanes (AVX2 where the CPU has it): the
            // vector in each of 9 places, and a forged copy refused.
            var forged = expected
            forged[forged.count - 1] ^= 1
            let items = (0..<10).map { $0 == 4 ? (forged, ad, nonce) : (expected, ad, nonce) }
            let batch = XChaCha20Poly1305.openBatch(items, key: key)
            let batchRight = batch.enumerated().allSatisfy { $0.offset == 4 ? $0.element == nil : $0.element == plaintext }
            return sealed == expected && opened == plaintext && batchRight
        }

        // McGrew–Viega GCM test case 16 (AES-256, with associated data), every backend.
        for backend in AESGCMKey.Backend.allCases where backend != .automatic && backend.isAvailable {
            check("AES-256-GCM test case 16 [\(backend)]") {
                let key = try AESGCMKey(try SecretKey(hex: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"), backend: backend)
                let plaintext = hex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
                let ad = hex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
                let nonce = hex("cafebabefacedbaddecaf888")
                let expected = hex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662"
                    + "76fc6ece0f4e1768cddf8853bb2d551b")
                let sealed = key.seal(plaintext, associatedData: ad, nonce: nonce)
                let opened = try key.open(sealed, associatedData: ad, nonce: nonce)
                return sealed == expected && opened == plaintext
            }
        }

        // PROTOCOL.md v1 vectors: the key schedule and one chain step.
        check("protocol v1 key derivation") {
            let master = try SecretKey(hex: "56354f8872d48bd10e4f7355622ae6af0848a721d4b34c1e2a3b0f9ed16d999d")
            let customer = KeyDerivation.accountKey(master: master, role: .customer, bankID: 7, account: 1001)
            let merchant = KeyDerivation.accountKey(master: master, role: .merchant, bankID: 7, account: 2002)
            let session = KeyDerivation.sessionKey(master: master, bankID: 7, serial: 42)
            return customer.hexExposingSecret == "7acc9f8ff7f5918164549a12548c6c2ad27ff0abdc3ec5fa131f476752c5cbe2"
                && merchant.hexExposingSecret == "e7ab3b2b4b258479aee70239004cf493b95872a6686e5fae7623c741b8bcdbb4"
                && session.hexExposingSecret == "2ce27eab980f90564fb03f172823f48ffe6dc4dc99093a4544c38ffa68a28c04"
                && customer.macSubkey.hexExposingSecret == "d0e8b404ea697d77e2ba9cd8a6ca148808b21dc310c6c581895b7d4278045ad9"
        }
        check("protocol v1 chain step w16 → w15 → w0") {
            let chainID = Bytes12(hex: "65b31363b57ab73cbc4d067e")!
            let w16 = Bytes32(hex: "37b4970485a832cecdc079beae693bb168658db0a83b9243da620326f0a28ef8")!
            let w15 = HashChain.step(chainID: chainID, index: 16, word: w16)
            let root = HashChain.walk(chainID: chainID, from: 16, word: w16, to: 0)
            return w15.hex == "68db2bec01135f8c4ede51a7ed200ad35ad0da6e4c60db72d10d4fc4b7ebc14b"
                && root.hex == "89c32a682ce26b138cb433cb2d15c87df867b989c2df2d849262b441c6fd0a8e"
        }
        return results
    }
}

/// A small deterministic generator (SplitMix64) for reproducible test data.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
