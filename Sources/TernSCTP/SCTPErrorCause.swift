import TernWire

/// An error cause of an ABORT or ERROR chunk (RFC 9260 §3.3.10). Causes use
/// the parameter format (code, length, value, padding to four bytes).
///
/// Causes whose information is itself a chunk or parameter copied from the
/// peer (unrecognized chunk, unrecognized parameters, addresses) keep those
/// bytes as received; the association decides what to make of them.
public enum SCTPErrorCause: Hashable, Sendable {
    /// §3.3.10.1: DATA for a stream that does not exist.
    case invalidStreamIdentifier(streamID: UInt16)
    /// §3.3.10.2: the INIT or INIT ACK lacked these mandatory parameter types.
    case missingMandatoryParameter(SCTPWireList<UInt16>)
    /// §3.3.10.3: a COOKIE ECHO arrived this many microseconds after its cookie expired.
    case staleCookie(stalenessMicroseconds: UInt32)
    /// §3.3.10.4
    case outOfResource
    /// §3.3.10.5: the address parameter that could not be resolved.
    case unresolvableAddress(ArraySlice<UInt8>)
    /// §3.3.10.6: the unrecognized chunk as received (type, flags, length, value).
    case unrecognizedChunkType(ArraySlice<UInt8>)
    /// §3.3.10.7
    case invalidMandatoryParameter
    /// §3.3.10.8: the unrecognized parameters as received.
    case unrecognizedParameters(ArraySlice<UInt8>)
    /// §3.3.10.9: a DATA chunk with this TSN carried no user data.
    case noUserData(tsn: UInt32)
    /// §3.3.10.10
    case cookieReceivedWhileShuttingDown
    /// §3.3.10.11: the new addresses of a restarting peer (address parameters).
    case restartWithNewAddresses(ArraySlice<UInt8>)
    /// §3.3.10.12: the reason the upper layer gave, opaque to SCTP.
    case userInitiatedAbort(ArraySlice<UInt8>)
    /// §3.3.10.13: free-form information about the violation.
    case protocolViolation(ArraySlice<UInt8>)
    /// Any other cause code, information as received.
    case unknown(code: SCTPErrorCauseCode, info: ArraySlice<UInt8>)

    public var code: SCTPErrorCauseCode {
        switch self {
        case .invalidStreamIdentifier: return .invalidStreamIdentifier
        case .missingMandatoryParameter: return .missingMandatoryParameter
        case .staleCookie: return .staleCookie
        case .outOfResource: return .outOfResource
        case .unresolvableAddress: return .unresolvableAddress
        case .unrecognizedChunkType: return .unrecognizedChunkType
        case .invalidMandatoryParameter: return .invalidMandatoryParameter
        case .unrecognizedParameters: return .unrecognizedParameters
        case .noUserData: return .noUserData
        case .cookieReceivedWhileShuttingDown: return .cookieReceivedWhileShuttingDown
        case .restartWithNewAddresses: return .restartWithNewAddresses
        case .userInitiatedAbort: return .userInitiatedAbort
        case .protocolViolation: return .protocolViolation
        case .unknown(let code, _): return code
        }
    }

    /// The Unrecognized Chunk Type cause reporting `chunk` (RFC 9260 §3.2,
    /// §3.3.10.6): its header and value as they were on the wire.
    public static func reporting(_ chunk: SCTPUnknownChunk) throws(SCTPError) -> SCTPErrorCause {
        let length = 4 + chunk.value.count
        guard length <= Int(UInt16.max) else { throw .chunkTooLong(type: chunk.type, length: length) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(length)
        bytes.append(chunk.type.rawValue)
        bytes.append(chunk.flags)
        bytes.appendBigEndian(UInt16(length))
        bytes.append(contentsOf: chunk.value)
        return .unrecognizedChunkType(bytes[...])
    }

    static func decode(_ raw: RawTLV, limits: SCTPLimits) throws(SCTPError) -> SCTPErrorCause {
        let code = SCTPErrorCauseCode(raw.type)
        let info = raw.value
        let invalid = SCTPError.errorCauseLengthInvalid(code: code, length: info.count + 4)
        func expect(_ length: Int) throws(SCTPError) {
            guard info.count == length else { throw invalid }
        }
        switch code {
        case .invalidStreamIdentifier:
            // Stream identifier, 16 reserved bits.
            return try readWhole(info, orThrow: invalid) { reader throws(WireError) in
                let stream = try reader.readUInt16()
                try reader.skip(2)
                return .invalidStreamIdentifier(streamID: stream)
            }
        case .missingMandatoryParameter:
            // A 32-bit count, then that many 16-bit parameter types.
            var reader = WireReader(info)
            guard let count = try? reader.readUInt32(), reader.remaining % 2 == 0, Int(count) == reader.remaining / 2 else {
                throw invalid
            }
            guard reader.remaining / 2 <= limits.maximumListEntries else {
                throw .listTooLong(count: reader.remaining / 2, limit: limits.maximumListEntries)
            }
            return .missingMandatoryParameter(SCTPWireList(wireBytes: reader.readRemaining()))
        case .staleCookie:
            return .staleCookie(stalenessMicroseconds: try readWhole(info, orThrow: invalid) { reader throws(WireError) in try reader.readUInt32() })
        case .outOfResource:
            try expect(0)
            return .outOfResource
        case .unresolvableAddress:
            return .unresolvableAddress(info)
        case .unrecognizedChunkType:
            return .unrecognizedChunkType(info)
        case .invalidMandatoryParameter:
            try expect(0)
            return .invalidMandatoryParameter
        case .unrecognizedParameters:
            return .unrecognizedParameters(info)
        case .noUserData:
            return .noUserData(tsn: try readWhole(info, orThrow: invalid) { reader throws(WireError) in try reader.readUInt32() })
        case .cookieReceivedWhileShuttingDown:
            try expect(0)
            return .cookieReceivedWhileShuttingDown
        case .restartWithNewAddresses:
            return .restartWithNewAddresses(info)
        case .userInitiatedAbort:
            return .userInitiatedAbort(info)
        case .protocolViolation:
            return .protocolViolation(info)
        default:
            return .unknown(code: code, info: info)
        }
    }

    /// Bytes the cause takes in a chunk, padding included (RFC 9260 §3.3.10).
    public var paddedLength: Int {
        var scratch: [UInt8] = []
        _ = try? encode(into: &scratch, limits: SCTPLimits(maximumListEntries: .max))
        return scratch.count
    }

    @discardableResult
    func encode(into buffer: inout [UInt8], limits: SCTPLimits) throws(SCTPError) -> Int {
        let code = self.code.rawValue
        switch self {
        case .invalidStreamIdentifier(let streamID):
            return try appendTLV(type: code, into: &buffer) {
                $0.appendBigEndian(streamID)
                $0.appendBigEndian(UInt16(0))  // reserved
            }
        case .missingMandatoryParameter(let types):
            guard types.count <= limits.maximumListEntries else {
                throw .listTooLong(count: types.count, limit: limits.maximumListEntries)
            }
            return try appendTLV(type: code, into: &buffer) {
                $0.appendBigEndian(UInt32(types.count))
                $0.append(contentsOf: types.wireBytes)
            }
        case .staleCookie(let value), .noUserData(let value):
            return try appendTLV(type: code, into: &buffer) { $0.appendBigEndian(value) }
        case .outOfResource, .invalidMandatoryParameter, .cookieReceivedWhileShuttingDown:
            return try appendTLV(type: code, into: &buffer) { _ in }
        case .unresolvableAddress(let bytes), .unrecognizedChunkType(let bytes), .unrecognizedParameters(let bytes),
            .restartWithNewAddresses(let bytes), .userInitiatedAbort(let bytes), .protocolViolation(let bytes),
            .unknown(_, let bytes):
            return try appendTLV(type: code, into: &buffer) { $0.append(contentsOf: bytes) }
        }
    }
}
