// Chunks (RFC 9260 §3.2, §3.3; RFC 3758 §3.2; RFC 6525 §3.1): the values,
// and their decoding from and encoding into the bytes of a packet.
//
// Every chunk starts with a type, flags and a 16-bit length that counts the
// header and the value but not the zero padding up to a multiple of four
// (RFC 9260 §3.2). Flags a chunk type does not define are sent as zero and
// ignored on receipt.

import TernWire

/// A DATA chunk (RFC 9260 §3.3.1). `userData` is a slice of the received
/// packet, not a copy.
///
/// A DATA chunk without user data decodes (its length is 16); RFC 9260 §6.2
/// has the association answer it with an ABORT carrying "No User Data".
public struct SCTPDataChunk: Hashable, Sendable {
    /// RFC 9260 §3.3.1: the chunk flags of DATA.
    public struct Flags: OptionSet, Hashable, Sendable {
        public var rawValue: UInt8

        public init(rawValue: UInt8) {
            self.rawValue = rawValue
        }

        /// E: the last fragment of a user message.
        public static let end = Flags(rawValue: 0x01)
        /// B: the first fragment of a user message.
        public static let beginning = Flags(rawValue: 0x02)
        /// U: unordered; the stream sequence number is meaningless.
        public static let unordered = Flags(rawValue: 0x04)
        /// I: the sender asks for a SACK without delay.
        public static let immediate = Flags(rawValue: 0x08)
        /// B and E: a whole, unfragmented message.
        public static let complete: Flags = [.beginning, .end]

        /// The four defined bits; the others are reserved, sent as zero and ignored.
        static let defined: Flags = [.end, .beginning, .unordered, .immediate]
    }

    /// Type, flags, length, TSN, stream identifier, SSN, PPID.
    public static let headerLength = 16

    public var flags: Flags
    /// Transmission sequence number.
    public var tsn: UInt32
    /// Stream identifier.
    public var streamID: UInt16
    /// Stream sequence number.
    public var ssn: UInt16
    /// Payload protocol identifier, opaque to SCTP (RFC 8831 §8 lists WebRTC's).
    public var ppid: UInt32
    public var userData: ArraySlice<UInt8>

    public init(tsn: UInt32, streamID: UInt16, ssn: UInt16, ppid: UInt32, userData: ArraySlice<UInt8>, flags: Flags = .complete) {
        self.flags = flags
        self.tsn = tsn
        self.streamID = streamID
        self.ssn = ssn
        self.ppid = ppid
        self.userData = userData
    }

    public init(tsn: UInt32, streamID: UInt16, ssn: UInt16, ppid: UInt32, userData: [UInt8], flags: Flags = .complete) {
        self.init(tsn: tsn, streamID: streamID, ssn: ssn, ppid: ppid, userData: userData[...], flags: flags)
    }

    /// RFC 9260 §3.3.1: the value after the chunk header. The one reading
    /// of a DATA chunk: the packet decoder and the association's decoder
    /// (`SCTPWire.decode`, the receiving data path) both call it.
    @inline(__always)
    static func decode(flags: UInt8, value: ArraySlice<UInt8>) throws(SCTPError) -> SCTPDataChunk {
        var reader = WireReader(value)
        do {
            let tsn = try reader.readUInt32(), stream = try reader.readUInt16(), ssn = try reader.readUInt16()
            let ppid = try reader.readUInt32()
            return SCTPDataChunk(
                tsn: tsn, streamID: stream, ssn: ssn, ppid: ppid, userData: reader.readRemaining(),
                flags: Flags(rawValue: flags).intersection(.defined))
        } catch {
            throw .chunkLengthInvalid(type: .data, length: value.count + 4)
        }
    }

    /// Appends the chunk and its padding.
    public func encode(into buffer: inout [UInt8]) throws(SCTPError) {
        try Self.write(tsn: tsn, stream: streamID, ssn: ssn, ppid: ppid, flags: flags, userData: userData, into: &buffer)
    }

    /// RFC 9260 §3.3.1: the one writing of a DATA chunk, for the packet
    /// encoder and the association's (`SCTPWire.encode`, the sending data
    /// path). The header goes in as two 64-bit words, then one copy of the
    /// user data and the padding.
    @inline(__always)
    static func write(tsn: UInt32, stream: UInt16, ssn: UInt16, ppid: UInt32, flags: Flags, userData: ArraySlice<UInt8>,
                      into buffer: inout [UInt8]) throws(SCTPError)
    {
        let length = headerLength + userData.count
        guard length <= Int(UInt16.max) else { throw .chunkTooLong(type: .data, length: length) }
        let start = buffer.count
        buffer.appendBigEndian(
            UInt64(SCTPChunkType.data.rawValue) << 56 | UInt64(flags.intersection(.defined).rawValue) << 48 | UInt64(length) << 32
                | UInt64(tsn))
        buffer.appendBigEndian(UInt64(stream) << 48 | UInt64(ssn) << 32 | UInt64(ppid))
        buffer.append(contentsOf: userData)
        buffer.padToFour(from: start)
    }
}

/// The body of an INIT (RFC 9260 §3.3.2) or INIT ACK (§3.3.3) chunk; the
/// two have the same layout. The decoder checks the layout only: a zero
/// Initiate Tag, zero stream counts or an INIT ACK without a State Cookie
/// are the association's to answer (RFC 9260 §3.3.2, §5.1).
public struct SCTPInitChunk: Hashable, Sendable {
    /// Initiate Tag: the verification tag the sender expects on every packet it receives.
    public var initiateTag: UInt32
    /// a_rwnd: the sender's receive buffer, in bytes.
    public var advertisedWindow: UInt32
    public var outboundStreams: UInt16
    public var inboundStreams: UInt16
    public var initialTSN: UInt32
    public var parameters: [SCTPInitParameter]

    /// Type, flags, length and the five fixed fields.
    static let fixedLength = 20

    public init(initiateTag: UInt32, advertisedWindow: UInt32, outboundStreams: UInt16, inboundStreams: UInt16, initialTSN: UInt32,
                parameters: [SCTPInitParameter] = [])
    {
        self.initiateTag = initiateTag
        self.advertisedWindow = advertisedWindow
        self.outboundStreams = outboundStreams
        self.inboundStreams = inboundStreams
        self.initialTSN = initialTSN
        self.parameters = parameters
    }

    /// The State Cookie, if the chunk has one (RFC 9260 §3.3.3.1).
    public var stateCookie: ArraySlice<UInt8>? {
        for case .stateCookie(let cookie) in parameters { return cookie }
        return nil
    }

    /// Whether the sender announced Forward-TSN-Supported (RFC 3758 §3.1).
    public var supportsForwardTSN: Bool { parameters.contains(.forwardTSNSupported) }

    /// The chunk types of the Supported Extensions parameter (RFC 5061 §4.2.7), if any.
    public var supportedExtensions: SCTPWireList<SCTPChunkType>? {
        for case .supportedExtensions(let types) in parameters { return types }
        return nil
    }

    /// The method of the Zero Checksum Acceptable parameter (RFC 9653 §4), if any.
    public var zeroChecksumEDMID: UInt32? {
        for case .zeroChecksumAcceptable(let edmid) in parameters { return edmid }
        return nil
    }

    static func decode(type: SCTPChunkType, value: ArraySlice<UInt8>, limits: SCTPLimits) throws(SCTPError) -> SCTPInitChunk {
        var reader = WireReader(value)
        let initiateTag, window, initialTSN: UInt32
        let outbound, inbound: UInt16
        do {
            initiateTag = try reader.readUInt32()
            window = try reader.readUInt32()
            outbound = try reader.readUInt16()
            inbound = try reader.readUInt16()
            initialTSN = try reader.readUInt32()
        } catch {
            throw .chunkLengthInvalid(type: type, length: value.count + 4)
        }
        var parameters: [SCTPInitParameter] = []
        var walker = TLVWalker(reader.readRemaining(), in: type)
        while let raw = try walker.next() {
            guard parameters.count < limits.maximumParametersPerChunk else {
                throw .tooManyParameters(chunk: type, limit: limits.maximumParametersPerChunk)
            }
            let parameter = try SCTPInitParameter.decode(raw, limits: limits)
            parameters.append(parameter)
            // RFC 9260 §3.2.1: an unrecognized type whose high bits are 00 or
            // 01 ends the processing of this chunk's parameters.
            if case .unknown(let unknown, _) = parameter, unknown.unrecognizedAction.stopsProcessing { break }
        }
        return SCTPInitChunk(
            initiateTag: initiateTag, advertisedWindow: window, outboundStreams: outbound, inboundStreams: inbound, initialTSN: initialTSN,
            parameters: parameters)
    }

    func encode(type: SCTPChunkType, into buffer: inout [UInt8], limits: SCTPLimits) throws(SCTPError) {
        guard parameters.count <= limits.maximumParametersPerChunk else {
            throw .tooManyParameters(chunk: type, limit: limits.maximumParametersPerChunk)
        }
        let writer = ChunkWriter(type: type, flags: 0, into: &buffer)
        buffer.appendBigEndian(initiateTag)
        buffer.appendBigEndian(advertisedWindow)
        buffer.appendBigEndian(outboundStreams)
        buffer.appendBigEndian(inboundStreams)
        buffer.appendBigEndian(initialTSN)
        var end = buffer.count
        for parameter in parameters {
            end = try parameter.encode(into: &buffer, limits: limits)
        }
        try writer.finish(&buffer, end: end)
    }
}

/// A SACK chunk (RFC 9260 §3.3.4). The gap ack blocks and duplicate TSNs
/// are views of the received packet.
public struct SCTPSackChunk: Hashable, Sendable {
    public var cumulativeTSNAck: UInt32
    /// a_rwnd: the sender's free receive buffer, in bytes.
    public var advertisedWindow: UInt32
    public var gapAckBlocks: SCTPWireList<SCTPGapAckBlock>
    public var duplicateTSNs: SCTPWireList<UInt32>

    public init(cumulativeTSNAck: UInt32, advertisedWindow: UInt32, gapAckBlocks: SCTPWireList<SCTPGapAckBlock> = [],
                duplicateTSNs: SCTPWireList<UInt32> = [])
    {
        self.cumulativeTSNAck = cumulativeTSNAck
        self.advertisedWindow = advertisedWindow
        self.gapAckBlocks = gapAckBlocks
        self.duplicateTSNs = duplicateTSNs
    }

    static func decode(value: ArraySlice<UInt8>, limits: SCTPLimits) throws(SCTPError) -> SCTPSackChunk {
        var reader = WireReader(value)
        let cumulative, window: UInt32
        let gaps, duplicates: Int
        do {
            cumulative = try reader.readUInt32()
            window = try reader.readUInt32()
            gaps = Int(try reader.readUInt16())
            duplicates = Int(try reader.readUInt16())
        } catch {
            throw .chunkLengthInvalid(type: .sack, length: value.count + 4)
        }
        // RFC 9260 §3.3.4: the two counts fix the length exactly.
        guard reader.remaining == 4 * gaps + 4 * duplicates else {
            throw .sackLengthMismatch(length: value.count + 4, gapAckBlocks: gaps, duplicateTSNs: duplicates)
        }
        try checkCounts(gaps: gaps, duplicates: duplicates, limits: limits)
        let gapBytes = reader.readRemaining()
        return SCTPSackChunk(
            cumulativeTSNAck: cumulative, advertisedWindow: window,
            gapAckBlocks: SCTPWireList(wireBytes: gapBytes.prefix(4 * gaps)), duplicateTSNs: SCTPWireList(wireBytes: gapBytes.dropFirst(4 * gaps)))
    }

    static func checkCounts(gaps: Int, duplicates: Int, limits: SCTPLimits) throws(SCTPError) {
        guard gaps <= limits.maximumGapAckBlocks else { throw .tooManyGapAckBlocks(count: gaps, limit: limits.maximumGapAckBlocks) }
        guard duplicates <= limits.maximumDuplicateTSNs else {
            throw .tooManyDuplicateTSNs(count: duplicates, limit: limits.maximumDuplicateTSNs)
        }
    }

    /// Appends the chunk: a header and two copies of the lists' bytes.
    public func encode(into buffer: inout [UInt8], limits: SCTPLimits = .default) throws(SCTPError) {
        try Self.writeHeader(
            cumulativeTSNAck: cumulativeTSNAck, advertisedWindow: advertisedWindow, gaps: gapAckBlocks.count, duplicates: duplicateTSNs.count,
            limits: limits, into: &buffer)
        buffer.append(contentsOf: gapAckBlocks.wireBytes)
        buffer.append(contentsOf: duplicateTSNs.wireBytes)
    }

    /// RFC 9260 §3.3.4: the one writing of a SACK's header and fixed fields,
    /// for the packet encoder and the association's (`SCTPWire.encode`);
    /// the caller appends the `gaps` blocks and `duplicates` TSNs after it.
    @inline(__always)
    static func writeHeader(cumulativeTSNAck: UInt32, advertisedWindow: UInt32, gaps: Int, duplicates: Int, limits: SCTPLimits,
                            into buffer: inout [UInt8]) throws(SCTPError)
    {
        try checkCounts(gaps: gaps, duplicates: duplicates, limits: limits)
        let length = 16 + 4 * gaps + 4 * duplicates
        guard length <= Int(UInt16.max) else { throw .chunkTooLong(type: .sack, length: length) }
        buffer.appendBigEndian(UInt32(SCTPChunkType.sack.rawValue) << 24 | UInt32(length))
        buffer.appendBigEndian(UInt64(cumulativeTSNAck) << 32 | UInt64(advertisedWindow))
        buffer.appendBigEndian(UInt32(gaps) << 16 | UInt32(duplicates))
    }
}

/// A FORWARD-TSN chunk (RFC 3758 §3.2): the receiver moves its cumulative
/// TSN to `newCumulativeTSN`, and skips each listed ordered stream up to the
/// given stream sequence number.
public struct SCTPForwardTSNChunk: Hashable, Sendable {
    public var newCumulativeTSN: UInt32
    public var streams: SCTPWireList<SCTPForwardTSNStream>

    public init(newCumulativeTSN: UInt32, streams: SCTPWireList<SCTPForwardTSNStream> = []) {
        self.newCumulativeTSN = newCumulativeTSN
        self.streams = streams
    }

    static func decode(value: ArraySlice<UInt8>, limits: SCTPLimits) throws(SCTPError) -> SCTPForwardTSNChunk {
        var reader = WireReader(value)
        guard let cumulative = try? reader.readUInt32(), reader.remaining % 4 == 0 else {
            throw .chunkLengthInvalid(type: .forwardTSN, length: value.count + 4)
        }
        let count = reader.remaining / 4
        guard count <= limits.maximumStreamsPerChunk else { throw .tooManyStreams(count: count, limit: limits.maximumStreamsPerChunk) }
        return SCTPForwardTSNChunk(newCumulativeTSN: cumulative, streams: SCTPWireList(wireBytes: reader.readRemaining()))
    }

    func encode(into buffer: inout [UInt8], limits: SCTPLimits) throws(SCTPError) {
        guard streams.count <= limits.maximumStreamsPerChunk else {
            throw .tooManyStreams(count: streams.count, limit: limits.maximumStreamsPerChunk)
        }
        let writer = ChunkWriter(type: .forwardTSN, flags: 0, into: &buffer)
        buffer.appendBigEndian(newCumulativeTSN)
        buffer.append(contentsOf: streams.wireBytes)
        try writer.finish(&buffer)
    }
}

/// A RE-CONFIG chunk (RFC 6525 §3.1): one or two re-configuration
/// parameters. Which pairs make sense (RFC 6525 §3.1 lists them) is the
/// association's to check.
public struct SCTPReconfigChunk: Hashable, Sendable {
    public var first: SCTPReconfigParameter
    public var second: SCTPReconfigParameter?

    public init(_ first: SCTPReconfigParameter, _ second: SCTPReconfigParameter? = nil) {
        self.first = first
        self.second = second
    }

    public var parameters: [SCTPReconfigParameter] { second.map { [first, $0] } ?? [first] }

    static func decode(value: ArraySlice<UInt8>, limits: SCTPLimits) throws(SCTPError) -> SCTPReconfigChunk {
        var walker = TLVWalker(value, in: .reconfig)
        var parameters: [SCTPReconfigParameter] = []
        while let raw = try walker.next() {
            // One more than allowed is enough to know the chunk is malformed.
            guard parameters.count < 2 else { throw .reconfigParameterCount(parameters.count + 1) }
            let parameter = try SCTPReconfigParameter.decode(raw, limits: limits)
            parameters.append(parameter)
            // RFC 9260 §3.2.1, as for INIT parameters.
            if case .unknown(let unknown, _) = parameter, unknown.unrecognizedAction.stopsProcessing { break }
        }
        guard let first = parameters.first else { throw .reconfigParameterCount(0) }
        return SCTPReconfigChunk(first, parameters.count > 1 ? parameters[1] : nil)
    }

    func encode(into buffer: inout [UInt8], limits: SCTPLimits) throws(SCTPError) {
        let writer = ChunkWriter(type: .reconfig, flags: 0, into: &buffer)
        var end = try first.encode(into: &buffer, limits: limits)
        if let second { end = try second.encode(into: &buffer, limits: limits) }
        try writer.finish(&buffer, end: end)
    }
}

/// A chunk of a type this codec does not decode, kept as received. Its
/// type's two high bits say what the receiver must do (RFC 9260 §3.2); the
/// packet decoder applies the "stop" half itself (an unknown chunk that says
/// stop is the last in the list), and `SCTPErrorCause.reporting(_:)` builds
/// the report for the other half.
public struct SCTPUnknownChunk: Hashable, Sendable {
    public var type: SCTPChunkType
    public var flags: UInt8
    public var value: ArraySlice<UInt8>

    public init(type: SCTPChunkType, flags: UInt8, value: ArraySlice<UInt8>) {
        self.type = type
        self.flags = flags
        self.value = value
    }

    public var action: SCTPUnrecognizedAction { type.unrecognizedAction }
}

/// One chunk of an SCTP packet.
public enum SCTPChunk: Hashable, Sendable {
    case data(SCTPDataChunk)
    /// INIT (RFC 9260 §3.3.2)
    case initiation(SCTPInitChunk)
    /// INIT ACK (RFC 9260 §3.3.3)
    case initiationAck(SCTPInitChunk)
    case sack(SCTPSackChunk)
    /// HEARTBEAT (RFC 9260 §3.3.5): the value of its Heartbeat Info parameter,
    /// opaque to the receiver, which echoes it.
    case heartbeat(info: ArraySlice<UInt8>)
    /// HEARTBEAT ACK (RFC 9260 §3.3.6): the echoed heartbeat information.
    case heartbeatAck(info: ArraySlice<UInt8>)
    /// ABORT (RFC 9260 §3.3.7). `tagReflected` is the T bit: the packet's
    /// verification tag is the receiver's own, not the sender's.
    case abort(tagReflected: Bool, causes: [SCTPErrorCause])
    /// SHUTDOWN (RFC 9260 §3.3.8)
    case shutdown(cumulativeTSNAck: UInt32)
    /// SHUTDOWN ACK (RFC 9260 §3.3.9)
    case shutdownAck
    /// ERROR (RFC 9260 §3.3.10)
    case error(causes: [SCTPErrorCause])
    /// COOKIE ECHO (RFC 9260 §3.3.11)
    case cookieEcho(cookie: ArraySlice<UInt8>)
    /// COOKIE ACK (RFC 9260 §3.3.12)
    case cookieAck
    /// SHUTDOWN COMPLETE (RFC 9260 §3.3.13), with the T bit as for ABORT.
    case shutdownComplete(tagReflected: Bool)
    /// FORWARD-TSN (RFC 3758 §3.2)
    case forwardTSN(SCTPForwardTSNChunk)
    /// RE-CONFIG (RFC 6525 §3.1)
    case reconfig(SCTPReconfigChunk)
    /// ECN Echo (ECNE, RFC 9260 Appendix A): the lowest TSN of the packets
    /// that arrived marked Congestion Experienced since the last CWR; and,
    /// in the longer form of draft-stewart-tsvwg-sctpecn (§3.2, a chunk
    /// length of 12), how many such packets arrived.
    case ecnEcho(lowestTSN: UInt32, markedPackets: UInt32?)
    /// Congestion Window Reduced (CWR, RFC 9260 Appendix A): the sender
    /// reduced its window for the ECNE that carried this TSN.
    case cwr(lowestTSN: UInt32)
    /// Any other type. Use it only for types the decoder does not know; a
    /// known type encoded this way decodes as that type.
    case unknown(SCTPUnknownChunk)

    public var type: SCTPChunkType {
        switch self {
        case .data: return .data
        case .initiation: return .initiation
        case .initiationAck: return .initiationAck
        case .sack: return .sack
        case .heartbeat: return .heartbeat
        case .heartbeatAck: return .heartbeatAck
        case .abort: return .abort
        case .shutdown: return .shutdown
        case .shutdownAck: return .shutdownAck
        case .error: return .error
        case .cookieEcho: return .cookieEcho
        case .cookieAck: return .cookieAck
        case .shutdownComplete: return .shutdownComplete
        case .forwardTSN: return .forwardTSN
        case .reconfig: return .reconfig
        case .ecnEcho: return .ecne
        case .cwr: return .cwr
        case .unknown(let chunk): return chunk.type
        }
    }

    /// The T bit of ABORT and SHUTDOWN COMPLETE (RFC 9260 §3.3.7, §3.3.13).
    static let tagReflectedFlag: UInt8 = 0x01

    /// Decodes the chunk at the start of `bytes` (what follows the common
    /// header, or what is left of it after earlier chunks). Returns the chunk
    /// and how many bytes it takes, its padding included.
    ///
    /// The chunk and its padding must fit in `bytes` (RFC 9260 §3.2: every
    /// chunk is padded to a multiple of four bytes, the last one too); the
    /// padding bytes themselves are ignored.
    public static func decode(_ bytes: ArraySlice<UInt8>, limits: SCTPLimits = .default) throws(SCTPError) -> (chunk: SCTPChunk, length: Int) {
        guard !bytes.isEmpty else { throw .noChunks }
        var reader = WireReader(bytes)
        let raw = try readRaw(&reader)
        return (try decodeValue(type: raw.type, flags: raw.flags, value: raw.value, limits: limits), reader.offset)
    }

    /// One chunk as it sits in the packet: header fields and value.
    struct Raw {
        var type: SCTPChunkType
        var flags: UInt8
        var value: ArraySlice<UInt8>
    }

    /// Reads the chunk header at the reader's position, then the value and
    /// its padding: the one reading of the chunk framing (RFC 9260 §3.2),
    /// for both packet decoders. The chunk and its padding must fit in what
    /// is left (every chunk is padded to a multiple of four bytes, the last
    /// one too); the padding bytes themselves are ignored.
    @inline(__always)
    static func readRaw(_ reader: inout WireReader) throws(SCTPError) -> Raw {
        let available = reader.remaining
        guard let header = reader.peekInteger(as: UInt32.self) else { throw .trailingBytes(count: available) }
        let type = SCTPChunkType(UInt8(truncatingIfNeeded: header >> 24))
        let length = Int(header & 0xFFFF)
        guard length >= 4 else { throw .chunkLengthInvalid(type: type, length: length) }
        guard length <= available else { throw .chunkOverrun(type: type, length: length, available: available) }
        guard paddedToFour(length) <= available else { throw .chunkPaddingMissing(type: type) }
        do {
            try reader.skip(4)
            let value = try reader.readSlice(count: length &- 4)
            try reader.skip(paddedToFour(length) &- length)
            return Raw(type: type, flags: UInt8(truncatingIfNeeded: header >> 16), value: value)
        } catch {
            // Checked above: the whole padded chunk is there.
            throw .chunkOverrun(type: type, length: length, available: available)
        }
    }

    /// RFC 9260 §3.2: an unrecognized chunk type whose high bits are 00 or
    /// 01 ends the processing of the packet; this chunk is the last read.
    var stopsPacket: Bool {
        if case .unknown(let unknown) = self { return unknown.action.stopsProcessing }
        return false
    }

    static func decodeValue(type: SCTPChunkType, flags: UInt8, value: ArraySlice<UInt8>, limits: SCTPLimits) throws(SCTPError) -> SCTPChunk {
        func expectEmpty() throws(SCTPError) {
            guard value.isEmpty else { throw .chunkLengthInvalid(type: type, length: value.count + 4) }
        }
        switch type {
        case .data:
            return .data(try SCTPDataChunk.decode(flags: flags, value: value))
        case .initiation:
            return .initiation(try SCTPInitChunk.decode(type: type, value: value, limits: limits))
        case .initiationAck:
            return .initiationAck(try SCTPInitChunk.decode(type: type, value: value, limits: limits))
        case .sack:
            return .sack(try SCTPSackChunk.decode(value: value, limits: limits))
        case .heartbeat:
            return .heartbeat(info: try decodeHeartbeatInfo(type: type, value: value, limits: limits))
        case .heartbeatAck:
            return .heartbeatAck(info: try decodeHeartbeatInfo(type: type, value: value, limits: limits))
        case .abort:
            return .abort(tagReflected: flags & tagReflectedFlag != 0, causes: try decodeCauses(type: type, value: value, limits: limits))
        case .shutdown:
            return .shutdown(cumulativeTSNAck: try readWhole(value, orThrow: .chunkLengthInvalid(type: type, length: value.count + 4)) {
                reader throws(WireError) in try reader.readUInt32()
            })
        case .shutdownAck:
            try expectEmpty()
            return .shutdownAck
        case .error:
            return .error(causes: try decodeCauses(type: type, value: value, limits: limits))
        case .cookieEcho:
            guard value.count <= limits.maximumCookieLength else {
                throw .cookieTooLong(length: value.count, limit: limits.maximumCookieLength)
            }
            return .cookieEcho(cookie: value)
        case .cookieAck:
            try expectEmpty()
            return .cookieAck
        case .shutdownComplete:
            try expectEmpty()
            return .shutdownComplete(tagReflected: flags & tagReflectedFlag != 0)
        case .forwardTSN:
            return .forwardTSN(try SCTPForwardTSNChunk.decode(value: value, limits: limits))
        case .reconfig:
            return .reconfig(try SCTPReconfigChunk.decode(value: value, limits: limits))
        case .ecne:
            // A TSN, and optionally the count of marked packets: 8 or 12 bytes in all.
            return try readWhole(value, orThrow: .chunkLengthInvalid(type: type, length: value.count + 4)) { reader throws(WireError) in
                let tsn = try reader.readUInt32()
                return .ecnEcho(lowestTSN: tsn, markedPackets: reader.isAtEnd ? nil : try reader.readUInt32())
            }
        case .cwr:
            return .cwr(lowestTSN: try readWhole(value, orThrow: .chunkLengthInvalid(type: type, length: value.count + 4)) {
                reader throws(WireError) in try reader.readUInt32()
            })
        default:
            return .unknown(SCTPUnknownChunk(type: type, flags: flags, value: value))
        }
    }

    /// RFC 9260 §3.3.5, §3.3.6: the value is one Heartbeat Info parameter.
    static func decodeHeartbeatInfo(type: SCTPChunkType, value: ArraySlice<UInt8>, limits: SCTPLimits) throws(SCTPError) -> ArraySlice<UInt8> {
        var walker = TLVWalker(value, in: type)
        guard let info = try walker.next(), info.type == SCTPParameterType.heartbeatInfo.rawValue, try walker.next() == nil else {
            throw .heartbeatInfoInvalid(type)
        }
        guard info.value.count <= limits.maximumHeartbeatInfoLength else {
            throw .heartbeatInfoTooLong(length: info.value.count, limit: limits.maximumHeartbeatInfoLength)
        }
        return info.value
    }

    static func decodeCauses(type: SCTPChunkType, value: ArraySlice<UInt8>, limits: SCTPLimits) throws(SCTPError) -> [SCTPErrorCause] {
        var walker = TLVWalker(value, in: type)
        var causes: [SCTPErrorCause] = []
        while let raw = try walker.next() {
            guard causes.count < limits.maximumErrorCausesPerChunk else {
                throw .tooManyErrorCauses(chunk: type, limit: limits.maximumErrorCausesPerChunk)
            }
            causes.append(try SCTPErrorCause.decode(raw, limits: limits))
        }
        return causes
    }

    /// Appends the chunk and its padding. On a throw, `buffer` is as it was.
    public func encode(into buffer: inout [UInt8], limits: SCTPLimits = .default) throws(SCTPError) {
        let start = buffer.count
        do {
            try encodeUnchecked(into: &buffer, limits: limits)
        } catch {
            buffer.removeSubrange(start...)
            throw error
        }
    }

    private func encodeUnchecked(into buffer: inout [UInt8], limits: SCTPLimits) throws(SCTPError) {
        switch self {
        case .data(let chunk):
            try chunk.encode(into: &buffer)
        case .initiation(let chunk), .initiationAck(let chunk):
            try chunk.encode(type: type, into: &buffer, limits: limits)
        case .sack(let chunk):
            try chunk.encode(into: &buffer, limits: limits)
        case .heartbeat(let info), .heartbeatAck(let info):
            guard info.count <= limits.maximumHeartbeatInfoLength else {
                throw .heartbeatInfoTooLong(length: info.count, limit: limits.maximumHeartbeatInfoLength)
            }
            let writer = ChunkWriter(type: type, flags: 0, into: &buffer)
            let end = try appendTLV(type: SCTPParameterType.heartbeatInfo.rawValue, into: &buffer) { $0.append(contentsOf: info) }
            try writer.finish(&buffer, end: end)
        case .abort(let tagReflected, let causes):
            try Self.encodeCauses(causes, type: type, flags: tagReflected ? Self.tagReflectedFlag : 0, into: &buffer, limits: limits)
        case .error(let causes):
            try Self.encodeCauses(causes, type: type, flags: 0, into: &buffer, limits: limits)
        case .shutdown(let cumulativeTSNAck), .cwr(let cumulativeTSNAck):
            let writer = ChunkWriter(type: type, flags: 0, into: &buffer)
            buffer.appendBigEndian(cumulativeTSNAck)
            try writer.finish(&buffer)
        case .ecnEcho(let lowestTSN, let markedPackets):
            let writer = ChunkWriter(type: type, flags: 0, into: &buffer)
            buffer.appendBigEndian(lowestTSN)
            if let markedPackets { buffer.appendBigEndian(markedPackets) }
            try writer.finish(&buffer)
        case .shutdownAck, .cookieAck:
            try ChunkWriter(type: type, flags: 0, into: &buffer).finish(&buffer)
        case .shutdownComplete(let tagReflected):
            try ChunkWriter(type: type, flags: tagReflected ? Self.tagReflectedFlag : 0, into: &buffer).finish(&buffer)
        case .cookieEcho(let cookie):
            guard cookie.count <= limits.maximumCookieLength else {
                throw .cookieTooLong(length: cookie.count, limit: limits.maximumCookieLength)
            }
            let writer = ChunkWriter(type: type, flags: 0, into: &buffer)
            buffer.append(contentsOf: cookie)
            try writer.finish(&buffer)
        case .forwardTSN(let chunk):
            try chunk.encode(into: &buffer, limits: limits)
        case .reconfig(let chunk):
            try chunk.encode(into: &buffer, limits: limits)
        case .unknown(let chunk):
            let writer = ChunkWriter(type: chunk.type, flags: chunk.flags, into: &buffer)
            buffer.append(contentsOf: chunk.value)
            try writer.finish(&buffer)
        }
    }

    private static func encodeCauses(_ causes: [SCTPErrorCause], type: SCTPChunkType, flags: UInt8, into buffer: inout [UInt8],
                                     limits: SCTPLimits) throws(SCTPError)
    {
        guard causes.count <= limits.maximumErrorCausesPerChunk else {
            throw .tooManyErrorCauses(chunk: type, limit: limits.maximumErrorCausesPerChunk)
        }
        let writer = ChunkWriter(type: type, flags: flags, into: &buffer)
        var end = buffer.count
        for cause in causes {
            end = try cause.encode(into: &buffer, limits: limits)
        }
        try writer.finish(&buffer, end: end)
    }
}

/// Writes a chunk header whose length is set once the value is in place.
struct ChunkWriter {
    private let start: Int
    private let type: SCTPChunkType

    init(type: SCTPChunkType, flags: UInt8, into buffer: inout [UInt8]) {
        start = buffer.count
        self.type = type
        buffer.append(type.rawValue)
        buffer.append(flags)
        buffer.appendBigEndian(UInt16(0))  // length, set by finish
    }

    /// Sets the chunk length to run up to `end` (default: the end of the
    /// buffer), then pads the chunk to four bytes. A chunk whose value ends in
    /// parameters passes the end of its last parameter's value: that
    /// parameter's padding is the chunk's own (RFC 9260 §3.2).
    func finish(_ buffer: inout [UInt8], end: Int? = nil) throws(SCTPError) {
        let length = (end ?? buffer.count) - start
        guard length <= Int(UInt16.max) else { throw .chunkTooLong(type: type, length: length) }
        buffer.setBigEndian(UInt16(length), at: start + 2)
        buffer.padToFour(from: start)
    }
}
