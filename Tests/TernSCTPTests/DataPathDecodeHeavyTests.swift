import Testing
import TernTestSupport
@testable import TernSCTP

/// The receiving data path's decoder (`SCTPWire.decode`) reads DATA chunks
/// straight into the association's values, with the packet rules of the
/// general decoder (`SCTPPacket.decode`). Its answer must be the general
/// decoder's for every packet, well-formed, damaged or mixed: a value for
/// the same values, nil exactly where the general decoder throws.
@Suite("Data path decoding")
struct DataPathDecodeHeavyTests {
    /// The general decoder's answer, as the association would see it.
    static func general(_ bytes: [UInt8], acceptZeroChecksum: Bool) -> SCTPWire.Incoming? {
        guard let packet = try? SCTPPacket.decode(bytes, acceptZeroChecksum: acceptZeroChecksum) else { return nil }
        return SCTPWire.Incoming(verificationTag: packet.verificationTag, chunks: packet.chunks.map(SCTPWire.model))
    }

    /// A packet of 1 to 4 DATA chunks with random fields and sizes.
    static func randomDataPacket(_ random: inout SplitMix64, zeroChecksum: Bool) throws -> [UInt8] {
        let count = Int.random(in: 1...4, using: &random)
        var chunks: [SCTPChunk] = []
        for _ in 0..<count {
            let size = Int.random(in: 0...300, using: &random)
            chunks.append(.data(SCTPDataChunk(
                tsn: random.next32(), streamID: UInt16.random(in: 0...UInt16.max, using: &random),
                ssn: UInt16.random(in: 0...UInt16.max, using: &random), ppid: random.next32(),
                userData: (0..<size).map { _ in UInt8.random(in: 0...255, using: &random) }[...],
                flags: SCTPDataChunk.Flags(rawValue: UInt8.random(in: 0...15, using: &random)))))
        }
        let packet = SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: random.next32(), chunks: chunks)
        return try packet.encode(zeroChecksum: zeroChecksum)
    }

    @Test("every well-formed packet of DATA chunks is decoded, as the general decoder does")
    func wellFormed() throws {
        var random = SplitMix64(seed: 0x5C7_DA7A)
        for round in 0..<2_000 {
            let zero = round % 2 == 0
            let bytes = try Self.randomDataPacket(&random, zeroChecksum: zero)
            for accept in [true, false] where accept || !zero {
                let fast = SCTPWire.decode(bytes[...], acceptZeroChecksum: accept)
                #expect(fast != nil, "round \(round): a DATA packet the data path did not take")
                #expect(fast == Self.general(bytes, acceptZeroChecksum: accept), "round \(round)")
            }
        }
    }

    @Test("damaged and mixed packets: the data path's answer is the general decoder's, refusals included")
    func damaged() throws {
        var random = SplitMix64(seed: 0xBAD_DA7A)
        var answered = 0, refused = 0
        for round in 0..<20_000 {
            let zero = random.next() & 1 == 0
            var bytes = try Self.randomDataPacket(&random, zeroChecksum: zero)
            switch round % 6 {
            case 0:  // a byte anywhere
                let at = Int.random(in: 0..<bytes.count, using: &random)
                bytes[at] = UInt8.random(in: 0...255, using: &random)
            case 1:  // a chunk header field: type, flags or length
                let at = 12 + Int.random(in: 0...3, using: &random)
                bytes[at] = UInt8.random(in: 0...255, using: &random)
            case 2:  // cut short
                bytes.removeLast(Int.random(in: 1...min(8, bytes.count), using: &random))
            case 3:  // trailing bytes
                bytes += (0..<Int.random(in: 1...7, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            case 4:  // another chunk type after the DATA (a SACK, an INIT, a COOKIE ECHO)
                let type: UInt8 = [3, 1, 10].randomElement(using: &random) ?? 3
                bytes += [type, 0, 0, 8, 0, 0, 0, 1]
            default:  // the last chunk's length beyond its padding, or short of the DATA header
                bytes[14] = 0
                bytes[15] = UInt8.random(in: 0...20, using: &random)
            }
            for accept in [true, false] {
                let fast = SCTPWire.decode(bytes[...], acceptZeroChecksum: accept)
                #expect(fast == Self.general(bytes, acceptZeroChecksum: accept), "round \(round): \(bytes.prefix(24))")
                if fast != nil { answered += 1 } else { refused += 1 }
            }
        }
        // Both kinds of outcome occurred: the comparison above was exercised.
        #expect(answered > 1_000)
        #expect(refused > 1_000)
    }

    @Test("a packet starting with another chunk is read with the same rules")
    func otherChunksFirst() throws {
        let sack = SCTPChunk.sack(SCTPSackChunk(cumulativeTSNAck: 9, advertisedWindow: 1 << 20, gapAckBlocks: [], duplicateTSNs: []))
        let data = SCTPChunk.data(SCTPDataChunk(tsn: 10, streamID: 1, ssn: 0, ppid: 51, userData: [1, 2, 3][...], flags: [.beginning, .end]))
        let bytes = try SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: 7, chunks: [sack, data]).encode()
        let decoded = SCTPWire.decode(bytes[...])
        #expect(decoded?.chunks.count == 2)
        #expect(decoded == Self.general(bytes, acceptZeroChecksum: true))
    }
}

extension SplitMix64 {
    mutating func next32() -> UInt32 { UInt32(truncatingIfNeeded: next()) }
}
