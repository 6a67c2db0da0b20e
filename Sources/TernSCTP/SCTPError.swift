/// Everything that can go wrong in TernSCTP's codec: a malformed or hostile
/// packet, a checksum that does not match, a value over one of the
/// `SCTPLimits`, or a value too large for its length field when encoding.
///
/// One error type for the whole module. The cases are the stable code a caller
/// switches on (the association counts dropped packets by case); `reason` is
/// one sentence for a log line.
public enum SCTPError: Error, Hashable, Sendable, CustomStringConvertible {
    // MARK: Packet (RFC 9260 §3, §6.8, §6.10)

    /// Fewer bytes than a common header and one chunk header (16).
    case packetTooShort(length: Int)
    /// More bytes than `SCTPLimits.maximumPacketLength`.
    case packetTooLong(length: Int, limit: Int)
    /// The CRC-32c in the common header does not match the packet (RFC 9260 §6.8).
    case checksumMismatch(received: UInt32, computed: UInt32)
    /// A zero checksum on a packet carrying INIT or COOKIE ECHO, which always
    /// carry a real CRC-32c (RFC 9653 §5.2).
    case zeroChecksumNotAllowed(chunk: SCTPChunkType)
    /// A packet to encode has no chunks.
    case noChunks
    /// More chunks than `SCTPLimits.maximumChunksPerPacket`.
    case tooManyChunks(limit: Int)
    /// One to three bytes after the last chunk: too few for a chunk header.
    case trailingBytes(count: Int)
    /// INIT, INIT ACK or SHUTDOWN COMPLETE bundled with other chunks (RFC 9260 §6.10).
    case chunkNotAlone(SCTPChunkType)

    // MARK: Chunk framing (RFC 9260 §3.2)

    /// A chunk length below the chunk header, or not what the chunk type needs.
    case chunkLengthInvalid(type: SCTPChunkType, length: Int)
    /// A chunk length that runs past the end of the packet.
    case chunkOverrun(type: SCTPChunkType, length: Int, available: Int)
    /// The packet ends inside the zero padding that rounds a chunk up to four bytes.
    case chunkPaddingMissing(type: SCTPChunkType)

    // MARK: Chunk values

    /// A SACK whose length does not match its gap-block and duplicate-TSN counts (RFC 9260 §3.3.4).
    case sackLengthMismatch(length: Int, gapAckBlocks: Int, duplicateTSNs: Int)
    /// More gap ack blocks than `SCTPLimits.maximumGapAckBlocks`.
    case tooManyGapAckBlocks(count: Int, limit: Int)
    /// More duplicate TSNs than `SCTPLimits.maximumDuplicateTSNs`.
    case tooManyDuplicateTSNs(count: Int, limit: Int)
    /// A FORWARD-TSN or stream reset request listing more streams than `SCTPLimits.maximumStreamsPerChunk`.
    case tooManyStreams(count: Int, limit: Int)
    /// A HEARTBEAT or HEARTBEAT ACK that does not hold exactly one Heartbeat
    /// Info parameter (RFC 9260 §3.3.5, §3.3.6).
    case heartbeatInfoInvalid(SCTPChunkType)
    /// Heartbeat information longer than `SCTPLimits.maximumHeartbeatInfoLength`.
    case heartbeatInfoTooLong(length: Int, limit: Int)
    /// A state cookie longer than `SCTPLimits.maximumCookieLength`.
    case cookieTooLong(length: Int, limit: Int)
    /// A RE-CONFIG chunk with other than one or two parameters (RFC 6525 §3.1).
    case reconfigParameterCount(Int)

    // MARK: Parameters and error causes (RFC 9260 §3.2.1, §3.3.10)

    /// Fewer than four bytes left in a chunk where a parameter or error cause starts.
    case tlvTruncated(chunk: SCTPChunkType, available: Int)
    /// A parameter or error cause length below its own four-byte header.
    case tlvLengthInvalid(chunk: SCTPChunkType, type: UInt16, length: Int)
    /// A parameter or error cause that runs past the end of its chunk.
    case tlvOverrun(chunk: SCTPChunkType, type: UInt16, length: Int, available: Int)
    /// Part of a parameter's padding inside the chunk length and part outside it.
    case tlvPaddingTruncated(chunk: SCTPChunkType, type: UInt16)
    /// More parameters than `SCTPLimits.maximumParametersPerChunk`.
    case tooManyParameters(chunk: SCTPChunkType, limit: Int)
    /// More error causes than `SCTPLimits.maximumErrorCausesPerChunk`.
    case tooManyErrorCauses(chunk: SCTPChunkType, limit: Int)
    /// A known parameter whose length is not what its RFC gives.
    case parameterLengthInvalid(type: SCTPParameterType, length: Int)
    /// A known error cause whose length or content is not what RFC 9260 §3.3.10 gives.
    case errorCauseLengthInvalid(code: SCTPErrorCauseCode, length: Int)
    /// A list (supported extensions, address types, missing parameters) over
    /// `SCTPLimits.maximumListEntries`.
    case listTooLong(count: Int, limit: Int)

    // MARK: Encoding

    /// A chunk whose value does not fit the 16-bit chunk length.
    case chunkTooLong(type: SCTPChunkType, length: Int)
    /// A parameter or error cause whose value does not fit its 16-bit length.
    case valueTooLong(type: UInt16, length: Int)

    /// One sentence for a log line or a user.
    public var reason: String {
        switch self {
        case .packetTooShort(let length):
            return "SCTP packet of \(length) bytes is shorter than a common header and one chunk"
        case .packetTooLong(let length, let limit):
            return "SCTP packet of \(length) bytes is over the limit of \(limit)"
        case .checksumMismatch(let received, let computed):
            return "SCTP checksum 0x\(hex(received)) does not match computed CRC-32c 0x\(hex(computed))"
        case .zeroChecksumNotAllowed(let chunk):
            return "SCTP packet with \(chunk) has a zero checksum, but that chunk always needs a real CRC-32c"
        case .noChunks:
            return "SCTP packet has no chunks"
        case .tooManyChunks(let limit):
            return "SCTP packet has more than \(limit) chunks"
        case .trailingBytes(let count):
            return "\(count) bytes follow the last SCTP chunk"
        case .chunkNotAlone(let type):
            return "SCTP \(type) chunk must be alone in its packet"
        case .chunkLengthInvalid(let type, let length):
            return "SCTP \(type) chunk has an invalid length of \(length)"
        case .chunkOverrun(let type, let length, let available):
            return "SCTP \(type) chunk of length \(length) runs past the \(available) bytes left in the packet"
        case .chunkPaddingMissing(let type):
            return "SCTP packet ends inside the padding of a \(type) chunk"
        case .sackLengthMismatch(let length, let gaps, let duplicates):
            return "SACK length \(length) does not fit \(gaps) gap ack blocks and \(duplicates) duplicate TSNs"
        case .tooManyGapAckBlocks(let count, let limit):
            return "SACK has \(count) gap ack blocks, over the limit of \(limit)"
        case .tooManyDuplicateTSNs(let count, let limit):
            return "SACK has \(count) duplicate TSNs, over the limit of \(limit)"
        case .tooManyStreams(let count, let limit):
            return "SCTP chunk lists \(count) streams, over the limit of \(limit)"
        case .heartbeatInfoInvalid(let type):
            return "SCTP \(type) chunk does not hold exactly one Heartbeat Info parameter"
        case .heartbeatInfoTooLong(let length, let limit):
            return "heartbeat information of \(length) bytes is over the limit of \(limit)"
        case .cookieTooLong(let length, let limit):
            return "state cookie of \(length) bytes is over the limit of \(limit)"
        case .reconfigParameterCount(let count):
            return "RE-CONFIG chunk has \(count) parameters; it takes one or two"
        case .tlvTruncated(let chunk, let available):
            return "SCTP \(chunk) chunk has \(available) bytes left, too few for a parameter header"
        case .tlvLengthInvalid(let chunk, let type, let length):
            return "parameter 0x\(hex(type)) in an SCTP \(chunk) chunk has an invalid length of \(length)"
        case .tlvOverrun(let chunk, let type, let length, let available):
            return "parameter 0x\(hex(type)) of length \(length) runs past the \(available) bytes left in an SCTP \(chunk) chunk"
        case .tlvPaddingTruncated(let chunk, let type):
            return "parameter 0x\(hex(type)) in an SCTP \(chunk) chunk is cut inside its padding"
        case .tooManyParameters(let chunk, let limit):
            return "SCTP \(chunk) chunk has more than \(limit) parameters"
        case .tooManyErrorCauses(let chunk, let limit):
            return "SCTP \(chunk) chunk has more than \(limit) error causes"
        case .parameterLengthInvalid(let type, let length):
            return "SCTP parameter \(type) has an invalid length of \(length)"
        case .errorCauseLengthInvalid(let code, let length):
            return "SCTP error cause \(code) has an invalid length of \(length)"
        case .listTooLong(let count, let limit):
            return "SCTP parameter lists \(count) entries, over the limit of \(limit)"
        case .chunkTooLong(let type, let length):
            return "SCTP \(type) chunk of \(length) bytes does not fit a 16-bit length"
        case .valueTooLong(let type, let length):
            return "SCTP parameter 0x\(hex(type)) of \(length) bytes does not fit a 16-bit length"
        }
    }

    public var description: String { reason }
}

/// Lower-case hex with at least two digits per byte of the value's width.
func hex<T: FixedWidthInteger & UnsignedInteger>(_ value: T) -> String {
    let digits = String(value, radix: 16)
    let width = T.bitWidth / 4
    return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
}
