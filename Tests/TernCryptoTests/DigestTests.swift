import TernCrypto
import Testing

@Suite("Digests")
struct DigestTests {
    static let millionA = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
    static let twoBlocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"

    /// FIPS 180-2 appendix A (SHA-1) and B (SHA-256) examples, and the
    /// empty message.
    static let sha1: [DigestVector] = [
        DigestVector("", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        DigestVector("abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        DigestVector(twoBlocks, "84983e441c3bd26ebaae4aa1f95129e5e54670f1"),
        DigestVector("one million a", millionA, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"),
    ]

    static let sha256: [DigestVector] = [
        DigestVector("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        DigestVector("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        DigestVector(twoBlocks, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
        DigestVector("one million a", millionA, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
    ]

    static let sha384: [DigestVector] = [
        DigestVector("abc", "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7"),
        DigestVector(
            "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
            "09330c33f71147e83d192fc782cd1b4753111b173b3b05d22fa08086e3b0f712fcc7c71a557e2db966c3e9fa91746039"),
    ]

    /// RFC 1321 §A.5 test suite (MD5 is here for STUN's long-term key).
    static let md5: [DigestVector] = [
        DigestVector("", "d41d8cd98f00b204e9800998ecf8427e"),
        DigestVector("a", "0cc175b9c0f1b6a831c399e269772661"),
        DigestVector("abc", "900150983cd24fb0d6963f7d28e17f72"),
        DigestVector("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
        DigestVector("abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"),
        DigestVector("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", "d174ab98d277d9f5a5611c2c9f419d9f"),
        DigestVector(
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
            "57edf4a22be3c955ac49da2e2107b67a"),
    ]

    @Test("SHA-1, FIPS 180-2 examples", arguments: sha1)
    func sha1MatchesFIPS180(vector: DigestVector) throws {
        #expect(try HashFunction.sha1.hash(vector.message) == vector.digest)
    }

    @Test("SHA-256, FIPS 180-2 examples", arguments: sha256)
    func sha256MatchesFIPS180(vector: DigestVector) throws {
        #expect(try HashFunction.sha256.hash(vector.message) == vector.digest)
    }

    @Test("SHA-384, FIPS 180-2 examples", arguments: sha384)
    func sha384MatchesFIPS180(vector: DigestVector) throws {
        #expect(try HashFunction.sha384.hash(vector.message) == vector.digest)
    }

    @Test("MD5, RFC 1321 test suite", arguments: md5)
    func md5MatchesRFC1321(vector: DigestVector) throws {
        #expect(try HashFunction.md5.hash(vector.message) == vector.digest)
    }

    @Test("a digest written in place equals the returned one", arguments: HashFunction.allCases)
    func inPlaceDigestMatches(function: HashFunction) throws {
        let message = Array("abc".utf8)
        var out = [UInt8](repeating: 0xEE, count: function.byteCount)
        try message.withUnsafeBytes { input in
            try out.withUnsafeMutableBytes { try function.hash(input, into: $0) }
        }
        #expect(out == (try function.hash(message)))
    }

    @Test("a slice hashes as its own bytes, not its base's")
    func sliceHashesItsOwnBytes() throws {
        let bytes = Array("xxabcxx".utf8)
        #expect(try HashFunction.sha256.hash(bytes[2..<5]) == DigestTests.sha256[1].digest)
    }

    @Test("an output buffer of the wrong size is refused", arguments: HashFunction.allCases)
    func wrongOutputSizeIsRefused(function: HashFunction) {
        var out = [UInt8](repeating: 0, count: function.byteCount + 1)
        let error = #expect(throws: CryptoError.self) {
            try out.withUnsafeMutableBytes { output in
                try [UInt8]().withUnsafeBytes { try function.hash($0, into: output) }
            }
        }
        #expect(error?.code == .invalidArgument)
    }

    @Test("SHA-512 (libsodium), FIPS 180-2 example")
    func sha512MatchesFIPS180() {
        #expect(Sodium.sha512(Array("abc".utf8)) == hex(
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
                + "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"))
    }
}
