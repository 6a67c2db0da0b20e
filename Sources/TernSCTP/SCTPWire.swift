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

    /// Decodes and checks a packet; nil for anything malformed (dropped,
    /// RFC 9260 §8.5, and counted by the caller).
    /// `decode(_:)` for bytes that are part of a larger buffer (a DTLS
    /// record in the association's read buffer): no copy first.
    public static func decode(_ bytes: ArraySlice<UInt8>, acceptZeroChecksum: Bool = true) -> Incoming? {
        if let incoming = decodeData(bytes, acceptZeroChecksum: acceptZeroChecksum) { return incoming }
        guard let packet = try? SCTPPacket.decode(bytes, acceptZeroChecksum: acceptZeroChecksum) else { return nil }
        return Incoming(verificationTag: packet.verificationTag, chunks: packet.chunks.map(model))
    }

    /// The receiving data path: a packet of DATA chunks only, nearly every
    /// packet a receiver gets, read straight into the association's values
    /// (no `SCTPChunk` values and no second array in between). It applies
    /// the checks `SCTPPacket.decode` applies to such a packet: the length
    /// limits, the checksum, each chunk's length and padding, the chunk
    /// count. Nil for anything else, well-formed or not: the general
    /// decoder then decides (a test holds the two to the same answers).
    /// Like it, it passes on DATA without user data or on any stream: the
    /// association answers those (RFC 9260 §6.2, §6.5) whichever decoder
    /// read the packet (ResourceLimitTests drive both).
    static func decodeData(_ bytes: ArraySlice<UInt8>, acceptZeroChecksum: Bool) -> Incoming? {
        let limits = SCTPLimits.default
        let headerLength = SCTPPacket.headerLength
        guard bytes.count >= headerLength + 4, bytes.count <= limits.maximumPacketLength,
              bytes.u8(at: headerLength) == SCTPChunkType.data.rawValue
        else { return nil }
        var chunks: [SCTPChunkModel] = []
        var offset = headerLength
        while offset < bytes.count {
            guard chunks.count < limits.maximumChunksPerPacket, bytes.count - offset >= 4,
                  bytes.u8(at: offset) == SCTPChunkType.data.rawValue
            else { return nil }
            let length = Int(bytes.u16(at: offset + 2))
            guard length >= SCTPDataChunk.headerLength, paddedToFour(length) <= bytes.count - offset else { return nil }
            let flags = SCTPDataChunk.Flags(rawValue: bytes.u8(at: offset + 1))
            chunks.append(.data(SCTPFragment(
                tsn: TSN(bytes.u32(at: offset + 4)), stream: bytes.u16(at: offset + 8), ssn: SSN(bytes.u16(at: offset + 10)),
                ppid: bytes.u32(at: offset + 12), unordered: flags.contains(.unordered), beginning: flags.contains(.beginning),
                ending: flags.contains(.end), payload: bytes.bytes(at: offset + SCTPDataChunk.headerLength, count: length - SCTPDataChunk.headerLength))))
            offset += paddedToFour(length)
        }
        // DATA never needs a real checksum where a zero one is accepted
        // (RFC 9653 §5.3 asks it of INIT and COOKIE ECHO only).
        let received = SCTPPacket.receivedChecksum(bytes)
        if !(acceptZeroChecksum && received == 0) {
            guard SCTPPacket.checksum(of: bytes) == received else { return nil }
        }
        return Incoming(verificationTag: bytes.u32(at: 4), chunks: chunks)
    }

    public static func decode(_ bytes: [UInt8], acceptZeroChecksum: Bool = true) -> Incoming? {
        guard let packet = try? SCTPPacket.decode(bytes, acceptZeroChecksum: acceptZeroChecksum) else { return nil }
        return Incoming(verificationTag: packet.verificationTag, chunks: packet.chunks.map(model))
    }

    /// Encodes a packet the association built.
    public static func encode<C>(_ packet: SCTPAssociation<C>.Packet) throws(SCTPError) -> [UInt8] {
        let wire = SCTPPacket(
            sourcePort: port, destinationPort: port, verificationTag: packet.verificationTag, chunks: packet.chunks.map(chunk))
        return try wire.encode(zeroChecksum: packet.zeroChecksum)
    }

    /// Encodes a packet the association built into `buffer`, replacing what
    /// it held (the data path reuses one buffer). The same bytes as
    /// `encode(_:)`: packets of DATA and SACK chunks, nearly all of them, are
    /// written straight from the association's values, without the
    /// `SCTPChunk` values or new arrays in between; any other packet goes
    /// through `encode(_:)`.
    public static func encode(
        verificationTag: UInt32, chunks: [SCTPChunkModel], zeroChecksum: Bool, into buffer: inout [UInt8]
    ) throws(SCTPError) {
        buffer.removeAll(keepingCapacity: true)
        let limits = SCTPLimits.default
        var dataPath = !chunks.isEmpty && chunks.count <= limits.maximumChunksPerPacket
        for chunk in chunks where dataPath {
            switch chunk {
            case .data: break
            case .sack(let sack):
                dataPath = sack.gapBlocks.count <= limits.maximumGapAckBlocks && sack.duplicates.count <= limits.maximumDuplicateTSNs
            default: dataPath = false
            }
        }
        guard dataPath else {
            let wire = SCTPPacket(sourcePort: port, destinationPort: port, verificationTag: verificationTag, chunks: chunks.map(chunk))
            try wire.encode(into: &buffer, zeroChecksum: zeroChecksum)
            return
        }
        // Fields are gathered into 64-bit words and appended a word at a
        // time: this runs once per packet sent.
        buffer.appendBigEndian(UInt64(port) << 48 | UInt64(port) << 32 | UInt64(verificationTag))
        buffer.appendBigEndian(UInt32(0))  // checksum, set below
        for chunk in chunks {
            switch chunk {
            case .data(let fragment):
                // RFC 9260 §3.3.1.
                let length = SCTPDataChunk.headerLength + fragment.payload.count
                guard length <= Int(UInt16.max) else {
                    buffer.removeAll(keepingCapacity: true)
                    throw .chunkTooLong(type: .data, length: length)
                }
                var flags: UInt8 = 0
                if fragment.ending { flags |= SCTPDataChunk.Flags.end.rawValue }
                if fragment.beginning { flags |= SCTPDataChunk.Flags.beginning.rawValue }
                if fragment.unordered { flags |= SCTPDataChunk.Flags.unordered.rawValue }
                let start = buffer.count
                buffer.appendBigEndian(
                    UInt64(SCTPChunkType.data.rawValue) << 56 | UInt64(flags) << 48 | UInt64(length) << 32 | UInt64(fragment.tsn.value))
                buffer.appendBigEndian(UInt64(fragment.stream) << 48 | UInt64(fragment.ssn.value) << 32 | UInt64(fragment.ppid))
                buffer.append(contentsOf: fragment.payload)
                buffer.padToFour(from: start)
            case .sack(let sack):
                // RFC 9260 §3.3.4; the counts were checked against the limits above.
                let length = 16 + 4 * sack.gapBlocks.count + 4 * sack.duplicates.count
                buffer.append(SCTPChunkType.sack.rawValue)
                buffer.append(0)
                buffer.appendBigEndian(UInt16(length))
                buffer.appendBigEndian(sack.cumulativeTSN.value)
                buffer.appendBigEndian(sack.receiveWindow)
                buffer.appendBigEndian(UInt16(sack.gapBlocks.count))
                buffer.appendBigEndian(UInt16(sack.duplicates.count))
                for block in sack.gapBlocks {
                    buffer.appendBigEndian(block.start)
                    buffer.appendBigEndian(block.end)
                }
                for duplicate in sack.duplicates { buffer.appendBigEndian(duplicate.value) }
            default:
                break  // not on the data path (checked above)
            }
        }
        guard buffer.count <= limits.maximumPacketLength else {
            let length = buffer.count
            buffer.removeAll(keepingCapacity: true)
            throw .packetTooLong(length: length, limit: limits.maximumPacketLength)
        }
        // RFC 9653 §5.2: neither DATA nor SACK needs a real CRC-32c.
        if zeroChecksum { return }
        let crc = buffer.withUnsafeBytes { CRC32C.checksum($0) }
        SCTPPacket.storeChecksum(crc, in: &buffer, at: 8)
    }

    // MARK: - Wire to model

    static func model(_ chunk: SCTPChunk) -> SCTPChunkModel {
        switch chunk {
        case .data(let data):
            return .data(SCTPFragment(
                tsn: TSN(data.tsn), stream: data.streamID, ssn: SSN(data.ssn), ppid: data.ppid,
                unordered: data.flags.contains(.unordered), beginning: data.flags.contains(.beginning),
                ending: data.flags.contains(.end), payload: data.userData))
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
        case .unknown(let unknown) where unknown.type == .pad: return .padding(length: 4 + unknown.value.count)
        case .unknown(let unknown): return .unknown(type: unknown.type.rawValue)
        }
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
            reconfigSupported: extensions.contains(.reconfig), zeroChecksumAcceptable: zeroChecksum)
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
        return SCTPInitChunk(
            initiateTag: fields.initiateTag, advertisedWindow: fields.receiveWindow, outboundStreams: fields.outboundStreams,
            inboundStreams: fields.inboundStreams, initialTSN: fields.initialTSN.value, parameters: parameters)
    }
}
