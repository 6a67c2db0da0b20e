import Testing
import TernTestSupport
import TernSCTP


/// The seeded generator, under the name these tests use.
typealias TestRandom = SplitMix64

/// Wraps `chunk` bytes (already padded) in a common header with a correct
/// checksum: for chunk-level captures that come without their packet.
func packet(verificationTag: UInt32 = 0x1234_5678, chunks: [UInt8]) -> [UInt8] {
    var packet: [UInt8] = [0x13, 0x88, 0x13, 0x88]
    for shift in stride(from: 24, through: 0, by: -8) { packet.append(UInt8(truncatingIfNeeded: verificationTag >> UInt32(shift))) }
    packet += [0, 0, 0, 0] + chunks
    return withChecksum(packet)
}

/// `packet` with its checksum field set to its CRC-32c.
func withChecksum(_ packet: [UInt8]) -> [UInt8] {
    var packet = packet
    guard packet.count >= 12 else { return packet }
    let crc = SCTPPacket.checksum(of: packet[...])
    for index in 0..<4 { packet[8 + index] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(index))) }
    return packet
}

/// `packet` with its checksum field zeroed.
func withZeroChecksum(_ packet: [UInt8]) -> [UInt8] {
    var packet = packet
    for index in 8..<max(8, min(12, packet.count)) { packet[index] = 0 }
    return packet
}

/// The one chunk of a packet decoded from `bytes`.
func onlyChunk(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws -> SCTPChunk {
    let packet = try SCTPPacket.decode(bytes)
    try #require(packet.chunks.count == 1, sourceLocation: sourceLocation)
    return packet.chunks[0]
}
