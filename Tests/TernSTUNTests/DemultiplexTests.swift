import Testing
import TernSTUN

@Suite("CRC-32 and RFC 7983 demultiplexing")
struct DemultiplexTests {
    @Test func crc32CheckValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([]) == 0)
    }

    @Test("first byte classifies the packet", arguments: [
        (UInt8(0), PacketKind.stun), (3, .stun), (4, .unknown), (15, .unknown),
        (16, .zrtp), (19, .zrtp), (20, .dtls), (63, .dtls), (64, .turnChannelData), (79, .turnChannelData),
        (80, .unknown), (127, .unknown), (128, .rtpOrRTCP), (191, .rtpOrRTCP), (192, .unknown), (255, .unknown),
    ])
    func classifies(firstByte: UInt8, kind: PacketKind) {
        #expect(PacketKind.classify(firstByte) == kind)
        #expect(STUN.isSTUN(firstByte: firstByte) == (kind == .stun))
    }

    /// RFC 8489 §5: Binding in any class (request 0x0001, indication 0x0011,
    /// success 0x0101, error 0x0111) and no other method; fewer than two
    /// bytes are no Binding.
    @Test("a Binding is told from TURN's methods by the first two bytes", arguments: [
        ([0x00, 0x01], true), ([0x00, 0x11], true), ([0x01, 0x01], true), ([0x01, 0x11, 0xFF], true),
        ([0x00, 0x03], false), ([0x01, 0x03], false), ([0x00, 0x08], false), ([0x00, 0x17], false),
        ([0x00, 0x09], false), ([0x00], false), ([], false),
    ] as [([UInt8], Bool)])
    func bindingByMessageType(bytes: [UInt8], isBinding: Bool) {
        #expect(STUN.isBinding(bytes) == isBinding)
    }
}
