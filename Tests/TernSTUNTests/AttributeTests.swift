import TernTestSupport
import Testing
import TernSTUN

@Suite("Attributes and encoding")
struct AttributeTests {
    static let ipv4 = STUNAddress.ipv4(203, 0, 113, 7, port: 54321)
    static let ipv6 = STUNAddress(ipBytes: bytes("20010db8000000000000000000000001"), port: 3478) ?? ipv4

    @Test("XOR address attributes round-trip", arguments: [ipv4, ipv6, .ipv4(0, 0, 0, 0, port: 0), .ipv4(255, 255, 255, 255, port: 65535)])
    func xorAddressRoundTrip(address: STUNAddress) throws {
        var random = SplitMix64(seed: UInt64(address.port))
        for _ in 0..<16 {
            let id = STUNTransactionID.random(using: &random)
            let message = STUNMessage(
                .successResponse, .allocate, transactionID: id,
                attributes: [.xorMappedAddress(address), .xorRelayedAddress(address), .xorPeerAddress(address), .mappedAddress(address)]
            )
            let encoded = try message.encode()
            #expect(try STUNMessage.decode(encoded) == message)
            // On the wire, the XORed forms differ from the plain MAPPED-ADDRESS
            // unless the XOR pad is zero, which it never is for the port.
            let xorPort = UInt16(encoded[26]) << 8 | UInt16(encoded[27])
            #expect(xorPort == address.port ^ 0x2112)
        }
    }

    @Test func xorIPv4MatchesRFC5769() throws {
        // RFC 5769 §2.2: 192.0.2.1:32853 is a147 e112a643 on the wire.
        let message = STUNMessage(.successResponse, .binding, transactionID: STUNTransactionID(high: 0, low: 0),
                                  attributes: [.xorMappedAddress(.ipv4(192, 0, 2, 1, port: 32853))])
        #expect(try message.encode().suffix(8) == bytes("0001a147e112a643")[...])
    }

    static let everyAttribute: [STUNAttribute] = [
        .mappedAddress(ipv4), .xorMappedAddress(ipv6), .xorPeerAddress(ipv4), .xorRelayedAddress(ipv6), .alternateServer(ipv6),
        .username("alice:bob"), .userhash([UInt8](repeating: 7, count: 32)),
        .messageIntegrity([UInt8](repeating: 1, count: 20)), .messageIntegritySHA256([UInt8](repeating: 2, count: 32)),
        .fingerprint(0xDEAD_BEEF), .errorCode(.roleConflict), .errorCode(STUNErrorCode(code: 699, reason: "")),
        .realm("example.org"), .nonce("n0nc3"), .passwordAlgorithms([0, 2, 0, 0, 0, 1, 0, 0]), .passwordAlgorithm([0, 2, 0, 0]),
        .unknownAttributes([STUNAttributeType(0x7FFF), .mappedAddress, STUNAttributeType(0x0031)]), .software("tern 0.1"),
        .priority(0x6E00_01FF), .useCandidate, .iceControlled(.max), .iceControlling(1),
        .channelNumber(0x4001), .lifetime(600), .data([1, 2, 3, 4, 5]), .data([]), .requestedAddressFamily(0x02),
        .evenPort(reserveNext: true), .evenPort(reserveNext: false), .requestedTransport(17), .dontFragment,
        .reservationToken(0x0102_0304_0506_0708), .connectionID(0xCAFE_F00D), .unknown(type: STUNAttributeType(0xC0DE), value: [9, 8, 7]),
    ]

    @Test("every attribute round-trips alone", arguments: everyAttribute)
    func attributeRoundTrip(attribute: STUNAttribute) throws {
        let message = STUNMessage(.request, .binding, transactionID: .random(), attributes: [attribute])
        let encoded = try message.encode()
        #expect(encoded.count % 4 == 0)
        #expect(try STUNMessage.decode(encoded) == message)
    }

    @Test func allAttributesRoundTripTogetherBeforeIntegrity() throws {
        // MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT would end the message; leave them out.
        let body = Self.everyAttribute.filter { ![.messageIntegrity, .messageIntegritySHA256, .fingerprint].contains($0.type) }
        let message = STUNMessage(.indication, .send, transactionID: .random(), attributes: body)
        let key = STUNKey.shortTerm(password: "secret")
        let encoded = try message.encode(integrity: key, fingerprint: true)
        let decoded = try STUNMessage.decode(encoded)
        #expect(Array(decoded.attributes.dropLast(2)) == body)
        #expect(decoded.attributes.suffix(2).map(\.type) == [.messageIntegrity, .fingerprint])
        try STUNMessage.checkIntegrity(of: encoded, key: key)
        try STUNMessage.checkFingerprint(of: encoded)
    }

    @Test func integrityWithoutFingerprintAndFingerprintWithoutIntegrity() throws {
        let message = STUNMessage(.request, .binding, transactionID: .random(), attributes: [.username("a:b")])
        let key = STUNKey.shortTerm(password: "pw")
        let integrityOnly = try message.encode(integrity: key)
        try STUNMessage.checkIntegrity(of: integrityOnly, key: key)
        #expect(throws: STUNError.fingerprintMissing) { try STUNMessage.checkFingerprint(of: integrityOnly) }
        let fingerprintOnly = try message.encode(fingerprint: true)
        try STUNMessage.checkFingerprint(of: fingerprintOnly)
        #expect(throws: STUNError.integrityMissing) { try STUNMessage.checkIntegrity(of: fingerprintOnly, key: key) }
    }

    @Test func emptyKeyStillComputesAnHMAC() throws {
        let message = STUNMessage(.request, .binding, transactionID: .random())
        let encoded = try message.encode(integrity: STUNKey(bytes: []))
        try STUNMessage.checkIntegrity(of: encoded, key: STUNKey(bytes: []))
        #expect(throws: STUNError.integrityMismatch) { try STUNMessage.checkIntegrity(of: encoded, key: .shortTerm(password: "x")) }
    }

    struct TypeCase: Sendable {
        var messageClass: STUNClass
        var method: STUNMethod
        var type: UInt16
    }

    /// RFC 8489 §5 and §6: class bits interleave with method bits.
    @Test("message type field", arguments: [
        TypeCase(messageClass: .request, method: .binding, type: 0x0001),
        TypeCase(messageClass: .indication, method: .binding, type: 0x0011),
        TypeCase(messageClass: .successResponse, method: .binding, type: 0x0101),
        TypeCase(messageClass: .errorResponse, method: .binding, type: 0x0111),
        TypeCase(messageClass: .request, method: .allocate, type: 0x0003),
        TypeCase(messageClass: .errorResponse, method: .allocate, type: 0x0113),
        TypeCase(messageClass: .indication, method: .send, type: 0x0016),
        TypeCase(messageClass: .indication, method: .data, type: 0x0017),
        TypeCase(messageClass: .successResponse, method: .channelBind, type: 0x0109),
        TypeCase(messageClass: .successResponse, method: STUNMethod(rawValue: 0xFFF) ?? .binding, type: 0x3FEF),
    ])
    func messageType(testCase: TypeCase) throws {
        let message = STUNMessage(testCase.messageClass, testCase.method, transactionID: .random())
        let encoded = try message.encode()
        #expect(UInt16(encoded[0]) << 8 | UInt16(encoded[1]) == testCase.type)
        let header = try STUNHeader.decode(encoded)
        #expect(header.messageClass == testCase.messageClass)
        #expect(header.method == testCase.method)
    }

    @Test func methodRejectsMoreThanTwelveBits() {
        #expect(STUNMethod(rawValue: 0x1000) == nil)
        #expect(STUNMethod(rawValue: 0x0001) == .binding)
    }

    @Test func encodeRejectsOversizedValues() {
        let huge = STUNMessage(.indication, .send, transactionID: .random(), attributes: [.data([UInt8](repeating: 0, count: 70_000))])
        #expect(throws: STUNError.valueTooLong(type: 0x0013, length: 70_000)) { try huge.encode() }
        let many = STUNMessage(.indication, .send, transactionID: .random(),
                               attributes: [STUNAttribute](repeating: .data([UInt8](repeating: 0, count: 40_000)), count: 2))
        #expect(throws: STUNError.self) { try many.encode() }
        let badCode = STUNMessage(.errorResponse, .binding, transactionID: .random(), attributes: [.errorCode(STUNErrorCode(code: 200, reason: "OK"))])
        #expect(throws: STUNError.self) { try badCode.encode() }
    }

    @Test func largestMessageEncodesAndDecodes() throws {
        // 0xFFFC - 4 bytes of value: the largest body a 16-bit, 4-aligned length allows.
        let message = STUNMessage(.indication, .data, transactionID: .random(), attributes: [.data([UInt8](repeating: 0x5A, count: 0xFFF8))])
        let encoded = try message.encode()
        #expect(encoded.count == 20 + 0xFFFC)
        #expect(try STUNMessage.decode(encoded) == message)
    }

    @Test func transactionIDBytesRoundTrip() {
        let id = STUNTransactionID(high: 0x0102_0304, low: 0x0506_0708_090A_0B0C)
        #expect(id.bytes == bytes("0102030405060708090a0b0c"))
        #expect(STUNTransactionID(bytes: id.bytes) == id)
        #expect(STUNTransactionID(bytes: [1, 2, 3]) == nil)
        #expect(id.description == "0102030405060708090a0b0c")
    }

    @Test func addressBytesRoundTrip() {
        #expect(Self.ipv4.ipBytes == [203, 0, 113, 7])
        #expect(STUNAddress(ipBytes: Self.ipv6.ipBytes, port: 3478) == Self.ipv6)
        #expect(STUNAddress(ipBytes: [1, 2, 3], port: 1) == nil)
    }

    @Test func looksLikeSTUN() throws {
        #expect(STUN.looksLikeSTUN(RFC5769.request))
        #expect(!STUN.looksLikeSTUN(Array(RFC5769.request.prefix(19))))
        #expect(!STUN.looksLikeSTUN([0x40, 0x00] + RFC5769.request.dropFirst(2)))
    }
}
