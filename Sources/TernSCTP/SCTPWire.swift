/// Between packets on the wire (`SCTPPacket`, the codec) and the chunk
/// values the association works with (`SCTPChunkModel`). WebRTC uses port
/// 5000 on both ends (RFC 8841 §4: the `a=sctp-port` default).
public enum SCTPWire {
    public static let port: UInt16 = 5000
    /// RFC 9653 §5: the error detection method of DTLS (RFC 8261).
    public static let dtlsErrorDetectionMethod: UInt32 = 1

    /// A decoded packet: its verification tag and chunks as the association reads them.
    public struct Incoming: Sendable, Equatable {
        public var verificationTag: UInt32
        public var chunks: [SCTPChunkModel]
    }

    /// Decodes and checks a packet into the association's values; nil for
    /// anything malformed (dropped, RFC 9260 §8.5, and counted by the
    /// caller). Bytes that are part of a larger buffer (a DTLS record in the
    /// association's read buffer) are read where they are, no copy first.
    ///
    /// The same packet rules as `SCTPPacket.decode` (its `Reader`), and the
    /// same answers (a test holds the two to them): only DATA, nearly every
    /// packet a receiver gets, is read straight into the association's
    /// values, with DATA's one reading, without `SCTPChunk` values and a
    /// second array in between. Like it, this passes on DATA without user
    /// data or on any stream: the association answers those (RFC 9260
    /// §6.2, §6.5; ResourceLimitTests drive them).
    public static func decode(_ bytes: ArraySlice<UInt8>, acceptZeroChecksum: Bool = true) -> Incoming? {
        let limits = SCTPLimits.default
        do {
            var reader = try SCTPPacket.Reader(bytes, acceptZeroChecksum: acceptZeroChecksum, limits: limits)
            var chunks: [SCTPChunkModel] = []
            while let raw = try reader.next() {
                if raw.type == .data {
                    chunks.append(.data(fragment(try SCTPDataChunk.decode(flags: raw.flags, value: raw.value))))
                    continue
                }
                let chunk = try SCTPChunk.decodeValue(type: raw.type, flags: raw.flags, value: raw.value, limits: limits)
                chunks.append(model(chunk))
                if chunk.stopsPacket { break }
            }
            try reader.finish()
            return Incoming(verificationTag: reader.verificationTag, chunks: chunks)
        } catch {
            return nil
        }
    }

    public static func decode(_ bytes: [UInt8], acceptZeroChecksum: Bool = true) -> Incoming? {
        decode(bytes[...], acceptZeroChecksum: acceptZeroChecksum)
    }

    /// Encodes a packet the association built.
    public static func encode<C>(_ packet: SCTPAssociation<C>.Packet) throws(SCTPError) -> [UInt8] {
        var buffer: [UInt8] = []
        try encode(verificationTag: packet.verificationTag, chunks: packet.chunks, zeroChecksum: packet.zeroChecksum, into: &buffer)
        return buffer
    }

    /// Encodes a packet the association built into `buffer`, replacing what
    /// it held (the data path reuses one buffer; on a throw it is empty).
    /// The same bytes and packet rules as `SCTPPacket.encode` (its header,
    /// bundling and `finish`): DATA and SACK chunks, nearly all of them, are
    /// written straight from the association's values with those chunks'
    /// one writing, without `SCTPChunk` values or new arrays in between;
    /// any other chunk goes through its `SCTPChunk` value.
    public static func encode(
        verificationTag: UInt32, chunks: [SCTPChunkModel], zeroChecksum: Bool, into buffer: inout [UInt8]
    ) throws(SCTPError) {
        buffer.removeAll(keepingCapacity: true)
        let limits = SCTPLimits.default
        guard !chunks.isEmpty else { throw .noChunks }
        guard chunks.count <= limits.maximumChunksPerPacket else { throw .tooManyChunks(limit: limits.maximumChunksPerPacket) }
        var rules = SCTPPacket.BundleRules()
        SCTPPacket.writeHeader(sourcePort: port, destinationPort: port, verificationTag: verificationTag, into: &buffer)
        do {
            for index in chunks.indices {
                switch chunks[index] {
                case .data(let fragment):
                    rules.add(.data)
                    var flags: SCTPDataChunk.Flags = []
                    if fragment.ending { flags.insert(.end) }
                    if fragment.beginning { flags.insert(.beginning) }
                    if fragment.unordered { flags.insert(.unordered) }
                    try SCTPDataChunk.write(
                        tsn: fragment.tsn.value, stream: fragment.stream, ssn: fragment.ssn.value, ppid: fragment.ppid, flags: flags,
                        userData: fragment.payload, into: &buffer)
                case .sack(let sack):
                    rules.add(.sack)
                    try SCTPSackChunk.writeHeader(
                        cumulativeTSNAck: sack.cumulativeTSN.value, advertisedWindow: sack.receiveWindow, gaps: sack.gapBlocks.count,
                        duplicates: sack.duplicates.count, limits: limits, into: &buffer)
                    for block in sack.gapBlocks { buffer.appendBigEndian(UInt32(block.start) << 16 | UInt32(block.end)) }
                    for duplicate in sack.duplicates { buffer.appendBigEndian(duplicate.value) }
                default:
                    try encodeControl(chunks[index], rules: &rules, limits: limits, into: &buffer)
                }
            }
            try rules.check()
            try SCTPPacket.finish(&buffer, from: 0, zeroChecksum: zeroChecksum && rules.needsRealChecksum == nil, limits: limits)
        } catch {
            buffer.removeAll(keepingCapacity: true)
            throw error
        }
    }

    /// Any chunk but DATA and SACK, through its `SCTPChunk` value. Kept out
    /// of line: the loop above then borrows DATA and SACK instead of copying.
    @inline(never)
    static func encodeControl(_ model: SCTPChunkModel, rules: inout SCTPPacket.BundleRules, limits: SCTPLimits, into buffer: inout [UInt8])
        throws(SCTPError)
    {
        let wire = chunk(model)
        rules.add(wire.type)
        try wire.encode(into: &buffer, limits: limits)
    }

    // MARK: - Wire to model

    static func model(_ chunk: SCTPChunk) -> SCTPChunkModel {
        switch chunk {
        case .data(let data):
            return .data(fragment(data))
        case .initiation(let fields):
            return .initiation(initFields(fields))
        case .initiationAck(let fields):
            guard let cookie = fields.stateCookie else { return .unknown(type: SCTPChunkType.initiationAck.rawValue) }
            return .initiationAck(initFields(fields), cookie: Array(cookie))
        case .sack(let sack):
            return .sack(SCTPChunkModel.SACKFields(
                cumulativeTSN: TSN(sack.cumulativeTSNAck), receiveWindow: sack.advertisedWindow,
                gapBlocks: sack.gapAckBlocks.map { SCTPChunkModel.GapBlock(start: $0.start, end: $0.end) },
                duplicates: sack.duplicateTSNs.map(TSN.init)))
        case .heartbeat(let info): return .heartbeat(info: Array(info))
        case .heartbeatAck(let info): return .heartbeatAck(info: Array(info))
        case .abort(_, let causes): return .abort(causes: causes)
        case .shutdown(let cumulative): return .shutdown(cumulativeTSN: TSN(cumulative))
        case .shutdownAck: return .shutdownAck
        case .error(let causes): return .error(causes: causes)
        case .cookieEcho(let cookie): return .cookieEcho(cookie: Array(cookie))
        case .cookieAck: return .cookieAck
        case .shutdownComplete: return .shutdownComplete
        case .forwardTSN(let forward):
            return .forwardTSN(
                newCumulativeTSN: TSN(forward.newCumulativeTSN),
                streams: forward.streams.map { SCTPChunkModel.ForwardedStream(stream: $0.streamID, ssn: SSN($0.ssn)) })
        case .reconfig(let reconfig):
            return .reconfig(reconfig.parameters.map { parameter in
                switch parameter {
                case .outgoingSSNResetRequest(let request):
                    return .outgoingReset(
                        requestSequence: request.requestSequenceNumber, responseSequence: request.responseSequenceNumber,
                        lastTSN: TSN(request.senderLastAssignedTSN), streams: Array(request.streams))
                case .response(let response):
                    return .response(responseSequence: response.responseSequenceNumber, result: response.result.rawValue)
                case .incomingSSNResetRequest(let sequence, _), .ssnTSNResetRequest(let sequence),
                     .addOutgoingStreams(let sequence, _), .addIncomingStreams(let sequence, _):
                    return .unsupported(requestSequence: sequence)
                case .unknown:
                    return .unsupported(requestSequence: nil)
                }
            })
        case .ecnEcho(let tsn, let marked): return .ecnEcho(lowestTSN: TSN(tsn), markedPackets: marked)
        case .cwr(let tsn): return .cwr(lowestTSN: TSN(tsn))
        case .unknown(let unknown) where unknown.type == .pad: return .padding(length: 4 + unknown.value.count)
        case .unknown(let unknown): return .unknown(type: unknown.type.rawValue)
        }
    }

    @inline(__always)
    static func fragment(_ data: SCTPDataChunk) -> SCTPFragment {
        SCTPFragment(
            tsn: TSN(data.tsn), stream: data.streamID, ssn: SSN(data.ssn), ppid: data.ppid, unordered: data.flags.contains(.unordered),
            beginning: data.flags.contains(.beginning), ending: data.flags.contains(.end), payload: data.userData)
    }

    static func initFields(_ fields: SCTPInitChunk) -> SCTPChunkModel.InitFields {
        let extensions = fields.supportedExtensions.map(Array.init) ?? []
        var zeroChecksum = false
        for case .zeroChecksumAcceptable(let method) in fields.parameters where method == dtlsErrorDetectionMethod {
            zeroChecksum = true
        }
        return SCTPChunkModel.InitFields(
            initiateTag: fields.initiateTag, receiveWindow: fields.advertisedWindow, outboundStreams: fields.outboundStreams,
            inboundStreams: fields.inboundStreams, initialTSN: TSN(fields.initialTSN),
            forwardTSNSupported: fields.supportsForwardTSN || extensions.contains(.forwardTSN),
            reconfigSupported: extensions.contains(.reconfig), zeroChecksumAcceptable: zeroChecksum,
            ecnCapable: fields.parameters.contains(.ecnCapable))
    }

    static func describe(_ cause: SCTPErrorCause) -> String {
        switch cause {
        case .userInitiatedAbort(let reason), .protocolViolation(let reason):
            // Shown to a user: printable ASCII only, bounded.
            return String(decoding: reason.prefix(200).filter { $0 >= 0x20 && $0 < 0x7F }, as: UTF8.self)
        case .noUserData(let tsn):
            return "no user data in the DATA chunk with TSN \(tsn)"
        case .invalidStreamIdentifier(let stream):
            return "invalid stream \(stream)"
        default:
            return "cause \(cause.code.rawValue)"
        }
    }

    // MARK: - Model to wire

    static func chunk(_ model: SCTPChunkModel) -> SCTPChunk {
        switch model {
        case .data(let fragment):
            var flags: SCTPDataChunk.Flags = []
            if fragment.beginning { flags.insert(.beginning) }
            if fragment.ending { flags.insert(.end) }
            if fragment.unordered { flags.insert(.unordered) }
            return .data(SCTPDataChunk(
                tsn: fragment.tsn.value, streamID: fragment.stream, ssn: fragment.ssn.value, ppid: fragment.ppid,
                userData: fragment.payload, flags: flags))
        case .initiation(let fields):
            return .initiation(initChunk(fields, cookie: nil))
        case .initiationAck(let fields, let cookie):
            return .initiationAck(initChunk(fields, cookie: cookie))
        case .sack(let sack):
            return .sack(SCTPSackChunk(
                cumulativeTSNAck: sack.cumulativeTSN.value, advertisedWindow: sack.receiveWindow,
                gapAckBlocks: SCTPWireList(sack.gapBlocks.map { SCTPGapAckBlock(start: $0.start, end: $0.end) }),
                duplicateTSNs: SCTPWireList(sack.duplicates.map(\.value))))
        case .heartbeat(let info): return .heartbeat(info: info[...])
        case .heartbeatAck(let info): return .heartbeatAck(info: info[...])
        case .abort(let causes):
            return .abort(tagReflected: false, causes: causes)
        case .shutdown(let cumulative): return .shutdown(cumulativeTSNAck: cumulative.value)
        case .shutdownAck: return .shutdownAck
        case .error(let causes):
            return .error(causes: causes)
        case .cookieEcho(let cookie): return .cookieEcho(cookie: cookie[...])
        case .cookieAck: return .cookieAck
        case .shutdownComplete: return .shutdownComplete(tagReflected: false)
        case .forwardTSN(let cumulative, let streams):
            return .forwardTSN(SCTPForwardTSNChunk(
                newCumulativeTSN: cumulative.value,
                streams: SCTPWireList(streams.map { SCTPForwardTSNStream(streamID: $0.stream, ssn: $0.ssn.value) })))
        case .reconfig(let parameters):
            let wire: [SCTPReconfigParameter] = parameters.compactMap { parameter in
                switch parameter {
                case .outgoingReset(let request, let response, let lastTSN, let streams):
                    return .outgoingSSNResetRequest(SCTPOutgoingSSNResetRequest(
                        requestSequenceNumber: request, responseSequenceNumber: response, senderLastAssignedTSN: lastTSN.value,
                        streams: SCTPWireList(streams)))
                case .response(let sequence, let result):
                    return .response(SCTPReconfigResponse(responseSequenceNumber: sequence, result: SCTPReconfigResult(rawValue: result)))
                case .unsupported:
                    return nil
                }
            }
            guard let first = wire.first else { return .unknown(SCTPUnknownChunk(type: .reconfig, flags: 0, value: [])) }
            return .reconfig(SCTPReconfigChunk(first, wire.count > 1 ? wire[1] : nil))
        case .ecnEcho(let tsn, let marked): return .ecnEcho(lowestTSN: tsn.value, markedPackets: marked)
        case .cwr(let tsn): return .cwr(lowestTSN: tsn.value)
        case .padding(let length):
            return .unknown(SCTPUnknownChunk(type: .pad, flags: 0, value: ArraySlice(repeating: 0, count: max(length - 4, 0))))
        case .unknown(let type):
            return .unknown(SCTPUnknownChunk(type: SCTPChunkType(rawValue: type), flags: 0, value: []))
        }
    }

    static func initChunk(_ fields: SCTPChunkModel.InitFields, cookie: [UInt8]?) -> SCTPInitChunk {
        var parameters: [SCTPInitParameter] = []
        if let cookie { parameters.append(.stateCookie(cookie[...])) }
        if fields.forwardTSNSupported { parameters.append(.forwardTSNSupported) }
        var extensions: [SCTPChunkType] = []
        if fields.forwardTSNSupported { extensions.append(.forwardTSN) }
        if fields.reconfigSupported { extensions.append(.reconfig) }
        if !extensions.isEmpty { parameters.append(.supportedExtensions(SCTPWireList(extensions))) }
        if fields.zeroChecksumAcceptable { parameters.append(.zeroChecksumAcceptable(edmid: dtlsErrorDetectionMethod)) }
        if fields.ecnCapable { parameters.append(.ecnCapable) }
        return SCTPInitChunk(
            initiateTag: fields.initiateTag, advertisedWindow: fields.receiveWindow, outboundStreams: fields.outboundStreams,
            inboundStreams: fields.inboundStreams, initialTSN: fields.initialTSN.value, parameters: parameters)
    }
}
