import Testing
import TernSTUN
import TernTestSupport


/// The four test vectors of RFC 5769 §2, with what is needed to check them.
struct Vector: Sendable, CustomTestStringConvertible {
    var name: String
    var bytes: [UInt8]
    /// RFC 5769 §2: the first three vectors pad with spaces, the fourth with zeros.
    var padding: UInt8
    var key: STUNKey
    var hasFingerprint: Bool

    var testDescription: String { name }
}

enum RFC5769 {
    static let shortTermPassword = "VOkJxbRl1RmTxUk/WvJxBt"

    /// RFC 5769 §2.1, Sample Request.
    static let request = bytes("""
        0001 0058 2112a442 b7e7a701bc34d686fa87dfae
        8022 0010 5354554e207465737420636c69656e74
        0024 0004 6e0001ff
        8029 0008 932ff9b151263b36
        0006 0009 6576746a3a68367659 202020
        0008 0014 9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2
        8028 0004 e57a3bcf
        """)

    /// RFC 5769 §2.2, Sample IPv4 Response.
    static let ipv4Response = bytes("""
        0101 003c 2112a442 b7e7a701bc34d686fa87dfae
        8022 000b 7465737420766563746f72 20
        0020 0008 0001a147e112a643
        0008 0014 2b91f599fd9e90c38c7489f92af9ba53f06be7d7
        8028 0004 c07d4c96
        """)

    /// RFC 5769 §2.3, Sample IPv6 Response.
    static let ipv6Response = bytes("""
        0101 0048 2112a442 b7e7a701bc34d686fa87dfae
        8022 000b 7465737420766563746f72 20
        0020 0014 0002a147 0113a9faa5d3f179bc25f4b5bed2b9d9
        0008 0014 a382954e4be67bf11784c97c8292c275bfe3ed41
        8028 0004 c8fb0b4c
        """)

    /// RFC 5769 §2.4, Sample Request with Long-Term Authentication. The
    /// password "The<U+00AD>M<U+00AA>tr<U+2168>" is "TheMatrIX" after SASLprep.
    static let longTermRequest = bytes("""
        0001 0060 2112a442 78ad3433c6ad72c029da412e
        0006 0012 e3839ee38388e383aae38383e382afe382b9 0000
        0015 001c 662f2f3439396b39353464364f4c33346f4c394653547679363473 41
        0014 000b 6578616d706c652e6f7267 00
        0008 0014 f67024656dd64a3e02b8e0712e85c9a28ca89666
        """)

    static let longTermUsername = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}"

    static var all: [Vector] {
        let shortTerm = STUNKey.shortTerm(password: shortTermPassword)
        // The MD5 of a fixed string cannot fail with the default provider.
        let longTerm = (try? STUNKey.longTerm(username: longTermUsername, realm: "example.org", password: "TheMatrIX"))
            ?? STUNKey(bytes: [])
        return [
            Vector(name: "sample request", bytes: request, padding: 0x20, key: shortTerm, hasFingerprint: true),
            Vector(name: "IPv4 response", bytes: ipv4Response, padding: 0x20, key: shortTerm, hasFingerprint: true),
            Vector(name: "IPv6 response", bytes: ipv6Response, padding: 0x20, key: shortTerm, hasFingerprint: true),
            Vector(name: "long-term request", bytes: longTermRequest, padding: 0x00, key: longTerm, hasFingerprint: false),
        ]
    }
}
