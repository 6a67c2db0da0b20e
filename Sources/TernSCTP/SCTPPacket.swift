import TernWire

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
        var reader = try Reader(datagram, acceptZeroChecksum: acceptZeroChecksum, limits: limits)
        var chunks: [SCTPChunk] = []
        while let raw = try reader.next() {
            let chunk = try SCTPChunk.decodeValue(type: raw.type, flags: raw.flags, value: raw.value, limits: limits)
            chunks.append(chunk)
            if chunk.stopsPacket { break }
        }
        try reader.finish()
        return SCTPPacket(
            sourcePort: reader.sourcePort, destinationPort: reader.destinationPort, verificationTag: reader.verificationTag, chunks: chunks)
    }

    /// The packet rules both decoders read with (this one, into `SCTPChunk`
    /// values, and `SCTPWire.decode`, into the association's): the length
    /// limits and the checksum when it opens the packet, the chunk framing
    /// and count for each chunk, the bundling rule and RFC 9653's real
    /// checksum for INIT and COOKIE ECHO at `finish`. What each decoder does
    /// with a chunk's value is its own.
    struct Reader {
        let sourcePort: UInt16
        let destinationPort: UInt16
        let verificationTag: UInt32
        private var chunks: WireReader
        private let datagram: ArraySlice<UInt8>
        private let zeroAccepted: Bool
        private let limits: SCTPLimits
        private var rules = BundleRules()

        @inline(__always)
        init(_ datagram: ArraySlice<UInt8>, acceptZeroChecksum: Bool, limits: SCTPLimits) throws(SCTPError) {
            guard datagram.count >= headerLength + 4 else { throw .packetTooShort(length: datagram.count) }
            guard datagram.count <= limits.maximumPacketLength else {
                throw .packetTooLong(length: datagram.count, limit: limits.maximumPacketLength)
            }
            var reader = WireReader(datagram)
            do {
                let ports = try reader.readUInt32()
                sourcePort = UInt16(truncatingIfNeeded: ports >> 16)
                destinationPort = UInt16(truncatingIfNeeded: ports)
                verificationTag = try reader.readUInt32()
                try reader.skip(4)  // the checksum, read below
            } catch {
                throw .packetTooShort(length: datagram.count)  // checked above
            }
            let received = SCTPPacket.receivedChecksum(datagram)
            zeroAccepted = acceptZeroChecksum && received == 0
            if !zeroAccepted {
                let computed = checksum(of: datagram)
                guard computed == received else { throw .checksumMismatch(received: received, computed: computed) }
            }
            chunks = WireReader(reader.readRemaining())
            self.datagram = datagram
            self.limits = limits
        }

        /// The next chunk's type, flags and value; nil after the last.
        @inline(__always)
        mutating func next() throws(SCTPError) -> SCTPChunk.Raw? {
            guard !chunks.isAtEnd else { return nil }
            guard rules.count < limits.maximumChunksPerPacket else { throw .tooManyChunks(limit: limits.maximumChunksPerPacket) }
            let raw = try SCTPChunk.readRaw(&chunks)
            rules.add(raw.type)
            return raw
        }

        /// The rules on the packet's chunks as a whole, once they are read.
        func finish() throws(SCTPError) {
            try rules.check()
            if zeroAccepted, let handshake = rules.needsRealChecksum {
                let computed = checksum(of: datagram)
                guard computed == 0 else { throw .zeroChecksumNotAllowed(chunk: handshake) }
            }
        }
    }

    /// What the packet rules need to know of its chunks: how many, and the
    /// types the bundling and checksum rules name. Both encoders and both
    /// decoders keep one.
    struct BundleRules {
        private(set) var count = 0
        /// RFC 9260 §6.10: INIT, INIT ACK or SHUTDOWN COMPLETE, never bundled.
        private(set) var alone: SCTPChunkType?
        /// RFC 9653 §5.2: a packet with INIT (the sender cannot yet know the
        /// peer's support) or COOKIE ECHO keeps its CRC-32c.
        private(set) var needsRealChecksum: SCTPChunkType?

        @inline(__always)
        mutating func add(_ type: SCTPChunkType) {
            count &+= 1
            if type == .data || type == .sack { return }
            if alone == nil, type == .initiation || type == .initiationAck || type == .shutdownComplete { alone = type }
            if needsRealChecksum == nil, type == .initiation || type == .cookieEcho { needsRealChecksum = type }
        }

        func check() throws(SCTPError) {
            if count > 1, let alone { throw .chunkNotAlone(alone) }
        }
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
        var rules = BundleRules()
        for chunk in chunks { rules.add(chunk.type) }
        try rules.check()
        let start = buffer.count
        Self.writeHeader(sourcePort: sourcePort, destinationPort: destinationPort, verificationTag: verificationTag, into: &buffer)
        for chunk in chunks {
            do {
                try chunk.encode(into: &buffer, limits: limits)
            } catch {
                buffer.removeSubrange(start...)
                throw error
            }
        }
        try Self.finish(&buffer, from: start, zeroChecksum: zeroChecksum && rules.needsRealChecksum == nil, limits: limits)
    }

    /// RFC 9260 §3.1: ports and verification tag, then a zero checksum
    /// that `finish` sets.
    @inline(__always)
    static func writeHeader(sourcePort: UInt16, destinationPort: UInt16, verificationTag: UInt32, into buffer: inout [UInt8]) {
        buffer.appendBigEndian(UInt64(sourcePort) << 48 | UInt64(destinationPort) << 32 | UInt64(verificationTag))
        buffer.appendBigEndian(UInt32(0))
    }

    /// Ends the packet written from `start`: its length limit (on a throw
    /// the packet is removed), then the checksum, left zero where RFC 9653
    /// §5.2 allows (`zeroChecksum`; the caller has applied the INIT and
    /// COOKIE ECHO exception).
    @inline(__always)
    static func finish(_ buffer: inout [UInt8], from start: Int, zeroChecksum: Bool, limits: SCTPLimits) throws(SCTPError) {
        let length = buffer.count - start
        guard length <= limits.maximumPacketLength else {
            buffer.removeSubrange(start...)
            throw .packetTooLong(length: length, limit: limits.maximumPacketLength)
        }
        if zeroChecksum { return }
        // The checksum field is still zero, as the CRC computation wants it.
        let crc = buffer[start...].withUnsafeBytes { CRC32C.checksum($0) }
        storeChecksum(crc, in: &buffer, at: start + 8)
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
        crc.update(packet.prefix(8))
        crc.update(zeros: 4)
        crc.update(packet.dropFirst(headerLength))
        return crc.value
    }

    /// The checksum field as a CRC-32c value. RFC 9260 Appendix B computes
    /// the CRC over reflected bits, which puts its lowest byte first on the
    /// wire: the field reads little-endian.
    static func receivedChecksum(_ packet: ArraySlice<UInt8>) -> UInt32 {
        // Read big-endian, swapped to the field's little-endian order.
        (WireReader(packet).peekInteger(ahead: 8, as: UInt32.self) ?? 0).byteSwapped
    }

    static func storeChecksum(_ crc: UInt32, in buffer: inout [UInt8], at offset: Int) {
        for index in 0..<4 {
            buffer[offset + index] = UInt8(truncatingIfNeeded: crc >> (8 * index))
        }
    }
}
