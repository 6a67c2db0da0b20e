import Testing
@testable import TernLAN

/// The beacon's codec: the exact bytes of each message, round trips, and
/// every way a hostile datagram can be wrong.
@Suite struct LANMessageTests {
    @Test func announcementIsMagicVersionKindNameplateAndPortOnly() throws {
        let bytes = try LANMessage.announce(nameplate: "347", port: 0xa1b2).encoded()
        #expect(bytes == Array("tern".utf8) + [1, 1, 3] + Array("347".utf8) + [0xa1, 0xb2])
    }

    @Test func queriesCarryTheNameplateAndWhereTheAnswerGoes() throws {
        #expect(try LANMessage.query(nameplate: "7", unicastReply: false).encoded() == Array("tern".utf8) + [1, 2, 1, 0x37])
        #expect(try LANMessage.query(nameplate: "7", unicastReply: true).encoded() == Array("tern".utf8) + [1, 3, 1, 0x37])
    }

    @Test(arguments: [
        LANMessage.announce(nameplate: "1", port: 1),
        .announce(nameplate: "999999", port: 65535),
        .query(nameplate: "42", unicastReply: false),
        .query(nameplate: "100", unicastReply: true),
    ])
    func roundTrips(_ message: LANMessage) throws {
        #expect(try LANMessage(parsing: message.encoded()) == message)
    }

    @Test func everyCutOfAnAnnouncementIsRefused() throws {
        let bytes = try LANMessage.announce(nameplate: "347", port: 4747).encoded()
        for length in 0..<bytes.count {
            #expect(throws: LANError.self) { try LANMessage(parsing: bytes.prefix(length)) }
        }
    }

    @Test func trailingBytesAreRefused() throws {
        let bytes = try LANMessage.query(nameplate: "5", unicastReply: false).encoded() + [0]
        #expect(throws: LANError.trailingBytes(1)) { try LANMessage(parsing: bytes) }
    }

    @Test func anOversizedDatagramIsRefusedBeforeItIsRead() {
        let bytes = [UInt8](repeating: 0x74, count: LANLimits.maximumDatagramBytes + 1)
        #expect(throws: LANError.tooLong(size: LANLimits.maximumDatagramBytes + 1, limit: LANLimits.maximumDatagramBytes)) {
            try LANMessage(parsing: bytes)
        }
    }

    @Test func otherProgramsVersionsAndKindsAreRefused() {
        let tern = Array("tern".utf8)
        #expect(throws: LANError.notTern) { try LANMessage(parsing: Array("mDNS".utf8) + [1, 2, 1, 0x37]) }
        #expect(throws: LANError.unknownVersion(2)) { try LANMessage(parsing: tern + [2, 2, 1, 0x37]) }
        #expect(throws: LANError.unknownKind(9)) { try LANMessage(parsing: tern + [1, 9, 1, 0x37]) }
    }

    @Test(arguments: [
        [UInt8](),                      // empty
        Array("0".utf8),                // leading zero
        Array("12a".utf8),              // not a digit
        Array("1234567".utf8),          // seven digits
        [0x31, 0x00],                   // a NUL
    ])
    func badNameplatesAreRefused(_ digits: [UInt8]) {
        let datagram = Array("tern".utf8) + [1, 2, UInt8(digits.count)] + digits
        #expect(throws: LANError.self) { try LANMessage(parsing: datagram) }
    }

    @Test func portZeroIsNeitherSentNorAccepted() {
        #expect(throws: LANError.badPort) { try LANMessage.announce(nameplate: "3", port: 0).encoded() }
        #expect(throws: LANError.badPort) { try LANMessage(parsing: Array("tern".utf8) + [1, 1, 1, 0x33, 0, 0]) }
    }

    @Test func aLengthPastTheDatagramIsTruncatedNotARead() {
        #expect(throws: LANError.truncated) { try LANMessage(parsing: Array("tern".utf8) + [1, 2, 5, 0x31]) }
    }

    @Test func reasonsAreOneLineWithoutControlCharacters() {
        let errors: [LANError] = [.truncated, .tooLong(size: 99, limit: 15), .notTern, .unknownVersion(3), .unknownKind(7),
                                  .badNameplate, .badPort, .trailingBytes(2), .socket("no interface")]
        for error in errors {
            #expect(!error.reason.isEmpty)
            #expect(!error.reason.unicodeScalars.contains { $0.value < 0x20 })
        }
    }
}
