import Testing
import TernTestSupport
import TernSCTP

/// A packet captured from a real SCTP stack, as another project keeps it in
/// its tests (cited per vector). Used as test data only.
struct Capture: Sendable, CustomTestStringConvertible {
    var name: String
    /// Where the bytes come from.
    var source: String
    var bytes: [UInt8]

    var testDescription: String { name }
}

/// Captured packets. aiortc (BSD-3-Clause) keeps them as tests/sctp_*.bin
/// and parses them with the checksum checked; pion/sctp (MIT) keeps browser
/// packets in chunk_test.go and packet_test.go; dcSCTP (Apache-2.0, the
/// webrtc/dcsctp Rust port of Chrome's stack) keeps Wireshark-annotated
/// captures in src/packet/*.rs.
enum Captures {
    // MARK: aiortc tests/*.bin (packets, checksums valid)

    static let aiortcInit = Capture(name: "INIT (aiortc sctp_init.bin)", source: "aiortc tests/sctp_init.bin", bytes: bytes("""
        13881388 00000000 ae5f854d 01000056
        24521703 00020000 01000800 3092614b
        c0000004 80080009 c00fc180 82000000
        80020024 89992738 156ca469 abf5a11a
        c89dc274 af07e51a b3fa3804 5017da1e
        3390f177 80040006 00010000 80030006
        80c10000
        """))

    static let aiortcCookieEcho = Capture(name: "COOKIE ECHO (aiortc)", source: "aiortc tests/sctp_cookie_echo.bin", bytes: bytes("""
        13881388 3df2428d ca7547bd 0a00000c
        31323334 35363738
        """))

    static let aiortcAbort = Capture(name: "ABORT with Protocol Violation (aiortc)", source: "aiortc tests/sctp_abort.bin", bytes: bytes("""
        13881388 e05957c2 143effc0 0600003b
        000d0037 45787065 63746564 20422d62
        69742066 6f722054 534e3d34 63653166
        3137662c 20534944 3d303030 312c2053
        534e3d30 30303000
        """))

    static let aiortcData = Capture(name: "DATA \"ping\" (aiortc)", source: "aiortc tests/sctp_data.bin", bytes: bytes("""
        13881388 0fc0f8a1 3f30fe9c 00030014
        9a0f13fd 00010001 00000033 70696e67
        """))

    static let aiortcDataPadding = Capture(name: "DATA \"M\" with padding (aiortc)", source: "aiortc tests/sctp_data_padding.bin", bytes: bytes("""
        13881388 0fc0f8a1 85217dad 00030011
        9a0f13fd 00010001 00000033 4d000000
        """))

    static let aiortcError = Capture(name: "ERROR Invalid Stream Identifier (aiortc)", source: "aiortc tests/sctp_error.bin", bytes: bytes("""
        13881388 e05957c2 fce57e65 0900000c
        00010008 30390000
        """))

    static let aiortcForwardTSN = Capture(name: "FORWARD-TSN (aiortc)", source: "aiortc tests/sctp_forward_tsn.bin", bytes: bytes("""
        13881388 0fc0f8a1 bf44c9a3 c000000c
        000004d2 000c0022
        """))

    static let aiortcHeartbeat = Capture(name: "HEARTBEAT (aiortc)", source: "aiortc tests/sctp_heartbeat.bin", bytes: bytes("""
        13881388 b8c77f65 4bd50d6a 0400002c
        00010028 b56faa5a 765a0600 00000000
        00000000 7b100000 0034eb07 46100000
        00000000 00000000
        """))

    static let aiortcReconfigAddOut = Capture(name: "RE-CONFIG Add Outgoing Streams (aiortc)", source: "aiortc tests/sctp_reconfig_add_out.bin",
                                              bytes: bytes("""
        13881388 e90d96fe 16b6d3d3 82000010
        0011000c ca02f630 00100000
        """))

    static let aiortcReconfigResetOut = Capture(name: "RE-CONFIG Outgoing SSN Reset (aiortc)", source: "aiortc tests/sctp_reconfig_reset_out.bin",
                                                bytes: bytes("""
        13881388 c8e86e6b e9e70591 82000016
        000d0012 8bd80a5b e48bec73 8bd80a5e
        00010000
        """))

    static let aiortcReconfigResponse = Capture(name: "RE-CONFIG Response (aiortc)", source: "aiortc tests/sctp_reconfig_response.bin",
                                                bytes: bytes("""
        13881388 b1bf7efd 4437a952 82000010
        0010000c 91531f54 00000001
        """))

    static let aiortcSack = Capture(name: "SACK with gaps and a duplicate (aiortc)", source: "aiortc tests/sctp_sack.bin", bytes: bytes("""
        13881388 f71faf4b 4fe61a21 0300001c
        847f5b9d 0001f4a0 00020001 00020002
        00040004 847f5ba1
        """))

    static let aiortcShutdown = Capture(name: "SHUTDOWN (aiortc)", source: "aiortc tests/sctp_shutdown.bin", bytes: bytes("""
        13881388 ef9c1872 ca511f8b 07000008
        a0b834d8
        """))

    static let aiortcShutdownAck = Capture(name: "SHUTDOWN ACK (aiortc)", source: "aiortc tests/sctp_shutdown_ack.bin", bytes: bytes("""
        13881388 00000000 b9a6d45b 08000004
        """))

    /// Malformed on purpose in aiortc's tests: DATA with chunk length 8.
    static let aiortcDataTruncated = bytes("13881388 00000000 8f0ad3e0 00000008")
    /// Malformed on purpose in aiortc's tests: chunk length 0.
    static let aiortcDataZeroLength = bytes("13881388 00000000 40520a6a 00000000")

    // MARK: pion/sctp chunk_test.go (the Chrome-named tests hold Chrome's INIT
    // and INIT ACK from its usrsctp days; the others are pion's captures)

    static let chromeInit = Capture(name: "Chrome INIT (pion)", source: "pion/sctp chunk_test.go TestChromeChunk1Init", bytes: bytes("""
        13881388 00000000 bcb345a2 01000056 ce1579a2 00020000 04000800 945795c0
        c0000004 80080009 c00fc180 82000000 80020024 ff5c4919 4a94e82a ec585562
        291f8e23 cd7ce846 ba581b3d abd77e50 f241b12e 80040006 00010000 80030006
        80c10000
        """))

    static let chromeInitAck = Capture(name: "Chrome INIT ACK with usrsctp cookie (pion)", source: "pion/sctp chunk_test.go TestChromeChunk2InitAck",
                                       bytes: bytes("""
        13881388ce1579a2b5db2d93020001909bd5b36f0002000004000800efb47287
        c000000480080009c00fc18082000000800200242ef99c106372ed0d33c2dc7f
        9fd7ef1bc9c4a7419a07686b66fb6a4e325de425800400060001000080030006
        80c10000000701384b414d452d42534420312e31000000009c1e495b00000000
        d24206000000000060ea0000c4133de986b18575a27915ce9bd5b36f20e09f89
        e027000000000000000000000400000020e09f89e02700000000000000000000
        04000000000000001388138800000100010101000000000001000056ce1579a2
        0002000004000800945795c0c000000480080009c00fc1808200000080020024
        ff5c49194a94e82aec585562291f8e23cd7ce846ba581b3dabd77e50f241b12e
        80040006000100008003000680c10000020001909bd5b36f0002000004000800
        efb47287c000000480080009c00fc18082000000800200242ef99c106372ed0d
        33c2dc7f9fd7ef1bc9c4a7419a07686b66fb6a4e325de4258004000600010000
        8003000680c10000ca0c2111cef4fcb366994fdb4f956b6f3bb1db5a
        """))

    /// COOKIE ECHO bundled with a DATA chunk carrying DATA_CHANNEL_OPEN "foo".
    static let cookieEchoWithDCEPOpen = Capture(name: "COOKIE ECHO + DATA(DCEP OPEN) (pion)",
                                                source: "pion/sctp chunk_test.go TestPayloadDataMarshalUnmarshal", bytes: bytes("""
        13881388 fcd63fc6 befadc52 0a000024 9b287e48 a37bc183 c44b4104 a4f7ed4c
        9362c349 00000000 00000000 00000000 0003001f a879a1c7 00010000 00000032
        03000000 00000000 00030000 666f6f00
        """))

    static let pionSack = Capture(name: "SACK with one gap (pion)", source: "pion/sctp chunk_test.go TestSelectAckChunk", bytes: bytes("""
        13881388 c298980f 4231ea78 03000014 8773bda4 0001fe74 00010000 00020002
        """))

    static let pionReconfig = Capture(name: "RE-CONFIG reset of stream 1 (pion)", source: "pion/sctp chunk_test.go TestReconfigChunk", bytes: bytes("""
        13881388 b6a512e5 753b12d3 82000016 000d0012 4e1cb9e6 3a748dff 4e1cb9e6
        00010000
        """))

    // MARK: dcSCTP src/packet/sctp_packet.rs (packets)

    static let dcsctpInit = Capture(name: "INIT with ECN (dcSCTP capture)", source: "webrtc/dcsctp src/packet/sctp_packet.rs", bytes: bytes("""
        13881388 00000000 aa019d33 0100005a 0eddca08 00020000 03e803e8 55083637
        80000004 c0000004 80080009 c00fc180 82000000 80020024 c5a86155 090e6f42
        0050634c c8d6b908 dfd53e17 c99cb143 284eaf64 682ac297 80040006 00010000
        80030006 80c10000
        """))

    static let dcsctpCookieAckAndSack = Capture(name: "COOKIE ACK + SACK (dcSCTP capture)", source: "webrtc/dcsctp src/packet/sctp_packet.rs",
                                                bytes: bytes("""
        04d210e1 697e3a4e c06e8b36 0b000004 03000010 aea95252 00020000 00000000
        """))

    /// dcSCTP's "packet with wrong checksum": the field is 0x2a81f531, the
    /// packet's CRC-32c would put 2a81f532 there.
    static let dcsctpSackWrongChecksum = bytes("13881388 0eddca08 2a81f531 03000010 55083640 00020000 00000000")

    /// dcSCTP's encoder output for SACK(cumulative 999, a_rwnd 456) from port
    /// 5000 to 5000 with tag 0x12345678, checksum included.
    static let dcsctpWrittenSack = bytes("13881388 12345678 07e83877 03000010 000003e7 000001c8 00000000")

    // MARK: dcSCTP src/packet/*_chunk.rs (chunks only; wrapped by `packet(chunks:)`)

    static let dcsctpDataChunk = bytes("00030014 5508363c 00020001 00000035 00010203")
    static let dcsctpSackChunk = bytes("0300001c 369dd00b 0001ed73 00020001 00020006 00080008 369dd011")
    static let dcsctpHeartbeatChunk = bytes("""
        0400002c 00010028 ad243660 37260700 00000000 00000000 7b100000 01000000
        00000000 00000000 00000000
        """)
    static let dcsctpHeartbeatAckChunk = bytes("""
        0500002c 00010028 ad243660 37260700 00000000 00000000 7b100000 01000000
        00000000 00000000 00000000
        """)
    static let dcsctpForwardTSNChunk = bytes("c0000008 71976b2a")
    static let dcsctpReconfigChunk = bytes("82000016 000d0012 8755d823 71976a9e 8755d832 00060000")
    static let dcsctpShutdownChunk = bytes("07000008 0611d1bd")
    static let dcsctpAbortChunk = bytes("06000008 000c0004")
    static let dcsctpErrorChunk = bytes("0900000c 00060008 49000004")
    static let dcsctpCookieEchoChunk = bytes("0a000008 12345678")
    static let dcsctpInitAckChunk = bytes("""
        02000124 579c2f98 00020000 03e80800 63968ec7 c0000004 80080006 c0820000
        00070104 4b414d45 2d425344 20312e31 00000000 96b83860 00000000 525a0e00
        00000000 60ea0000 b5aa19ea 31efa42b 90167ade 579c2f98 00000000 00000000
        00000000 00000000 04000000 00000000 00000000 00000000 00000000 04000000
        00000000 13881388 00000100 01010100 00000000 0100005a de7a1690 00020000
        03e803e8 250d37e8 80000004 c0000004 80080009 c00fc180 82000000 80020024
        ab314462 121a1513 fd5a5f69 efaa06e9 abd748cc 3bd14b60 ed7fa644 ce4dd2ad
        80040006 00010000 80030006 80c10000 02000124 579c2f98 00020000 03e80800
        63968ec7 c0000004 80080006 c0820000 51950188 0d807b19 e7f9c618 5c4abf39
        32e5638e
        """)

    /// Every capture that decodes, for the generic tests.
    static let all: [Capture] = [
        aiortcInit, aiortcCookieEcho, aiortcAbort, aiortcData, aiortcDataPadding, aiortcError, aiortcForwardTSN, aiortcHeartbeat,
        aiortcReconfigAddOut, aiortcReconfigResetOut, aiortcReconfigResponse, aiortcSack, aiortcShutdown, aiortcShutdownAck,
        chromeInit, chromeInitAck, cookieEchoWithDCEPOpen, pionSack, pionReconfig, dcsctpInit, dcsctpCookieAckAndSack,
        Capture(name: "dcSCTP written SACK", source: "webrtc/dcsctp src/packet/sctp_packet.rs", bytes: dcsctpWrittenSack),
        Capture(name: "dcSCTP DATA chunk", source: "webrtc/dcsctp src/packet/data_chunk.rs", bytes: packet(chunks: dcsctpDataChunk)),
        Capture(name: "dcSCTP SACK chunk", source: "webrtc/dcsctp src/packet/sack_chunk.rs", bytes: packet(chunks: dcsctpSackChunk)),
        Capture(name: "dcSCTP HEARTBEAT chunk", source: "webrtc/dcsctp src/packet/heartbeat_request_chunk.rs",
                bytes: packet(chunks: dcsctpHeartbeatChunk)),
        Capture(name: "dcSCTP HEARTBEAT ACK chunk", source: "webrtc/dcsctp src/packet/heartbeat_ack_chunk.rs",
                bytes: packet(chunks: dcsctpHeartbeatAckChunk)),
        Capture(name: "dcSCTP FORWARD-TSN chunk", source: "webrtc/dcsctp src/packet/forward_tsn_chunk.rs",
                bytes: packet(chunks: dcsctpForwardTSNChunk)),
        Capture(name: "dcSCTP RE-CONFIG chunk", source: "webrtc/dcsctp src/packet/re_config_chunk.rs", bytes: packet(chunks: dcsctpReconfigChunk)),
        Capture(name: "dcSCTP SHUTDOWN chunk", source: "webrtc/dcsctp src/packet/shutdown_chunk.rs", bytes: packet(chunks: dcsctpShutdownChunk)),
        Capture(name: "dcSCTP ABORT chunk", source: "webrtc/dcsctp src/packet/abort_chunk.rs", bytes: packet(chunks: dcsctpAbortChunk)),
        Capture(name: "dcSCTP ERROR chunk", source: "webrtc/dcsctp src/packet/error_chunk.rs", bytes: packet(chunks: dcsctpErrorChunk)),
        Capture(name: "dcSCTP COOKIE ECHO chunk", source: "webrtc/dcsctp src/packet/cookie_echo_chunk.rs",
                bytes: packet(chunks: dcsctpCookieEchoChunk)),
        Capture(name: "dcSCTP INIT ACK chunk", source: "webrtc/dcsctp src/packet/init_ack_chunk.rs",
                bytes: packet(chunks: dcsctpInitAckChunk)),
    ]
}
