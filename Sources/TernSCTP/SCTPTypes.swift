// Type codes, the "what to do when unrecognized" bits they carry, the limits
// the decoder enforces, and the slice-backed lists chunks hand out.

import TernWire

/// What an endpoint does with a chunk or parameter type it does not
/// recognize, read from the type's two highest bits (RFC 9260 §3.2 for
/// chunks, §3.2.1 for parameters).
public enum SCTPUnrecognizedAction: Hashable, Sendable {
    /// 00: stop processing (the rest of the packet, or the rest of the chunk's
    /// parameters) and report nothing.
    case stop
    /// 01: stop processing as for `stop`, and report the type (chunks in an
    /// ERROR chunk's Unrecognized Chunk Type cause; parameters as RFC 9260
    /// §3.2.2 says).
    case stopAndReport
    /// 10: skip it and carry on.
    case skip
    /// 11: skip it, carry on, and report it.
    case skipAndReport

    init(highBits: UInt8) {
        switch highBits & 0b11 {
        case 0b00: self = .stop
        case 0b01: self = .stopAndReport
        case 0b10: self = .skip
        default: self = .skipAndReport
        }
    }

    /// Whether nothing after the unrecognized item is processed.
    public var stopsProcessing: Bool { self == .stop || self == .stopAndReport }

    /// Whether the unrecognized item is reported to the peer.
    public var reports: Bool { self == .stopAndReport || self == .skipAndReport }
}

/// An SCTP chunk type (RFC 9260 §3.2 and the IANA registry).
public struct SCTPChunkType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8

    public init(rawValue: UInt8) {
        self.rawValue = rawValue
    }

    public init(_ rawValue: UInt8) {
        self.rawValue = rawValue
    }

    // RFC 9260 §3.2
    public static let data = SCTPChunkType(0)
    public static let initiation = SCTPChunkType(1)
    public static let initiationAck = SCTPChunkType(2)
    public static let sack = SCTPChunkType(3)
    public static let heartbeat = SCTPChunkType(4)
    public static let heartbeatAck = SCTPChunkType(5)
    public static let abort = SCTPChunkType(6)
    public static let shutdown = SCTPChunkType(7)
    public static let shutdownAck = SCTPChunkType(8)
    public static let error = SCTPChunkType(9)
    public static let cookieEcho = SCTPChunkType(10)
    public static let cookieAck = SCTPChunkType(11)
    public static let ecne = SCTPChunkType(12)
    public static let cwr = SCTPChunkType(13)
    public static let shutdownComplete = SCTPChunkType(14)
    /// RFC 4895
    public static let auth = SCTPChunkType(15)
    /// RFC 8260
    public static let iData = SCTPChunkType(64)
    /// RFC 5061
    public static let asconfAck = SCTPChunkType(0x80)
    /// RFC 6525 §3.1
    public static let reconfig = SCTPChunkType(0x82)
    /// RFC 4820
    public static let pad = SCTPChunkType(0x84)
    /// RFC 3758 §3.2
    public static let forwardTSN = SCTPChunkType(0xC0)
    /// RFC 5061
    public static let asconf = SCTPChunkType(0xC1)
    /// RFC 8260
    public static let iForwardTSN = SCTPChunkType(0xC2)

    /// RFC 9260 §3.2: the two highest bits of the type.
    public var unrecognizedAction: SCTPUnrecognizedAction { SCTPUnrecognizedAction(highBits: rawValue >> 6) }

    public var description: String {
        switch self {
        case .data: return "DATA"
        case .initiation: return "INIT"
        case .initiationAck: return "INIT ACK"
        case .sack: return "SACK"
        case .heartbeat: return "HEARTBEAT"
        case .heartbeatAck: return "HEARTBEAT ACK"
        case .abort: return "ABORT"
        case .shutdown: return "SHUTDOWN"
        case .shutdownAck: return "SHUTDOWN ACK"
        case .error: return "ERROR"
        case .cookieEcho: return "COOKIE ECHO"
        case .cookieAck: return "COOKIE ACK"
        case .shutdownComplete: return "SHUTDOWN COMPLETE"
        case .reconfig: return "RE-CONFIG"
        case .forwardTSN: return "FORWARD-TSN"
        case .ecne: return "ECNE"
        case .cwr: return "CWR"
        default: return "type-\(rawValue)"
        }
    }
}

/// An SCTP parameter type (RFC 9260 §3.2.1 and the IANA registry).
public struct SCTPParameterType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16

    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    public init(_ rawValue: UInt16) {
        self.rawValue = rawValue
    }

    /// RFC 9260 §3.3.5
    public static let heartbeatInfo = SCTPParameterType(1)
    // RFC 9260 §3.3.2.1 and §3.3.3.1
    public static let ipv4Address = SCTPParameterType(5)
    public static let ipv6Address = SCTPParameterType(6)
    public static let stateCookie = SCTPParameterType(7)
    public static let unrecognizedParameter = SCTPParameterType(8)
    public static let cookiePreservative = SCTPParameterType(9)
    public static let hostNameAddress = SCTPParameterType(11)
    public static let supportedAddressTypes = SCTPParameterType(12)
    // RFC 6525 §4
    public static let outgoingSSNResetRequest = SCTPParameterType(13)
    public static let incomingSSNResetRequest = SCTPParameterType(14)
    public static let ssnTSNResetRequest = SCTPParameterType(15)
    public static let reconfigResponse = SCTPParameterType(16)
    public static let addOutgoingStreams = SCTPParameterType(17)
    public static let addIncomingStreams = SCTPParameterType(18)
    /// RFC 9260 §3.3.2.1 (reserved for ECN Capable)
    public static let ecnCapable = SCTPParameterType(0x8000)
    /// RFC 9653 §4
    public static let zeroChecksumAcceptable = SCTPParameterType(0x8001)
    // RFC 4895 (SCTP-AUTH); kept as unknown parameters.
    public static let random = SCTPParameterType(0x8002)
    public static let chunkList = SCTPParameterType(0x8003)
    public static let requestedHMACAlgorithm = SCTPParameterType(0x8004)
    /// RFC 5061 §4.2.7
    public static let supportedExtensions = SCTPParameterType(0x8008)
    /// RFC 3758 §3.1
    public static let forwardTSNSupported = SCTPParameterType(0xC000)

    /// RFC 9260 §3.2.1: the two highest bits of the type.
    public var unrecognizedAction: SCTPUnrecognizedAction {
        SCTPUnrecognizedAction(highBits: UInt8(truncatingIfNeeded: rawValue >> 14))
    }

    public var description: String { "0x" + hex(rawValue) }
}

/// An error cause code (RFC 9260 §3.3.10).
public struct SCTPErrorCauseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16

    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    public init(_ rawValue: UInt16) {
        self.rawValue = rawValue
    }

    public static let invalidStreamIdentifier = SCTPErrorCauseCode(1)
    public static let missingMandatoryParameter = SCTPErrorCauseCode(2)
    public static let staleCookie = SCTPErrorCauseCode(3)
    public static let outOfResource = SCTPErrorCauseCode(4)
    public static let unresolvableAddress = SCTPErrorCauseCode(5)
    public static let unrecognizedChunkType = SCTPErrorCauseCode(6)
    public static let invalidMandatoryParameter = SCTPErrorCauseCode(7)
    public static let unrecognizedParameters = SCTPErrorCauseCode(8)
    public static let noUserData = SCTPErrorCauseCode(9)
    public static let cookieReceivedWhileShuttingDown = SCTPErrorCauseCode(10)
    public static let restartWithNewAddresses = SCTPErrorCauseCode(11)
    public static let userInitiatedAbort = SCTPErrorCauseCode(12)
    public static let protocolViolation = SCTPErrorCauseCode(13)

    public var description: String { String(rawValue) }
}

/// Bounds on everything the decoder accepts (and the encoder produces, so that
/// whatever encodes also decodes), and on what a receiving association holds
/// for its peer. Every count of the decoder is also bounded by the packet
/// length; these keep the work and memory per packet small and predictable
/// for the association that consumes the chunks.
///
/// What a receiver holds for its peer (fragments, messages waiting for their
/// turn, whole messages not read yet) is charged as its user data plus
/// `receivedChunkOverhead` per fragment or message, and never exceeds the
/// receive window plus `maximumReceiveWindowOverrun` of those bytes. With
/// the defaults and tern's 6 MiB window that is at most 6.5 MiB charged,
/// and at most about 26,500 fragments or messages (a DATA chunk without
/// user data ends the association, RFC 9260 §6.2).
public struct SCTPLimits: Hashable, Sendable {
    /// Largest packet. SCTP over DTLS carries each packet as the payload of
    /// one DTLS record (RFC 8261 §3), whose plaintext is at most 2^14 bytes.
    public var maximumPacketLength: Int
    /// Most chunks in one packet. A 1200-byte path fits at most about sixty
    /// DATA chunks (20 bytes each at least); the default leaves room for
    /// larger MTUs.
    public var maximumChunksPerPacket: Int
    /// Most parameters in one INIT, INIT ACK or RE-CONFIG chunk. Browsers'
    /// INITs carry about six.
    public var maximumParametersPerChunk: Int
    /// Most error causes in one ABORT or ERROR chunk.
    public var maximumErrorCausesPerChunk: Int
    /// Most gap ack blocks in a SACK. A full 1200-byte SACK holds fewer than 300.
    public var maximumGapAckBlocks: Int
    /// Most duplicate TSNs in a SACK.
    public var maximumDuplicateTSNs: Int
    /// Most stream entries in a FORWARD-TSN or a stream reset request.
    public var maximumStreamsPerChunk: Int
    /// Most entries in the other lists: supported extensions, supported
    /// address types, missing mandatory parameters.
    public var maximumListEntries: Int
    /// Longest state cookie (INIT ACK parameter, COOKIE ECHO). usrsctp's
    /// cookies, which embed the INIT and INIT ACK, run to a few hundred bytes.
    public var maximumCookieLength: Int
    /// Longest heartbeat information. Browsers send under 64 bytes.
    public var maximumHeartbeatInfoLength: Int
    /// Bytes a receiver charges against its receive window for each
    /// fragment or message it holds, on top of its user data (RFC 9260
    /// §6.2 leaves the accounting to the receiver). Holding one costs more
    /// than its bytes (its fields, its array, its dictionary entries), and
    /// without the charge a peer could hold memory the window does not see
    /// with many chunks of a byte or none. Default 256, what the FreeBSD
    /// stack (usrsctp, in browsers) charges per held chunk. A sending
    /// association charges the same per chunk in flight, so that it does
    /// not overrun a receiver that counts this way.
    public var receivedChunkOverhead: Int
    /// How far past its advertised receive window, in charged bytes, a
    /// receiver still accepts the next TSN in order (RFC 9260 §6.2 asks for
    /// progress: that chunk lets the message at the cumulative TSN finish
    /// and be delivered, and it is the sender's zero window probe). Beyond
    /// it every DATA chunk is dropped. Default 512 KiB: one 256 KiB message
    /// (the max-message-size tern announces) in 484-byte fragments (the
    /// smallest MTU) with their charge.
    public var maximumReceiveWindowOverrun: Int
    /// Separate runs of TSNs a receiver keeps above its cumulative TSN
    /// (each one a gap ack block in its SACKs). A DATA chunk that would
    /// start one more is dropped, not acknowledged, so a peer that sends
    /// every second TSN cannot make the list grow. Default 256; a SACK in
    /// a 1200-byte packet has room for fewer than 300 blocks.
    public var maximumReceivedGaps: Int
    /// How far above its cumulative TSN a receiver takes a TSN; beyond it
    /// a chunk could not be inside the receive window anyway. Default 2^20.
    public var maximumTSNDistance: UInt32
    /// Duplicate TSNs a receiver reports per SACK (RFC 9260 §3.3.4 leaves
    /// the number open); more are counted once, not listed. Default 32.
    public var maximumReportedDuplicates: Int

    public init(
        maximumPacketLength: Int = 16_384,
        maximumChunksPerPacket: Int = 512,
        maximumParametersPerChunk: Int = 64,
        maximumErrorCausesPerChunk: Int = 32,
        maximumGapAckBlocks: Int = 1024,
        maximumDuplicateTSNs: Int = 1024,
        maximumStreamsPerChunk: Int = 1024,
        maximumListEntries: Int = 256,
        maximumCookieLength: Int = 4096,
        maximumHeartbeatInfoLength: Int = 1024,
        receivedChunkOverhead: Int = 256,
        maximumReceiveWindowOverrun: Int = 512 * 1024,
        maximumReceivedGaps: Int = 256,
        maximumTSNDistance: UInt32 = 1 << 20,
        maximumReportedDuplicates: Int = 32
    ) {
        self.maximumPacketLength = maximumPacketLength
        self.maximumChunksPerPacket = maximumChunksPerPacket
        self.maximumParametersPerChunk = maximumParametersPerChunk
        self.maximumErrorCausesPerChunk = maximumErrorCausesPerChunk
        self.maximumGapAckBlocks = maximumGapAckBlocks
        self.maximumDuplicateTSNs = maximumDuplicateTSNs
        self.maximumStreamsPerChunk = maximumStreamsPerChunk
        self.maximumListEntries = maximumListEntries
        self.maximumCookieLength = maximumCookieLength
        self.maximumHeartbeatInfoLength = maximumHeartbeatInfoLength
        self.receivedChunkOverhead = max(receivedChunkOverhead, 0)
        self.maximumReceiveWindowOverrun = max(maximumReceiveWindowOverrun, 0)
        self.maximumReceivedGaps = max(maximumReceivedGaps, 1)
        self.maximumTSNDistance = maximumTSNDistance
        self.maximumReportedDuplicates = max(maximumReportedDuplicates, 0)
    }

    public static let `default` = SCTPLimits()
}

// MARK: - Lists backed by the packet's bytes

/// A fixed-size value that SCTP lists back to back: a stream identifier, a
/// TSN, a gap ack block, a chunk type.
public protocol SCTPWireElement: Hashable, Sendable {
    /// Bytes per element on the wire.
    static var wireSize: Int { get }
    /// Reads the element (`wireSize` bytes) at the reader's position.
    static func read(_ reader: inout WireReader) throws(WireError) -> Self
    /// Appends the element's wire form.
    func write(to buffer: inout [UInt8])
}

/// A list of fixed-size elements that stays in the bytes it was decoded from:
/// decoding a SACK's gap ack blocks or a FORWARD-TSN's streams slices the
/// packet instead of allocating an array per chunk. Built from elements, it
/// encodes them into a fresh buffer once.
///
/// Two lists are equal when their elements are; each element type has exactly
/// one wire form, so comparing bytes compares elements.
public struct SCTPWireList<Element: SCTPWireElement>: RandomAccessCollection, Hashable, Sendable, ExpressibleByArrayLiteral,
    CustomStringConvertible
{
    /// The elements as they are on the wire; `count * Element.wireSize` bytes.
    public let wireBytes: ArraySlice<UInt8>

    /// `bytes.count` must be a multiple of `Element.wireSize`; the decoder checks.
    init(wireBytes bytes: ArraySlice<UInt8>) {
        wireBytes = bytes
    }

    public init(_ elements: some Sequence<Element>) {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(elements.underestimatedCount * Element.wireSize)
        for element in elements { element.write(to: &buffer) }
        wireBytes = buffer[...]
    }

    public init(arrayLiteral elements: Element...) {
        self.init(elements)
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { wireBytes.count / Element.wireSize }

    public subscript(position: Int) -> Element {
        precondition(position >= 0 && position < endIndex, "SCTPWireList index out of range")
        var reader = WireReader(wireBytes)
        // The position is inside the list (checked above) and the list holds
        // whole elements (its decoder checks), so these reads cannot fail.
        do {
            try reader.skip(position * Element.wireSize)
            return try Element.read(&reader)
        } catch {
            preconditionFailure("SCTPWireList: \(error)")
        }
    }

    public var description: String { "[" + map { "\($0)" }.joined(separator: ", ") + "]" }
}

extension UInt16: SCTPWireElement {
    public static var wireSize: Int { 2 }
    public static func read(_ reader: inout WireReader) throws(WireError) -> UInt16 { try reader.readUInt16() }
    public func write(to buffer: inout [UInt8]) { buffer.appendBigEndian(self) }
}

extension UInt32: SCTPWireElement {
    public static var wireSize: Int { 4 }
    public static func read(_ reader: inout WireReader) throws(WireError) -> UInt32 { try reader.readUInt32() }
    public func write(to buffer: inout [UInt8]) { buffer.appendBigEndian(self) }
}

extension SCTPChunkType: SCTPWireElement {
    public static var wireSize: Int { 1 }
    public static func read(_ reader: inout WireReader) throws(WireError) -> SCTPChunkType { SCTPChunkType(try reader.readUInt8()) }
    public func write(to buffer: inout [UInt8]) { buffer.append(rawValue) }
}

/// A SACK gap ack block (RFC 9260 §3.3.4): TSNs from `cumulativeTSNAck + start`
/// through `cumulativeTSNAck + end` arrived. The decoder keeps the offsets as
/// sent; whether they are ordered and non-overlapping is the association's
/// concern.
public struct SCTPGapAckBlock: SCTPWireElement, CustomStringConvertible {
    public var start: UInt16
    public var end: UInt16

    public init(start: UInt16, end: UInt16) {
        self.start = start
        self.end = end
    }

    public static var wireSize: Int { 4 }
    public static func read(_ reader: inout WireReader) throws(WireError) -> SCTPGapAckBlock {
        SCTPGapAckBlock(start: try reader.readUInt16(), end: try reader.readUInt16())
    }
    public func write(to buffer: inout [UInt8]) {
        buffer.appendBigEndian(start)
        buffer.appendBigEndian(end)
    }

    public var description: String { "\(start)-\(end)" }
}

/// One stream entry of a FORWARD-TSN chunk (RFC 3758 §3.2): the largest
/// stream sequence number skipped on an ordered stream.
public struct SCTPForwardTSNStream: SCTPWireElement, CustomStringConvertible {
    public var streamID: UInt16
    public var ssn: UInt16

    public init(streamID: UInt16, ssn: UInt16) {
        self.streamID = streamID
        self.ssn = ssn
    }

    public static var wireSize: Int { 4 }
    public static func read(_ reader: inout WireReader) throws(WireError) -> SCTPForwardTSNStream {
        SCTPForwardTSNStream(streamID: try reader.readUInt16(), ssn: try reader.readUInt16())
    }
    public func write(to buffer: inout [UInt8]) {
        buffer.appendBigEndian(streamID)
        buffer.appendBigEndian(ssn)
    }

    public var description: String { "\(streamID):\(ssn)" }
}
