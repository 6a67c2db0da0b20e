import TernTestSupport
import Testing
import TernSTUN

@Suite("Hostile input")
struct HostileInputTests {
    static let transactionID = STUNTransactionID(bytes: bytes("0102030405060708090a0b0c")) ?? STUNTransactionID(high: 0, low: 0)

    /// A Binding request header with `body` as its attributes and a length
    /// field of `length` (default: the body's real length).
    static func request(_ body: String, length: Int? = nil) -> [UInt8] {
        let attributes = bytes(body)
        let declared = UInt16(length ?? attributes.count)
        return [0x00, 0x01, UInt8(declared >> 8), UInt8(declared & 0xFF), 0x21, 0x12, 0xA4, 0x42]
            + transactionID.bytes + attributes
    }

    @Test("every vector cut at every length is rejected, never trapping", arguments: RFC5769.all)
    func everyTruncationThrows(vector: Vector) {
        for length in 0..<vector.bytes.count {
            let prefix = vector.bytes[0..<length]
            #expect(throws: STUNError.self, "length \(length)") { try STUNMessage.decode(prefix) }
            #expect(throws: STUNError.self) { try STUNHeader.decode(prefix) }
            #expect(throws: STUNError.self) { try STUNMessage.checkIntegrity(of: prefix, key: vector.key) }
            #expect(throws: STUNError.self) { try STUNMessage.checkFingerprint(of: prefix) }
            // Suffixes too: a slice that does not start at index 0.
            let suffix = vector.bytes[(vector.bytes.count - length)...]
            #expect(throws: STUNError.self) { try STUNMessage.decode(suffix) }
            _ = try? ChannelData.decode(datagram: prefix)
            _ = try? ChannelData.decode(stream: prefix)
            #expect(STUNBindingResponder.respond(to: Array(prefix), from: .ipv4(192, 0, 2, 1, port: 1)) == nil)
        }
    }

    @Test("any single bit flip breaks the fingerprint", arguments: RFC5769.all.filter(\.hasFingerprint))
    func singleBitFlipsBreakFingerprint(vector: Vector) {
        for bit in 0..<(vector.bytes.count * 8) {
            var flipped = vector.bytes
            flipped[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(throws: STUNError.self, "bit \(bit)") { try STUNMessage.checkFingerprint(of: flipped) }
        }
    }

    @Test("any single bit flip up to the end of MESSAGE-INTEGRITY breaks it", arguments: RFC5769.all)
    func singleBitFlipsBreakIntegrity(vector: Vector) {
        let integrityEnd = vector.bytes.count - (vector.hasFingerprint ? 8 : 0)
        for bit in 0..<(integrityEnd * 8) {
            var flipped = vector.bytes
            flipped[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(throws: STUNError.self, "bit \(bit)") { try STUNMessage.checkIntegrity(of: flipped, key: vector.key) }
        }
    }

    @Test("random bit flips never trap, and whatever decodes round-trips", arguments: RFC5769.all)
    func randomBitFlipsRoundTrip(vector: Vector) throws {
        var random = SplitMix64(seed: 0x5354_554E)
        var decoded = 0
        for _ in 0..<3000 {
            var flipped = vector.bytes
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                let bit = Int.random(in: 0..<(flipped.count * 8), using: &random)
                flipped[bit / 8] ^= 1 << UInt8(bit % 8)
            }
            _ = try? STUNMessage.checkIntegrity(of: flipped, key: vector.key)
            _ = try? STUNMessage.checkFingerprint(of: flipped)
            _ = STUNBindingResponder.respond(to: flipped, from: .ipv4(10, 0, 0, 1, port: 9))
            guard let message = try? STUNMessage.decode(flipped) else { continue }
            decoded += 1
            let again = try STUNMessage.decode(message.encode())
            #expect(again == message)
        }
        // Most flips land in values, which still decode: the round trip above did run.
        #expect(decoded > 100)
    }

    @Test("random garbage never traps")
    func randomGarbage() {
        var random = SplitMix64(seed: 42)
        for _ in 0..<5000 {
            let length = Int.random(in: 0...120, using: &random)
            var garbage = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            // Make about half of them look like STUN so that attribute parsing runs.
            if length >= 20, Bool.random(using: &random) {
                garbage[0] &= 0x01
                garbage[2] = 0
                garbage[3] = UInt8(length - 20) & 0xFC
                garbage[4...7] = [0x21, 0x12, 0xA4, 0x42]
                garbage.removeLast((length - 20) % 4)
            }
            _ = try? STUNMessage.decode(garbage)
            _ = try? ChannelData.decode(datagram: garbage)
            _ = STUNBindingResponder.respond(to: garbage, from: .ipv4(10, 0, 0, 1, port: 9))
        }
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var testDescription: String
        var datagram: [UInt8]
        var error: STUNError
    }

    static let malformed: [Case] = [
        Case(testDescription: "empty", datagram: [], error: .truncated(needed: 20, available: 0)),
        Case(testDescription: "19 bytes", datagram: Array(request("").prefix(19)), error: .truncated(needed: 20, available: 19)),
        Case(testDescription: "leading bits set", datagram: [0x80] + request("").dropFirst(), error: .notSTUN(firstByte: 0x80)),
        Case(testDescription: "length not a multiple of 4", datagram: request("00000000", length: 6), error: .lengthNotMultipleOfFour(6)),
        Case(testDescription: "length longer than datagram", datagram: request("", length: 8), error: .lengthMismatch(declared: 8, available: 0)),
        Case(testDescription: "trailing bytes", datagram: request("80220000", length: 0), error: .trailingBytes(4)),
        Case(
            testDescription: "RFC 3489 message without magic cookie",
            datagram: [0x00, 0x01, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04] + transactionID.bytes,
            error: .badMagicCookie(0x0102_0304)
        ),
        Case(testDescription: "attribute overruns message", datagram: request("80220008 74657374"), error: .attributeOverrun(type: 0x8022, offset: 20)),
        Case(testDescription: "second attribute overruns message", datagram: request("80220001 74000000 00060010 61626364"), error: .attributeOverrun(type: 0x0006, offset: 28)),
        Case(testDescription: "address family 3", datagram: request("00200008 0003a147e112a643"), error: .badAddressFamily(type: 0x0020, family: 3)),
        Case(testDescription: "IPv4 with IPv6 length", datagram: request("00200014 0001a147 e112a643e112a643e112a643e112a643"), error: .badAddressLength(type: 0x0020, length: 20)),
        Case(testDescription: "IPv6 with IPv4 length", datagram: request("00010008 0002a147e112a643"), error: .badAddressLength(type: 0x0001, length: 8)),
        Case(testDescription: "address too short for a family", datagram: request("00010002 00010000"), error: .badAddressLength(type: 0x0001, length: 2)),
        Case(testDescription: "PRIORITY of 2 bytes", datagram: request("00240002 00010000"), error: .malformedAttribute(type: 0x0024, reason: "length 2, expected 4")),
        Case(testDescription: "USE-CANDIDATE with a value", datagram: request("00250004 00000000"), error: .malformedAttribute(type: 0x0025, reason: "length 4, expected 0")),
        Case(testDescription: "MESSAGE-INTEGRITY of 16 bytes", datagram: request("00080010" + String(repeating: "00", count: 16)), error: .malformedAttribute(type: 0x0008, reason: "length 16, expected 20")),
        Case(testDescription: "MESSAGE-INTEGRITY-SHA256 of 12 bytes", datagram: request("001c000c" + String(repeating: "00", count: 12)), error: .malformedAttribute(type: 0x001C, reason: "length 12, expected 16-32 in steps of 4")),
        Case(testDescription: "ERROR-CODE class 7", datagram: request("00090004 00000700"), error: .malformedAttribute(type: 0x0009, reason: "class 7 number 0 is not a code 300-699")),
        Case(testDescription: "ERROR-CODE number 100", datagram: request("00090004 00000464"), error: .malformedAttribute(type: 0x0009, reason: "class 4 number 100 is not a code 300-699")),
        Case(testDescription: "UNKNOWN-ATTRIBUTES of odd length", datagram: request("000a0003 80000000"), error: .malformedAttribute(type: 0x000A, reason: "odd length 3")),
        Case(testDescription: "attribute after FINGERPRINT", datagram: request("80280004 00000000 80220000"), error: .fingerprintNotLast),
        Case(testDescription: "attribute after FINGERPRINT after MESSAGE-INTEGRITY", datagram: request("00080014" + String(repeating: "00", count: 20) + "80280004 00000000 00240004 00000001"), error: .fingerprintNotLast),
    ]

    @Test("malformed messages are rejected with the right error", arguments: malformed)
    func rejectsMalformed(testCase: Case) {
        #expect(throws: testCase.error) { try STUNMessage.decode(testCase.datagram) }
        #expect(!testCase.error.reason.isEmpty)
    }

    @Test func ignoresAttributesAfterMessageIntegrityExceptFingerprint() throws {
        // MESSAGE-INTEGRITY, then SOFTWARE and a malformed PRIORITY (both
        // ignored, RFC 8489 §14.5), then FINGERPRINT.
        let datagram = Self.request(
            "00080014" + String(repeating: "11", count: 20) + "80220004 74657374 00240002 00010000 80280004 01020304"
        )
        let message = try STUNMessage.decode(datagram)
        #expect(message.attributes == [.messageIntegrity([UInt8](repeating: 0x11, count: 20)), .fingerprint(0x0102_0304)])
    }

    @Test func ignoresMessageIntegrityAfterMessageIntegritySHA256() throws {
        let datagram = Self.request(
            "001c0020" + String(repeating: "22", count: 32) + "00080014" + String(repeating: "11", count: 20)
        )
        let message = try STUNMessage.decode(datagram)
        #expect(message.attributes == [.messageIntegritySHA256([UInt8](repeating: 0x22, count: 32))])
        #expect(throws: STUNError.integrityMissing) {
            try STUNMessage.checkIntegrity(of: datagram, key: .shortTerm(password: "x"))
        }
    }

    @Test func reportsUnknownComprehensionRequiredAttributes() throws {
        let message = try STUNMessage.decode(Self.request("7fff0001 61000000 c0010000 00310000"))
        #expect(message.attributes == [
            .unknown(type: STUNAttributeType(0x7FFF), value: [0x61]),
            .unknown(type: STUNAttributeType(0xC001), value: []),
            .unknown(type: STUNAttributeType(0x0031), value: []),
        ])
        #expect(message.unknownComprehensionRequired == [STUNAttributeType(0x7FFF), STUNAttributeType(0x0031)])
    }

    @Test func decodesInvalidUTF8TextAsReplacementAndRoundTrips() throws {
        let message = try STUNMessage.decode(Self.request("80220002 ff610000"))
        #expect(message.software == "\u{FFFD}a")
        #expect(try STUNMessage.decode(message.encode()) == message)
    }
}
