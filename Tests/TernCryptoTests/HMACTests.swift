import TernCrypto
import Testing

@Suite("HMAC")
struct HMACTests {
    static let block20 = [UInt8](repeating: 0x0b, count: 20)
    static let aa20 = [UInt8](repeating: 0xaa, count: 20)
    static let dd50 = [UInt8](repeating: 0xdd, count: 50)
    static let key25 = (1...25).map { UInt8($0) }
    static let cd50 = [UInt8](repeating: 0xcd, count: 50)
    static let c20 = [UInt8](repeating: 0x0c, count: 20)

    /// RFC 2202 §3, test cases 1-7 (case 5's MAC is the full 20 bytes; the
    /// RFC also prints its 96-bit truncation).
    static let sha1: [MACVector] = [
        MACVector("1", key: block20, data: Array("Hi There".utf8), mac: "b617318655057264e28bc0b6fb378c8ef146be00"),
        MACVector("2", key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8),
                  mac: "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"),
        MACVector("3", key: aa20, data: dd50, mac: "125d7342b9ac11cd91a39af48aa17b4f63f175d3"),
        MACVector("4", key: key25, data: cd50, mac: "4c9007f4026250c6bc8414f9bf50c86c2d7235da"),
        MACVector("5", key: c20, data: Array("Test With Truncation".utf8), mac: "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04"),
        MACVector("6", key: [UInt8](repeating: 0xaa, count: 80),
                  data: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
                  mac: "aa4ae5e15272d00e95705637ce8a3b55ed402112"),
        MACVector("7", key: [UInt8](repeating: 0xaa, count: 80),
                  data: Array("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data".utf8),
                  mac: "e8e99d0f45237d786d6bbaa7965c7808bbff1a91"),
    ]

    /// RFC 4231 §4.2-4.8, test cases 1-7 (case 5 is printed truncated to
    /// 128 bits only, so it is compared as a prefix).
    static let sha256: [MACVector] = [
        MACVector("1", key: block20, data: Array("Hi There".utf8),
                  mac: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        MACVector("2", key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8),
                  mac: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        MACVector("3", key: aa20, data: dd50, mac: "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        MACVector("4", key: key25, data: cd50, mac: "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        MACVector("5", key: c20, data: Array("Test With Truncation".utf8), mac: "a3b6167473100ee06e0c796c2955552b"),
        MACVector("6", key: [UInt8](repeating: 0xaa, count: 131),
                  data: Array("Test Using Larger Than Block-Size Key - Hash Key First".utf8),
                  mac: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        MACVector("7", key: [UInt8](repeating: 0xaa, count: 131),
                  data: Array(("This is a test using a larger than block-size key and a larger than block-size data. "
                      + "The key needs to be hashed before being used by the HMAC algorithm.").utf8),
                  mac: "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ]

    /// RFC 4231 §4.2-4.3, test cases 1 and 2 for HMAC-SHA384 (the TLS 1.2
    /// PRF of the SHA-384 suites).
    static let sha384: [MACVector] = [
        MACVector("1", key: block20, data: Array("Hi There".utf8),
                  mac: "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6"),
        MACVector("2", key: Array("Jefe".utf8), data: Array("what do ya want for nothing?".utf8),
                  mac: "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"),
    ]

    @Test("HMAC-SHA384, RFC 4231", arguments: sha384)
    func hmacSHA384MatchesRFC4231(vector: MACVector) throws {
        #expect(try HashFunction.sha384.authenticationCode(key: vector.key, message: vector.data) == vector.mac)
    }

    @Test("HMAC-SHA1, RFC 2202", arguments: sha1)
    func hmacSHA1MatchesRFC2202(vector: MACVector) throws {
        let mac = try HashFunction.sha1.authenticationCode(key: vector.key, message: vector.data)
        #expect(mac.count == 20)
        #expect(mac == vector.mac)
    }

    @Test("HMAC-SHA256, RFC 4231", arguments: sha256)
    func hmacSHA256MatchesRFC4231(vector: MACVector) throws {
        let mac = try HashFunction.sha256.authenticationCode(key: vector.key, message: vector.data)
        #expect(mac.count == 32)
        #expect(Array(mac.prefix(vector.mac.count)) == vector.mac)
    }

    @Test("an empty key and an empty message still give the published MAC")
    func emptyKeyAndMessage() throws {
        // HMAC-SHA256("", "") as computed by every implementation (it is the
        // MAC of the zero block).
        #expect(try HashFunction.sha256.authenticationCode(key: [UInt8](), message: [UInt8]())
            == hex("b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"))
    }

    @Test("a MAC written in place equals the returned one")
    func inPlaceMACMatches() throws {
        let vector = HMACTests.sha256[1]
        var out = [UInt8](repeating: 0, count: 32)
        try vector.key.withUnsafeBytes { key in
            try vector.data.withUnsafeBytes { data in
                try out.withUnsafeMutableBytes { try HashFunction.sha256.authenticationCode(key: key, message: data, into: $0) }
            }
        }
        #expect(out == vector.mac)
    }

    @Test("an output buffer of the wrong size is refused")
    func wrongOutputSizeIsRefused() {
        var out = [UInt8](repeating: 0, count: 20)
        let error = #expect(throws: CryptoError.self) {
            try out.withUnsafeMutableBytes { output in
                try [UInt8](repeating: 1, count: 4).withUnsafeBytes { key in
                    try HashFunction.sha256.authenticationCode(key: key, message: key, into: output)
                }
            }
        }
        #expect(error?.code == .invalidArgument)
    }
}
