import Testing
import TernSCTP

/// Bytes from a hex string; spaces and newlines are ignored. For literals in
/// tests only: a bad digit is a bug in the test and fails loudly.
func bytes(_ hex: String) -> [UInt8] {
    let digits = hex.filter { !$0.isWhitespace }
    precondition(digits.count % 2 == 0, "odd hex literal")
    var result: [UInt8] = []
    var index = digits.startIndex
    while index < digits.endIndex {
        let next = digits.index(index, offsetBy: 2)
        guard let byte = UInt8(digits[index..<next], radix: 16) else { preconditionFailure("bad hex literal") }
        result.append(byte)
        index = next
    }
    return result
}

/// A small deterministic generator so failures reproduce (SplitMix64).
struct TestRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) {
        state = seed
    }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

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
