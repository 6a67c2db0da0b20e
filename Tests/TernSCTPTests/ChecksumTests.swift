import Testing
import TernTestSupport
import TernSCTP

@Suite("Checksums and zero checksum (RFC 9653)")
struct ChecksumTests {
    /// dcSCTP's accepts_zero_set_zero_checksum capture: a SACK sent with a
    /// zero checksum by a peer that negotiated RFC 9653.
    static let zeroChecksumSack = bytes("13881388 0eddca08 00000000 03000010 55083640 00020000 00000000")

    @Test func zeroChecksumIsRejectedUnlessAccepted() throws {
        let computed = SCTPPacket.checksum(of: Self.zeroChecksumSack[...])
        #expect(throws: SCTPError.checksumMismatch(received: 0, computed: computed)) { try SCTPPacket.decode(Self.zeroChecksumSack) }
        let packet = try SCTPPacket.decode(Self.zeroChecksumSack, acceptZeroChecksum: true)
        #expect(packet.chunks == [.sack(SCTPSackChunk(cumulativeTSNAck: 1_426_601_536, advertisedWindow: 131_072))])
    }

    @Test func aWrongNonZeroChecksumIsRejectedEvenWhenZeroIsAccepted() {
        // dcSCTP's rejects_non_zero_incorrect_checksum_when_zero_checksum_is_active.
        var wrong = Self.zeroChecksumSack
        wrong[8] = 1
        #expect(throws: SCTPError.self) { try SCTPPacket.decode(wrong, acceptZeroChecksum: true) }
    }

    @Test func correctChecksumsPassWhenZeroIsAccepted() throws {
        for capture in Captures.all {
            #expect(try SCTPPacket.decode(capture.bytes, acceptZeroChecksum: true) == SCTPPacket.decode(capture.bytes), "\(capture.name)")
        }
    }

    @Test func initAndCookieEchoNeedARealChecksum() throws {
        // RFC 9653 §5.2: packets with INIT or COOKIE ECHO keep their CRC-32c.
        #expect(throws: SCTPError.zeroChecksumNotAllowed(chunk: .initiation)) {
            try SCTPPacket.decode(withZeroChecksum(Captures.aiortcInit.bytes), acceptZeroChecksum: true)
        }
        #expect(throws: SCTPError.zeroChecksumNotAllowed(chunk: .cookieEcho)) {
            try SCTPPacket.decode(withZeroChecksum(Captures.cookieEchoWithDCEPOpen.bytes), acceptZeroChecksum: true)
        }
        // INIT ACK may go out with a zero checksum (dcSCTP does so once the
        // INIT announced support).
        #expect(try SCTPPacket.decode(withZeroChecksum(Captures.chromeInitAck.bytes), acceptZeroChecksum: true).chunks.count == 1)
    }

    @Test func encoderWritesZeroOnlyWhereAllowed() throws {
        let sack = SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: 9,
                              chunks: [.sack(SCTPSackChunk(cumulativeTSNAck: 1, advertisedWindow: 2))])
        let zero = try sack.encode(zeroChecksum: true)
        #expect(zero[8..<12] == [0, 0, 0, 0])
        #expect(try SCTPPacket.decode(zero, acceptZeroChecksum: true) == sack)
        #expect(try sack.encode() == withChecksum(zero))

        let cookie = try SCTPPacket.decode(Captures.cookieEchoWithDCEPOpen.bytes)
        #expect(try cookie.encode(zeroChecksum: true) == Captures.cookieEchoWithDCEPOpen.bytes)
        let offer = try SCTPPacket.decode(Captures.chromeInit.bytes)
        #expect(try offer.encode(zeroChecksum: true) == Captures.chromeInit.bytes)
    }

    @Test("every flipped checksum bit is rejected", arguments: Captures.all)
    func flippedChecksumBitsAreRejected(capture: Capture) {
        for bit in 0..<32 {
            var flipped = capture.bytes
            flipped[8 + bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(throws: SCTPError.self, "bit \(bit)") { try SCTPPacket.decode(flipped) }
            #expect(throws: SCTPError.self, "bit \(bit)") { try SCTPPacket.decode(flipped, acceptZeroChecksum: true) }
        }
    }

    @Test("every single-bit error anywhere is caught", arguments: Captures.all)
    func singleBitErrorsAreCaught(capture: Capture) {
        // CRC-32c detects every one-bit error.
        for bit in 0..<(capture.bytes.count * 8) {
            var flipped = capture.bytes
            flipped[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(throws: SCTPError.self, "bit \(bit)") { try SCTPPacket.decode(flipped) }
        }
    }
}
