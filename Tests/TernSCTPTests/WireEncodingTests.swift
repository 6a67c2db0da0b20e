import Testing
@testable import TernSCTP

/// The data path's encoder (`SCTPWire.encode(verificationTag:chunks:zeroChecksum:into:)`)
/// writes DATA and SACK straight from the association's values; it must give
/// the same bytes as the general encoder for every packet.
@Suite("Data path encoding")
struct WireEncodingTests {
    static func fragment(_ tsn: UInt32, payload: Int, beginning: Bool, ending: Bool, unordered: Bool = false) -> SCTPChunkModel {
        .data(SCTPFragment(
            tsn: TSN(tsn), stream: 3, ssn: SSN(7), ppid: 53, unordered: unordered, beginning: beginning, ending: ending,
            payload: (0..<payload).map { UInt8(truncatingIfNeeded: $0 &* 31) }))
    }

    static let sack = SCTPChunkModel.sack(.init(
        cumulativeTSN: TSN(0xFFFF_FFFE), receiveWindow: 1 << 21,
        gapBlocks: [.init(start: 2, end: 3), .init(start: 5, end: 9)], duplicates: [TSN(1), TSN(0xFFFF_FFFF)]))

    static let packets: [[SCTPChunkModel]] = [
        [fragment(1, payload: 1, beginning: true, ending: true)],
        [fragment(0xFFFF_FFFF, payload: 1135, beginning: true, ending: false)],
        [fragment(2, payload: 1134, beginning: false, ending: false, unordered: true)],
        [sack],
        [.sack(.init(cumulativeTSN: TSN(9), receiveWindow: 0, gapBlocks: [], duplicates: []))],
        [sack, fragment(3, payload: 1001, beginning: false, ending: true)],
        [fragment(4, payload: 7, beginning: true, ending: true), fragment(5, payload: 6, beginning: true, ending: true)],
        // Not the data path: these go through the general encoder.
        [.cookieAck, fragment(6, payload: 3, beginning: true, ending: true)],
        [.heartbeat(info: [1, 2, 3, 4, 5, 6, 7, 8])],
    ]

    @Test(arguments: packets, [false, true])
    func givesTheGeneralEncodersBytes(chunks: [SCTPChunkModel], zeroChecksum: Bool) throws {
        let general = try SCTPPacket(
            sourcePort: SCTPWire.port, destinationPort: SCTPWire.port, verificationTag: 0xDEAD_BEEF,
            chunks: chunks.map(SCTPWire.chunk)
        ).encode(zeroChecksum: zeroChecksum)
        var buffer: [UInt8] = [9, 9, 9]  // whatever was there before is replaced
        try SCTPWire.encode(verificationTag: 0xDEAD_BEEF, chunks: chunks, zeroChecksum: zeroChecksum, into: &buffer)
        #expect(buffer == general)
        let decoded = try #require(SCTPWire.decode(buffer))
        #expect(decoded.chunks == chunks)
    }

    @Test
    func refusesAnEmptyPacketLikeTheGeneralEncoder() {
        var buffer: [UInt8] = []
        #expect(throws: SCTPError.noChunks) {
            try SCTPWire.encode(verificationTag: 1, chunks: [], zeroChecksum: false, into: &buffer)
        }
    }
}
