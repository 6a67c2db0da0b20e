/// An SCTP packet (RFC 9260 §3): the common header and its chunks. Over
/// DTLS (RFC 8261) one packet is the plaintext of one DTLS record.
///
/// The checksum is not a stored property: `decode` checks it, `encode`
/// computes it (or writes zero when RFC 9653 allows).
public struct SCTPPacket: Hashable, Sendable {
    /// Source port, destination port, verification tag, checksum.
    public static let headerLength = 12

    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var verificationTag: UInt32
    public var chunks: [SCTPChunk]

    public init(sourcePort: UInt16, destinationPort: UInt16, verificationTag: UInt32, chunks: [SCTPChunk]) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.verificationTag = verificationTag
        self.chunks = chunks
    }

    /// Decodes one packet that fills `datagram` exactly.
    ///
    /// - The checksum must be the packet's CRC-32c (RFC 9260 §6.8). With
    ///   `acceptZeroChecksum`, a checksum of zero passes too (RFC 9653 §5.3),
    ///   except on a packet carrying INIT or COOKIE ECHO, which always carry a
    ///   real CRC-32c (RFC 9653 §5.2). The association sets it once this
    ///   endpoint has announced Zero Checksum Acceptable with the DTLS method
    ///   and the peer has agreed.
    /// - Every chunk, padding included, lies inside the datagram; nothing
    ///   follows the last one (RFC 9260 §3.2).
    /// - After an unknown chunk whose type says stop (RFC 9260 §3.2), the
    ///   rest of the packet is not read: that chunk is the last one returned.
    /// - INIT, INIT ACK and SHUTDOWN COMPLETE are alone (RFC 9260 §6.10).
    ///
    /// Chunk values are slices of `datagram`: the packet buffer stays alive
    /// as long as any of them does. Verification tags and which chunks may
    /// arrive in which state are the association's to check.
    public static func decode(_ datagram: ArraySlice<UInt8>, acceptZeroChecksum: Bool = false, limits: SCTPLimits = .default)
        throws(SCTPError) -> SCTPPacket
    {
        guard datagram.count >= headerLength + 4 else { throw .packetTooShort(length: datagram.count) }
        guard datagram.count <= limits.maximumPacketLength else {
            throw .packetTooLong(length: datagram.count, limit: limits.maximumPacketLength)
        }
        let received = receivedChecksum(datagram)
        let zeroAccepted = acceptZeroChecksum && received == 0
        if !zeroAccepted {
            let computed = checksum(of: datagram)
            guard computed == received else { throw .checksumMismatch(received: received, computed: computed) }
        }

        var chunks: [SCTPChunk] = []
        var offset = headerLength
        while offset < datagram.count {
            guard chunks.count < limits.maximumChunksPerPacket else { throw .tooManyChunks(limit: limits.maximumChunksPerPacket) }
            let (chunk, length) = try SCTPChunk.decode(datagram.bytes(from: offset), limits: limits)
            chunks.append(chunk)
            offset += length
            // RFC 9260 §3.2: an unrecognized chunk type whose high bits are 00
            // or 01 ends the processing of the packet.
            if case .unknown(let unknown) = chunk, unknown.action.stopsProcessing { break }
        }
        try checkBundling(chunks)
        if zeroAccepted, let handshake = chunks.first(where: needsRealChecksum) {
            let computed = checksum(of: datagram)
            guard computed == 0 else { throw .zeroChecksumNotAllowed(chunk: handshake.type) }
        }
        return SCTPPacket(
            sourcePort: datagram.u16(at: 0), destinationPort: datagram.u16(at: 2), verificationTag: datagram.u32(at: 4), chunks: chunks)
    }

    public static func decode(_ datagram: [UInt8], acceptZeroChecksum: Bool = false, limits: SCTPLimits = .default)
        throws(SCTPError) -> SCTPPacket
    {
        try decode(datagram[...], acceptZeroChecksum: acceptZeroChecksum, limits: limits)
    }

    /// Appends the encoded packet to `buffer`; on a throw, `buffer` is as it
    /// was. With `zeroChecksum` (only once the peer has announced Zero
    /// Checksum Acceptable for DTLS, RFC 9653 §5.2) the checksum field is
    /// zero, except on packets carrying INIT or COOKIE ECHO.
    ///
    /// The encoder holds itself to what the decoder accepts: the bundling
    /// rule, the limits, and at least one chunk.
    public func encode(into buffer: inout [UInt8], zeroChecksum: Bool = false, limits: SCTPLimits = .default) throws(SCTPError) {
        guard !chunks.isEmpty else { throw .noChunks }
        guard chunks.count <= limits.maximumChunksPerPacket else { throw .tooManyChunks(limit: limits.maximumChunksPerPacket) }
        try Self.checkBundling(chunks)
        let start = buffer.count
        buffer.appendBigEndian(sourcePort)
        buffer.appendBigEndian(destinationPort)
        buffer.appendBigEndian(verificationTag)
        buffer.appendBigEndian(UInt32(0))  // checksum, set below
        for chunk in chunks {
            do {
                try chunk.encode(into: &buffer, limits: limits)
            } catch {
                buffer.removeSubrange(start...)
                throw error
            }
        }
        let length = buffer.count - start
        guard length <= limits.maximumPacketLength else {
            buffer.removeSubrange(start...)
            throw .packetTooLong(length: length, limit: limits.maximumPacketLength)
        }
        if zeroChecksum && !chunks.contains(where: Self.needsRealChecksum) { return }
        // The checksum field is still zero, as the CRC computation wants it.
        let crc = buffer[start...].withUnsafeBytes { CRC32C.checksum($0) }
        Self.storeChecksum(crc, in: &buffer, at: start + 8)
    }

    public func encode(zeroChecksum: Bool = false, limits: SCTPLimits = .default) throws(SCTPError) -> [UInt8] {
        var buffer: [UInt8] = []
        try encode(into: &buffer, zeroChecksum: zeroChecksum, limits: limits)
        return buffer
    }

    /// The CRC-32c of `packet` with its checksum field taken as zero (RFC
    /// 9260 §6.8), computed without copying the packet.
    public static func checksum(of packet: ArraySlice<UInt8>) -> UInt32 {
        guard packet.count >= headerLength else { return CRC32C.checksum(packet) }
        var crc = CRC32C()
        crc.update(packet.bytes(at: 0, count: 8))
        crc.update(zeros: 4)
        crc.update(packet.bytes(from: headerLength))
        return crc.value
    }

    /// The checksum field as a CRC-32c value. RFC 9260 Appendix B computes
    /// the CRC over reflected bits, which puts its lowest byte first on the
    /// wire: the field reads little-endian.
    static func receivedChecksum(_ packet: ArraySlice<UInt8>) -> UInt32 {
        UInt32(packet.u8(at: 8)) | UInt32(packet.u8(at: 9)) << 8 | UInt32(packet.u8(at: 10)) << 16 | UInt32(packet.u8(at: 11)) << 24
    }

    static func storeChecksum(_ crc: UInt32, in buffer: inout [UInt8], at offset: Int) {
        for index in 0..<4 {
            buffer[offset + index] = UInt8(truncatingIfNeeded: crc >> (8 * index))
        }
    }

    /// RFC 9653 §5.2: a packet with INIT (the sender cannot yet know the
    /// peer's support) or COOKIE ECHO keeps its CRC-32c.
    static func needsRealChecksum(_ chunk: SCTPChunk) -> Bool {
        switch chunk {
        case .initiation, .cookieEcho: return true
        default: return false
        }
    }

    /// RFC 9260 §6.10: INIT, INIT ACK and SHUTDOWN COMPLETE are never bundled.
    static func checkBundling(_ chunks: [SCTPChunk]) throws(SCTPError) {
        guard chunks.count > 1 else { return }
        if let alone = chunks.first(where: { $0.mustBeAlone }) { throw .chunkNotAlone(alone.type) }
    }
}
