import Testing
import TernTestSupport
import TernSTUN

@Suite("RFC 5769 test vectors")
struct RFC5769Tests {
    @Test("MESSAGE-INTEGRITY verifies with the vector's key", arguments: RFC5769.all)
    func integrityVerifies(vector: Vector) throws {
        try STUNMessage.checkIntegrity(of: vector.bytes, key: vector.key)
    }

    @Test("MESSAGE-INTEGRITY fails with a wrong key", arguments: RFC5769.all)
    func integrityFailsWithWrongKey(vector: Vector) {
        #expect(throws: STUNError.integrityMismatch) {
            try STUNMessage.checkIntegrity(of: vector.bytes, key: .shortTerm(password: "wrong"))
        }
    }

    @Test("FINGERPRINT verifies", arguments: RFC5769.all.filter(\.hasFingerprint))
    func fingerprintVerifies(vector: Vector) throws {
        try STUNMessage.checkFingerprint(of: vector.bytes)
    }

    @Test func longTermVectorHasNoFingerprint() {
        #expect(throws: STUNError.fingerprintMissing) {
            try STUNMessage.checkFingerprint(of: RFC5769.longTermRequest)
        }
    }

    @Test("re-encoding the decoded message gives the same bytes", arguments: RFC5769.all)
    func reencodesVerbatim(vector: Vector) throws {
        let message = try STUNMessage.decode(vector.bytes)
        #expect(try message.encode(padding: vector.padding) == vector.bytes)
    }

    @Test("encoding with a fresh MESSAGE-INTEGRITY and FINGERPRINT gives the same bytes", arguments: RFC5769.all)
    func reencodesWithComputedIntegrityAndFingerprint(vector: Vector) throws {
        var message = try STUNMessage.decode(vector.bytes)
        message.attributes.removeAll { $0.type == .messageIntegrity || $0.type == .fingerprint }
        let encoded = try message.encode(integrity: vector.key, fingerprint: vector.hasFingerprint, padding: vector.padding)
        #expect(encoded == vector.bytes)
    }

    @Test func sampleRequestDecodes() throws {
        let message = try STUNMessage.decode(RFC5769.request)
        #expect(message.messageClass == .request)
        #expect(message.method == .binding)
        #expect(message.transactionID == STUNTransactionID(bytes: bytes("b7e7a701bc34d686fa87dfae")))
        #expect(message.software == "STUN test client")
        #expect(message.priority == 0x6E00_01FF)
        #expect(message.iceControlled == 0x932F_F9B1_5126_3B36)
        #expect(message.username == "evtj:h6vY")
        #expect(message.fingerprint == 0xE57A_3BCF)
        #expect(message.attributes.map(\.type) == [.software, .priority, .iceControlled, .username, .messageIntegrity, .fingerprint])
        #expect(message.unknownComprehensionRequired.isEmpty)
    }

    @Test func ipv4ResponseCarriesMappedAddress() throws {
        let message = try STUNMessage.decode(RFC5769.ipv4Response)
        #expect(message.messageClass == .successResponse)
        #expect(message.software == "test vector")
        #expect(message.xorMappedAddress == .ipv4(192, 0, 2, 1, port: 32853))
        #expect(message.xorMappedAddress?.description == "192.0.2.1:32853")
    }

    @Test func ipv6ResponseCarriesMappedAddress() throws {
        let message = try STUNMessage.decode(RFC5769.ipv6Response)
        let expected = STUNAddress(ipBytes: bytes("20010db8123456780011223344556677"), port: 32853)
        #expect(message.xorMappedAddress == expected)
        #expect(message.xorMappedAddress?.description == "[2001:db8:1234:5678:11:2233:4455:6677]:32853")
    }

    @Test func longTermRequestCarriesCredentials() throws {
        let message = try STUNMessage.decode(RFC5769.longTermRequest)
        #expect(message.username == RFC5769.longTermUsername)
        #expect(message.nonce == "f//499k954d6OL34oL9FSTvy64sA")
        #expect(message.realm == "example.org")
        #expect(message.fingerprint == nil)
    }

    @Test func longTermKeyIsMD5OfCredentials() throws {
        // The key differs when any part differs, and is 16 bytes.
        let key = try STUNKey.longTerm(username: RFC5769.longTermUsername, realm: "example.org", password: "TheMatrIX")
        #expect(key.byteCount == 16)
        let unprepared = try STUNKey.longTerm(username: RFC5769.longTermUsername, realm: "example.org", password: "The\u{00AD}M\u{00AA}tr\u{2168}")
        #expect(throws: STUNError.integrityMismatch) {
            try STUNMessage.checkIntegrity(of: RFC5769.longTermRequest, key: unprepared)
        }
        try STUNMessage.checkIntegrity(of: RFC5769.longTermRequest, key: key)
    }

    @Test("a vector decodes from a slice in the middle of a larger buffer", arguments: RFC5769.all)
    func decodesFromOffsetSlice(vector: Vector) throws {
        let buffer = [UInt8](repeating: 0xAA, count: 7) + vector.bytes + [0xBB, 0xCC]
        let slice = buffer[7..<(7 + vector.bytes.count)]
        #expect(try STUNMessage.decode(slice) == STUNMessage.decode(vector.bytes))
        try STUNMessage.checkIntegrity(of: slice, key: vector.key)
        if vector.hasFingerprint { try STUNMessage.checkFingerprint(of: slice) }
    }
}
