import Testing
import TernTestSupport
import TernSCTP

@Suite("CRC-32c")
struct CRC32CTests {
    struct Vector: Sendable, CustomTestStringConvertible {
        var name: String
        var input: [UInt8]
        /// The CRC as the RFC prints it: the bytes in the order they are sent.
        var wire: [UInt8]

        var testDescription: String { name }

        var value: UInt32 { wire.reversed().reduce(0) { $0 << 8 | UInt32($1) } }
    }

    /// RFC 3720 (iSCSI) Appendix B.4, the CRC-32c examples SCTP shares.
    static let rfc3720: [Vector] = [
        Vector(name: "32 bytes of zeroes", input: [UInt8](repeating: 0, count: 32), wire: bytes("aa 36 91 8a")),
        Vector(name: "32 bytes of ones", input: [UInt8](repeating: 0xFF, count: 32), wire: bytes("43 ab a8 62")),
        Vector(name: "32 bytes incrementing 00..1f", input: (0...31).map { UInt8($0) }, wire: bytes("4e 79 dd 46")),
        Vector(name: "32 bytes decrementing 1f..00", input: (0...31).reversed().map { UInt8($0) }, wire: bytes("5c db 3f 11")),
        Vector(
            name: "an iSCSI SCSI Read (10) command PDU",
            input: bytes("""
                01 c0 00 00 00 00 00 00 00 00 00 00 00 00 00 00
                14 00 00 00 00 00 04 00 00 00 00 14 00 00 00 18
                28 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00
                """),
            wire: bytes("56 3a 96 d9")),
    ]

    @Test func checkValueOf123456789() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
    }

    @Test func emptyInputIsZero() {
        #expect(CRC32C.checksum([UInt8]()) == 0)
        #expect(CRC32C().value == 0)
    }

    @Test("RFC 3720 B.4 examples", arguments: rfc3720)
    func rfc3720Examples(vector: Vector) {
        #expect(CRC32C.checksum(vector.input) == vector.value)
        // In an SCTP checksum field the same value is sent lowest byte first,
        // which is the order RFC 3720 prints.
        var packet = [UInt8](repeating: 0, count: 12)
        for index in 0..<4 { packet[8 + index] = UInt8(truncatingIfNeeded: vector.value >> (8 * UInt32(index))) }
        #expect(Array(packet[8..<12]) == vector.wire)
    }

    /// The CRC one bit at a time, straight from the definition, to check the
    /// sliced tables against.
    static func reference(_ input: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in input {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }

    @Test func matchesBitwiseReferenceForEveryLengthAndAlignment() {
        var random = TestRandom(seed: 0x1EDC_6F41)
        let data = (0..<200).map { _ in UInt8.random(in: 0...255, using: &random) }
        for start in 0..<8 {
            for length in 0...(data.count - start) where length < 80 || length % 17 == 0 {
                let slice = data[start..<(start + length)]
                #expect(CRC32C.checksum(slice) == Self.reference(slice), "start \(start) length \(length)")
            }
        }
    }

    @Test func incrementalUpdatesMatchOneShot() {
        var random = TestRandom(seed: 7)
        let data = (0..<1500).map { _ in UInt8.random(in: 0...255, using: &random) }
        let whole = CRC32C.checksum(data)
        for _ in 0..<200 {
            var crc = CRC32C()
            var offset = 0
            while offset < data.count {
                let step = min(Int.random(in: 0...40, using: &random), data.count - offset)
                crc.update(data[offset..<(offset + step)])
                offset += step
            }
            #expect(crc.value == whole)
        }
    }

    @Test func zerosUpdateIsLikeFeedingZeroBytes() {
        var withZeros = CRC32C()
        withZeros.update([1, 2, 3])
        withZeros.update(zeros: 9)
        withZeros.update([4])
        #expect(withZeros.value == CRC32C.checksum([1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4]))
    }

    @Test func packetChecksumTakesTheChecksumFieldAsZero() {
        let packet = bytes("1388 1388 12345678 deadbeef 0b000004")
        #expect(SCTPPacket.checksum(of: packet[...]) == CRC32C.checksum(bytes("1388 1388 12345678 00000000 0b000004")))
    }
}
