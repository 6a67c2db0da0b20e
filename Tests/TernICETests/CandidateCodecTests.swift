import TernTestSupport
import Testing
import TernICE
import TernSTUN

/// A line and what it must parse to.
struct CandidateExample: Sendable, CustomTestStringConvertible {
    var name: String
    var line: String
    var expected: ICEParsedCandidate
    /// The line is cut at every offset before this one: all such prefixes must throw.
    var mandatoryEnd: Int

    init(_ name: String, _ line: String, _ expected: ICEParsedCandidate) {
        self.name = name
        self.line = line
        self.expected = expected
        // Everything up to and including the candidate type is mandatory.
        let typ = line.utf8.count - (line.split(separator: " typ ", maxSplits: 1).last?.utf8.count ?? 0)
        let typeLength = line.utf8.dropFirst(typ).prefix { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\r") }.count
        mandatoryEnd = typ + typeLength
    }

    var testDescription: String { name }
}

func udp(_ foundation: String, _ priority: UInt32, _ address: STUNAddress, _ type: ICECandidateType, related: STUNAddress? = nil) -> ICEParsedCandidate {
    .candidate(ICECandidate(foundation: foundation, priority: priority, address: address, type: type, relatedAddress: related))
}

func ipv6(_ text: String, port: UInt16) -> STUNAddress {
    // Through the codec itself would be circular; build from groups instead.
    var groups: [UInt16] = []
    let halves = text.split(separator: "::", omittingEmptySubsequences: false).map { $0.split(separator: ":").compactMap { UInt16($0, radix: 16) } }
    if halves.count == 2 {
        groups = halves[0] + [UInt16](repeating: 0, count: 8 - halves[0].count - halves[1].count) + halves[1]
    } else {
        groups = halves[0]
    }
    var bytes: [UInt8] = []
    for group in groups { bytes += [UInt8(group >> 8), UInt8(group & 0xFF)] }
    return STUNAddress(ipBytes: bytes, port: port) ?? STUNAddress.ipv4(0, 0, 0, 0, port: 0)
}

let candidateExamples: [CandidateExample] = [
    // RFC 8839 §5.1 / RFC 8445 examples.
    CandidateExample(
        "RFC 8839 host", "a=candidate:1 1 UDP 2130706431 203.0.113.141 8998 typ host",
        udp("1", 2_130_706_431, .ipv4(203, 0, 113, 141, port: 8998), .host)
    ),
    CandidateExample(
        "RFC 8839 srflx", "a=candidate:2 1 UDP 1694498815 192.0.2.3 45664 typ srflx raddr 203.0.113.141 rport 8998",
        udp("2", 1_694_498_815, .ipv4(192, 0, 2, 3, port: 45664), .serverReflexive, related: .ipv4(203, 0, 113, 141, port: 8998))
    ),
    // Chromium's RTCIceCandidate.candidate strings.
    CandidateExample(
        "Chromium host", "candidate:2999745851 1 udp 2122260223 192.168.56.1 59099 typ host generation 0 ufrag 5eLw network-id 2",
        udp("2999745851", 2_122_260_223, .ipv4(192, 168, 56, 1, port: 59099), .host)
    ),
    CandidateExample(
        "Chromium srflx",
        "candidate:842163049 1 udp 1677729535 93.184.216.34 56143 typ srflx raddr 192.168.1.101 rport 56143 generation 0 ufrag 5eLw network-id 1 network-cost 10",
        udp("842163049", 1_677_729_535, .ipv4(93, 184, 216, 34, port: 56143), .serverReflexive, related: .ipv4(192, 168, 1, 101, port: 56143))
    ),
    CandidateExample(
        "Chromium srflx behind mDNS (raddr hidden)",
        "candidate:842163049 1 udp 1677729535 93.184.216.34 56143 typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag 5eLw network-cost 999",
        udp("842163049", 1_677_729_535, .ipv4(93, 184, 216, 34, port: 56143), .serverReflexive, related: .ipv4(0, 0, 0, 0, port: 0))
    ),
    CandidateExample(
        "Chromium relay",
        "candidate:3745327001 1 udp 41885439 198.51.100.7 61234 typ relay raddr 93.184.216.34 rport 56143 generation 0 ufrag 5eLw network-id 1 network-cost 10",
        udp("3745327001", 41_885_439, .ipv4(198, 51, 100, 7, port: 61234), .relayed, related: .ipv4(93, 184, 216, 34, port: 56143))
    ),
    CandidateExample(
        "Chromium IPv6 host",
        "candidate:3769713547 1 udp 2122262783 2001:db8:85a3::8a2e:370:7334 50000 typ host generation 0 ufrag 5eLw network-id 2 network-cost 50",
        udp("3769713547", 2_122_262_783, ipv6("2001:db8:85a3::8a2e:370:7334", port: 50000), .host)
    ),
    CandidateExample(
        "Chromium TCP active",
        "candidate:1467250027 1 tcp 1518280447 192.168.1.101 9 typ host tcptype active generation 0 ufrag 5eLw network-id 1",
        .candidate(ICECandidate(
            foundation: "1467250027", transport: .tcp(.active), priority: 1_518_280_447,
            address: .ipv4(192, 168, 1, 101, port: 9), type: .host
        ))
    ),
    CandidateExample(
        "Chromium mDNS host",
        "candidate:1510613869 1 udp 2122260223 4d5e8d35-2f47-4f3c-a1a6-8c2e5b3f9a10.local 54321 typ host generation 0 ufrag 5eLw network-id 1",
        .unresolved(ICEUnresolvedCandidate(
            foundation: "1510613869", component: 1, transport: .udp, priority: 2_122_260_223,
            hostname: "4d5e8d35-2f47-4f3c-a1a6-8c2e5b3f9a10.local", port: 54321, type: .host, relatedAddress: nil
        ))
    ),
    CandidateExample(
        "Firefox prflx with trailing CRLF", "candidate:5 1 UDP 1853824767 198.51.100.9 3478 typ prflx\r\n",
        udp("5", 1_853_824_767, .ipv4(198, 51, 100, 9, port: 3478), .peerReflexive)
    ),
]

@Suite("SDP candidate and ICE attribute codec (RFC 8839)")
struct CandidateCodecTests {
    @Test(arguments: candidateExamples)
    func parsesKnownLines(_ example: CandidateExample) throws {
        #expect(try ICECandidate.parse(example.line) == example.expected)
        // And through the attribute parser, with and without "a=".
        #expect(try ICESDPAttribute.parse(example.line) == .candidate(example.expected))
    }

    @Test(arguments: candidateExamples)
    func formatsAndParsesBack(_ example: CandidateExample) throws {
        switch example.expected {
        case .candidate(let candidate):
            #expect(try ICECandidate.parse(candidate.sdpAttribute) == .candidate(candidate))
            #expect(try ICECandidate.parse(candidate.sdpLine) == .candidate(candidate))
            #expect(candidate.sdpLine.hasPrefix("a=candidate:"))
        case .unresolved:
            let line = ICESDPAttribute.candidate(example.expected).sdpLine
            #expect(try ICESDPAttribute.parse(line) == .candidate(example.expected))
        }
    }

    @Test func formatsTheRFC8839Example() {
        let candidate = ICECandidate(
            foundation: "2", priority: 1_694_498_815, address: .ipv4(192, 0, 2, 3, port: 45664),
            type: .serverReflexive, relatedAddress: .ipv4(203, 0, 113, 141, port: 8998)
        )
        #expect(candidate.sdpLine == "a=candidate:2 1 udp 1694498815 192.0.2.3 45664 typ srflx raddr 203.0.113.141 rport 8998")
    }

    @Test(arguments: candidateExamples)
    func everyPrefixThrowsATypedErrorOrParses(_ example: CandidateExample) {
        let bytes = Array(example.line.utf8)
        for cut in 0..<bytes.count {
            let prefix = String(decoding: bytes[..<cut], as: UTF8.self)
            do {
                _ = try ICECandidate.parse(prefix)
                // Only a prefix that keeps every mandatory field may parse.
                #expect(cut >= example.mandatoryEnd, "prefix of \(cut) bytes parsed: \(prefix)")
            } catch {
                // Typed throws: `error` is an ICEError with a reason.
                #expect(!error.reason.isEmpty)
            }
        }
    }

    @Test func mutatedLinesNeverTrap() {
        var random = SplitMix64(seed: 99)
        let alphabet = Array(" :.0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/-\t\u{7F}é".utf8)
        var parsed = 0
        var failed = 0
        for example in candidateExamples {
            let original = Array(example.line.utf8)
            for _ in 0..<400 {
                var bytes = original
                for _ in 0..<(1 + Int(random.next() % 3)) {
                    let position = Int(random.next() % UInt64(bytes.count))
                    switch random.next() % 3 {
                    case 0: bytes[position] = alphabet[Int(random.next() % UInt64(alphabet.count))]
                    case 1: bytes.remove(at: position)
                    default: bytes.insert(alphabet[Int(random.next() % UInt64(alphabet.count))], at: position)
                    }
                }
                do {
                    _ = try ICECandidate.parse(String(decoding: bytes, as: UTF8.self))
                    parsed += 1
                } catch {
                    failed += 1
                }
            }
        }
        #expect(parsed > 0 && failed > 0)
    }

    @Test(arguments: [
        ("candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host", nil as ICEError?),
        ("candidate:123456789012345678901234567890123 1 udp 1 10.0.0.1 5000 typ host", .invalidField(name: "foundation", value: "123456789012345678901234567890123")),
        ("candidate:1_2 1 udp 1 10.0.0.1 5000 typ host", .invalidField(name: "foundation", value: "1_2")),
        ("candidate:1 0 udp 1 10.0.0.1 5000 typ host", .invalidField(name: "component", value: "0")),
        ("candidate:1 257 udp 1 10.0.0.1 5000 typ host", .invalidField(name: "component", value: "257")),
        ("candidate:1 1 sctp 1 10.0.0.1 5000 typ host", .unsupportedTransport("sctp")),
        ("candidate:1 1 udp 0 10.0.0.1 5000 typ host", .invalidField(name: "priority", value: "0")),
        ("candidate:1 1 udp 2147483648 10.0.0.1 5000 typ host", .invalidField(name: "priority", value: "2147483648")),
        ("candidate:1 1 udp 99999999999 10.0.0.1 5000 typ host", .invalidField(name: "priority", value: "99999999999")),
        ("candidate:1 1 udp 1 256.0.0.1 5000 typ host", .invalidField(name: "connection-address", value: "256.0.0.1")),
        ("candidate:1 1 udp 1 010.0.0.1 5000 typ host", .invalidField(name: "connection-address", value: "010.0.0.1")),
        ("candidate:1 1 udp 1 1:2:3:4:5:6:7:8:9 5000 typ host", .invalidField(name: "connection-address", value: "1:2:3:4:5:6:7:8:9")),
        ("candidate:1 1 udp 1 fe80::1%eth0 5000 typ host", .invalidField(name: "connection-address", value: "fe80::1%eth0")),
        ("candidate:1 1 udp 1 host_name.local 5000 typ host", .invalidField(name: "connection-address", value: "host_name.local")),
        ("candidate:1 1 udp 1 10.0.0.1 65536 typ host", .invalidField(name: "port", value: "65536")),
        ("candidate:1 1 udp 1 10.0.0.1 5000 type host", .invalidField(name: "typ", value: "type")),
        ("candidate:1 1 udp 1 10.0.0.1 5000 typ foo", .unsupportedCandidateType("foo")),
        ("candidate:1 1 udp 1 10.0.0.1 5000 typ", .missingField("candidate type")),
        ("candidate:1 1 udp 1 10.0.0.1 5000", .missingField("typ")),
        ("candidate:1 1 udp 1 10.0.0.1 5000 typ srflx raddr", .missingField("raddr value")),
        ("candidate:1 1 udp 1 10.0.0.1 5000 typ srflx raddr 1.2.3.4 rport x", .invalidField(name: "rport", value: "x")),
        ("candidate:1 1 tcp 1 10.0.0.1 9 typ host", .missingField("tcptype")),
        ("candidate:1 1 tcp 1 10.0.0.1 9 typ host tcptype sideways", .invalidField(name: "tcptype", value: "sideways")),
        ("candidate:1 1 udp 1 10.0.0.1 5000 typ host gen\"eration 0", .invalidField(name: "extension name", value: "gen\\x22eration")),
        ("candidate:1 1 udp 1 10.0.0.1\t5000 typ host", .invalidCharacter(offset: 28)),
        ("candidate:1 1 udp 1 10.0.0.1 5000 typ host ufrag \u{00e9}", .invalidCharacter(offset: 49)),
        ("", .missingField("foundation")),
    ])
    func rejectsMalformedLinesWithTheFieldNamed(line: String, expected: ICEError?) {
        do {
            _ = try ICECandidate.parse(line)
            #expect(expected == nil, "parsed, expected \(String(describing: expected))")
        } catch {
            #expect(error == expected)
        }
    }

    @Test func boundsLineLengthAndFieldCount() {
        let long = "candidate:1 1 udp 1 10.0.0.1 5000 typ host" + String(repeating: " x y", count: 300)
        #expect(throws: ICEError.lineTooLong(length: long.utf8.count, limit: 1024)) { try ICECandidate.parse(long) }
        let many = "candidate:1 1 udp 1 10.0.0.1 5000 typ host" + String(repeating: " a b", count: 40)
        #expect(throws: ICEError.tooManyFields(limit: 64)) { try ICECandidate.parse(many) }
    }

    @Test func recognisesMDNSAndOtherHostnames() throws {
        let mdns = try ICECandidate.parse("candidate:1 1 udp 2122260223 1f4712db-ea17-4bcf-a596-105139dfd8bf.local 54321 typ host")
        guard case .unresolved(let unresolved) = mdns else {
            Issue.record("an mDNS name must stay unresolved")
            return
        }
        #expect(unresolved.isMDNS)
        #expect(mdns.candidate == nil)
        let resolved = unresolved.resolved(to: STUNAddress.ipv4(192, 168, 1, 7, port: 0).family)
        #expect(resolved.address == .ipv4(192, 168, 1, 7, port: 54321))
        #expect(resolved.type == .host && resolved.priority == 2_122_260_223)

        let fqdn = try ICECandidate.parse("candidate:1 1 udp 5 turn.example.com 3478 typ relay raddr 0.0.0.0 rport 0")
        guard case .unresolved(let other) = fqdn else {
            Issue.record("an FQDN must stay unresolved")
            return
        }
        #expect(!other.isMDNS)
    }

    @Test(arguments: [
        ("::", "::"),
        ("::1", "::1"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:db8::0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:db8::ff00:42:8329"),
        ("fe80::1:2", "fe80::1:2"),
        ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
        ("1::", "1::"),
        ("::ffff:192.0.2.1", "::ffff:c000:201"),
    ])
    func formatsIPv6Canonically(input: String, canonical: String) throws {
        let line = "candidate:1 1 udp 1 \(input) 5000 typ host"
        let candidate = try #require(try ICECandidate.parse(line).candidate)
        #expect(candidate.sdpAttribute == "candidate:1 1 udp 1 \(canonical) 5000 typ host")
    }

    @Test func parsesCredentialsAndEndOfCandidates() throws {
        #expect(try ICESDPAttribute.parse("a=ice-ufrag:F7gI") == .ufrag("F7gI"))
        #expect(try ICESDPAttribute.parse("ice-pwd:x9cml/YzichV2+XlhiMu8g\r\n") == .password("x9cml/YzichV2+XlhiMu8g"))
        #expect(try ICESDPAttribute.parse("a=end-of-candidates") == .endOfCandidates)
        #expect(try ICESDPAttribute.parse("a=ice-options:trickle") == .options(["trickle"]))
        #expect(throws: ICEError.invalidUfrag("abc")) { try ICESDPAttribute.parse("a=ice-ufrag:abc") }
        #expect(throws: ICEError.invalidUfrag("ab_d")) { try ICESDPAttribute.parse("a=ice-ufrag:ab_d") }
        #expect(throws: ICEError.invalidUfrag(String(repeating: "a", count: 40) + "…")) {
            try ICESDPAttribute.parse("a=ice-ufrag:" + String(repeating: "a", count: 257))
        }
        #expect(throws: ICEError.invalidPassword(length: 21)) { try ICESDPAttribute.parse("a=ice-pwd:x9cml/YzichV2+XlhiMu8") }
        #expect(throws: ICEError.invalidPassword(length: 22)) { try ICESDPAttribute.parse("a=ice-pwd:x9cml/YzichV2+XlhiMu8-") }
        #expect(throws: ICEError.unsupportedAttribute("fingerprint")) { try ICESDPAttribute.parse("a=fingerprint:sha-256 AB") }
        #expect(throws: ICEError.invalidField(name: "end-of-candidates", value: "x")) { try ICESDPAttribute.parse("a=end-of-candidates:x") }
        for attribute in [ICESDPAttribute.ufrag("F7gI"), .password("x9cml/YzichV2+XlhiMu8g"), .endOfCandidates, .options(["trickle"])] {
            #expect(try ICESDPAttribute.parse(attribute.sdpLine) == attribute)
        }
        // The password never appears in an error.
        do {
            _ = try ICECredentials(ufrag: "abcd", password: "secret-but-short")
            Issue.record("short password accepted")
        } catch {
            #expect(!error.reason.contains("secret"))
        }
    }

    @Test func randomCredentialsFollowTheRules() throws {
        var random = SplitMix64(seed: 7)
        for _ in 0..<100 {
            let credentials = ICECredentials.random(using: &random)
            #expect(try ICECredentials(ufrag: credentials.ufrag, password: credentials.password) == credentials)
            #expect(credentials.ufrag.count == 8 && credentials.password.count == 24)
        }
        #expect(ICECredentials.random() != ICECredentials.random())
    }
}

@Suite("Priorities (RFC 8445 §5.1.2, §6.1.2.3)")
struct PriorityTests {
    @Test func candidatePriorityFormula() {
        // (2^24)*type + (2^8)*local + (256 - component)
        #expect(ICECandidate.priority(type: .host, localPreference: 65535) == 2_130_706_431)
        #expect(ICECandidate.priority(type: .serverReflexive, localPreference: 65535) == 1_694_498_815)
        #expect(ICECandidate.priority(type: .peerReflexive, localPreference: 65535) == 1_862_270_975)
        #expect(ICECandidate.priority(type: .relayed, localPreference: 65535) == 16_777_215)
        #expect(ICECandidate.priority(type: .host, localPreference: 0, component: 2) == 126 << 24 | 254)
        #expect(ICECandidateType.host.typePreference == 126)
        #expect(ICECandidateType.peerReflexive.typePreference == 110)
        #expect(ICECandidateType.serverReflexive.typePreference == 100)
        #expect(ICECandidateType.relayed.typePreference == 0)
    }

    @Test func pairPriorityFormula() {
        // 2^32*MIN(G,D) + 2*MAX(G,D) + (G>D?1:0)
        let g: UInt32 = 2_130_706_431
        let d: UInt32 = 1_694_498_815
        #expect(ICECandidatePair.priority(controlling: g, controlled: d) == UInt64(d) << 32 + 2 * UInt64(g) + 1)
        #expect(ICECandidatePair.priority(controlling: d, controlled: g) == UInt64(d) << 32 + 2 * UInt64(g))
        #expect(ICECandidatePair.priority(controlling: g, controlled: g) == UInt64(g) << 32 + 2 * UInt64(g))
        // Both agents compute the same value for the same pair.
        #expect(ICECandidatePair.priority(controlling: 1, controlled: UInt32.max) > ICECandidatePair.priority(controlling: 0, controlled: UInt32.max))
    }
}
