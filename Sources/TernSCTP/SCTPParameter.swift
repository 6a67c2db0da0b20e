// Parameters (RFC 9260 §3.2.1): the type-length-value format of INIT and INIT
// ACK parameters, of RE-CONFIG parameters (RFC 6525 §4), of the Heartbeat
// Info parameter and of error causes (RFC 9260 §3.3.10).

import TernWire

/// One type-length-value item as it sits in a chunk (its value without
/// header or padding).
typealias RawTLV = WireTLV

/// Walks the parameters (or error causes) that fill the value of a chunk:
/// TernWire's padded TLV reader in the SCTP layout, its errors in SCTP's
/// words.
///
/// RFC 9260 §3.2.1: each is padded to a multiple of four bytes, and the chunk
/// length leaves out the padding of the last one (it becomes the chunk's own
/// padding, which the packet parser has checked is there). RFC 9260 §3.2
/// asks receivers to accept the chunk either way, so the last item may be
/// padded inside the chunk length or not; an item cut inside its padding, or
/// one to three stray bytes after the last item, is malformed.
struct TLVWalker {
    private var items: PaddedTLVReader
    private let chunk: SCTPChunkType

    init(_ region: ArraySlice<UInt8>, in chunk: SCTPChunkType) {
        items = PaddedTLVReader(region, format: .sctp)
        self.chunk = chunk
    }

    mutating func next() throws(SCTPError) -> RawTLV? {
        do {
            return try items.next()
        } catch {
            let type = items.itemType ?? 0
            switch error.expected {
            case .tlvHeader: throw .tlvTruncated(chunk: chunk, available: error.available)
            case .tlvLength: throw .tlvLengthInvalid(chunk: chunk, type: type, length: error.available)
            case .tlvValue(let length): throw .tlvOverrun(chunk: chunk, type: type, length: length + 4, available: error.available + 4)
            default: throw .tlvPaddingTruncated(chunk: chunk, type: type)
            }
        }
    }
}

/// Reads a parameter's or cause's value, all of it: a short read, or bytes
/// left over, is `invalid`.
@inline(__always)
func readWhole<T>(_ value: ArraySlice<UInt8>, orThrow invalid: @autoclosure () -> SCTPError,
                  _ body: (inout WireReader) throws(WireError) -> T) throws(SCTPError) -> T
{
    var reader = WireReader(value)
    do {
        let result = try body(&reader)
        try reader.expectEnd()
        return result
    } catch {
        throw invalid()
    }
}

/// Appends one type-length-value item: type, length (header and value, not
/// the padding), the value `body` writes, then zero padding to four bytes.
/// Returns the offset in `buffer` just past the value and before the padding:
/// the end of the enclosing chunk if this item is its last (RFC 9260 §3.2).
@discardableResult
func appendTLV(type: UInt16, into buffer: inout [UInt8], body: (inout [UInt8]) -> Void) throws(SCTPError) -> Int {
    let start = buffer.startTLV(type: type)
    body(&buffer)
    do {
        return try buffer.finishTLV(startingAt: start, format: .sctp)
    } catch {
        throw .valueTooLong(type: type, length: error.available - 4)
    }
}

// MARK: - INIT and INIT ACK parameters

/// A parameter of an INIT or INIT ACK chunk (RFC 9260 §3.3.2.1, §3.3.3.1, and
/// the extensions a data channel uses).
///
/// Types this codec does not interpret stay `.unknown` with their type, whose
/// two high bits say what the association must do with them (RFC 9260
/// §3.2.1). The decoder applies the "stop" half of that rule itself: after an
/// unknown parameter whose bits say stop, the rest of the chunk's parameters
/// are not read, so such a parameter is always the last in the list.
public enum SCTPInitParameter: Hashable, Sendable {
    /// IPv4 Address (type 5), the address in network order. Meaningless over
    /// DTLS, where an association is single-homed and chunks carry no
    /// addresses (RFC 8261); decoded so an INIT carrying one is still accepted.
    case ipv4Address(UInt32)
    /// IPv6 Address (type 6), the address's high and low 64 bits.
    case ipv6Address(high: UInt64, low: UInt64)
    /// State Cookie (type 7, INIT ACK only, RFC 9260 §3.3.3.1): opaque to the peer.
    case stateCookie(ArraySlice<UInt8>)
    /// Unrecognized Parameter (type 8, INIT ACK only): the parameter(s) of the
    /// INIT the sender did not recognize, copied whole (type, length, value).
    case unrecognizedParameter(ArraySlice<UInt8>)
    /// Cookie Preservative (type 9): the suggested cookie life-span increment.
    case cookiePreservative(milliseconds: UInt32)
    /// Host Name Address (type 11): deprecated, never sent (RFC 9260 §3.3.2.1).
    case hostNameAddress(ArraySlice<UInt8>)
    /// Supported Address Types (type 12): the parameter types of the address
    /// families the sender supports.
    case supportedAddressTypes(SCTPWireList<UInt16>)
    /// ECN Capable (type 0x8000, RFC 9260 Appendix A).
    case ecnCapable
    /// Zero Checksum Acceptable (type 0x8001, RFC 9653 §4): the sender accepts
    /// packets with a zero checksum when the method `edmid` protects them.
    case zeroChecksumAcceptable(edmid: UInt32)
    /// Supported Extensions (type 0x8008, RFC 5061 §4.2.7): the chunk types of
    /// the extensions the sender supports.
    case supportedExtensions(SCTPWireList<SCTPChunkType>)
    /// Forward-TSN-Supported (type 0xC000, RFC 3758 §3.1).
    case forwardTSNSupported
    /// Any other type, value as received.
    case unknown(type: SCTPParameterType, value: ArraySlice<UInt8>)

    /// RFC 9653: the Error Detection Method Identifier for SCTP over DTLS
    /// (its IANA registry gives 1; 0 is reserved).
    public static let edmidDTLS: UInt32 = 1

    public var type: SCTPParameterType {
        switch self {
        case .ipv4Address: return .ipv4Address
        case .ipv6Address: return .ipv6Address
        case .stateCookie: return .stateCookie
        case .unrecognizedParameter: return .unrecognizedParameter
        case .cookiePreservative: return .cookiePreservative
        case .hostNameAddress: return .hostNameAddress
        case .supportedAddressTypes: return .supportedAddressTypes
        case .ecnCapable: return .ecnCapable
        case .zeroChecksumAcceptable: return .zeroChecksumAcceptable
        case .supportedExtensions: return .supportedExtensions
        case .forwardTSNSupported: return .forwardTSNSupported
        case .unknown(let type, _): return type
        }
    }

    /// For an INIT ACK's Unrecognized Parameter (RFC 9260 §3.3.3.1): the
    /// unknown parameter copied whole, header included.
    public static func reporting(type: SCTPParameterType, value: ArraySlice<UInt8>) throws(SCTPError) -> SCTPInitParameter {
        var copy: [UInt8] = []
        copy.reserveCapacity(4 + value.count)
        try appendTLV(type: type.rawValue, into: &copy) { $0.append(contentsOf: value) }
        // The copy ends with the reported parameter's value, not its padding.
        return .unrecognizedParameter(copy[..<(4 + value.count)])
    }

    static func decode(_ raw: RawTLV, limits: SCTPLimits) throws(SCTPError) -> SCTPInitParameter {
        let type = SCTPParameterType(raw.type)
        let value = raw.value
        let invalid = SCTPError.parameterLengthInvalid(type: type, length: value.count + 4)
        func expect(_ length: Int) throws(SCTPError) {
            guard value.count == length else { throw invalid }
        }
        switch type {
        case .ipv4Address:
            return .ipv4Address(try readWhole(value, orThrow: invalid) { reader throws(WireError) in try reader.readUInt32() })
        case .ipv6Address:
            return try readWhole(value, orThrow: invalid) { reader throws(WireError) in
                .ipv6Address(high: try reader.readUInt64(), low: try reader.readUInt64())
            }
        case .stateCookie:
            guard value.count <= limits.maximumCookieLength else {
                throw .cookieTooLong(length: value.count, limit: limits.maximumCookieLength)
            }
            return .stateCookie(value)
        case .unrecognizedParameter:
            return .unrecognizedParameter(value)
        case .cookiePreservative:
            return .cookiePreservative(milliseconds: try readWhole(value, orThrow: invalid) { reader throws(WireError) in try reader.readUInt32() })
        case .hostNameAddress:
            return .hostNameAddress(value)
        case .supportedAddressTypes:
            guard value.count % 2 == 0 else { throw invalid }
            guard value.count / 2 <= limits.maximumListEntries else {
                throw .listTooLong(count: value.count / 2, limit: limits.maximumListEntries)
            }
            return .supportedAddressTypes(SCTPWireList(wireBytes: value))
        case .ecnCapable:
            try expect(0)
            return .ecnCapable
        case .zeroChecksumAcceptable:
            return .zeroChecksumAcceptable(edmid: try readWhole(value, orThrow: invalid) { reader throws(WireError) in try reader.readUInt32() })
        case .supportedExtensions:
            guard value.count <= limits.maximumListEntries else {
                throw .listTooLong(count: value.count, limit: limits.maximumListEntries)
            }
            return .supportedExtensions(SCTPWireList(wireBytes: value))
        case .forwardTSNSupported:
            try expect(0)
            return .forwardTSNSupported
        default:
            return .unknown(type: type, value: value)
        }
    }

    /// Appends the parameter with its padding; returns the end of its value.
    @discardableResult
    func encode(into buffer: inout [UInt8], limits: SCTPLimits) throws(SCTPError) -> Int {
        switch self {
        case .ipv4Address(let address):
            return try appendTLV(type: type.rawValue, into: &buffer) { $0.appendBigEndian(address) }
        case .ipv6Address(let high, let low):
            return try appendTLV(type: type.rawValue, into: &buffer) {
                $0.appendBigEndian(high)
                $0.appendBigEndian(low)
            }
        case .stateCookie(let cookie):
            guard cookie.count <= limits.maximumCookieLength else {
                throw .cookieTooLong(length: cookie.count, limit: limits.maximumCookieLength)
            }
            return try appendTLV(type: type.rawValue, into: &buffer) { $0.append(contentsOf: cookie) }
        case .unrecognizedParameter(let bytes), .hostNameAddress(let bytes), .unknown(_, let bytes):
            return try appendTLV(type: type.rawValue, into: &buffer) { $0.append(contentsOf: bytes) }
        case .cookiePreservative(let milliseconds):
            return try appendTLV(type: type.rawValue, into: &buffer) { $0.appendBigEndian(milliseconds) }
        case .supportedAddressTypes(let types):
            guard types.count <= limits.maximumListEntries else {
                throw .listTooLong(count: types.count, limit: limits.maximumListEntries)
            }
            return try appendTLV(type: type.rawValue, into: &buffer) { $0.append(contentsOf: types.wireBytes) }
        case .ecnCapable, .forwardTSNSupported:
            return try appendTLV(type: type.rawValue, into: &buffer) { _ in }
        case .zeroChecksumAcceptable(let edmid):
            return try appendTLV(type: type.rawValue, into: &buffer) { $0.appendBigEndian(edmid) }
        case .supportedExtensions(let types):
            guard types.count <= limits.maximumListEntries else {
                throw .listTooLong(count: types.count, limit: limits.maximumListEntries)
            }
            return try appendTLV(type: type.rawValue, into: &buffer) { $0.append(contentsOf: types.wireBytes) }
        }
    }
}

// MARK: - RE-CONFIG parameters (RFC 6525 §4)

/// Outgoing SSN Reset Request (RFC 6525 §4.1): the sender resets its
/// outgoing streams `streams` (all of them if empty) once the receiver has
/// everything up to `senderLastAssignedTSN`.
public struct SCTPOutgoingSSNResetRequest: Hashable, Sendable {
    public var requestSequenceNumber: UInt32
    public var responseSequenceNumber: UInt32
    public var senderLastAssignedTSN: UInt32
    public var streams: SCTPWireList<UInt16>

    public init(requestSequenceNumber: UInt32, responseSequenceNumber: UInt32, senderLastAssignedTSN: UInt32, streams: SCTPWireList<UInt16>) {
        self.requestSequenceNumber = requestSequenceNumber
        self.responseSequenceNumber = responseSequenceNumber
        self.senderLastAssignedTSN = senderLastAssignedTSN
        self.streams = streams
    }
}

/// The Result field of a Re-configuration Response (RFC 6525 §4.4).
public struct SCTPReconfigResult: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32

    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    public static let successNothingToDo = SCTPReconfigResult(rawValue: 0)
    public static let successPerformed = SCTPReconfigResult(rawValue: 1)
    public static let denied = SCTPReconfigResult(rawValue: 2)
    public static let errorWrongSSN = SCTPReconfigResult(rawValue: 3)
    public static let errorRequestAlreadyInProgress = SCTPReconfigResult(rawValue: 4)
    public static let errorBadSequenceNumber = SCTPReconfigResult(rawValue: 5)
    public static let inProgress = SCTPReconfigResult(rawValue: 6)

    public var description: String { String(rawValue) }
}

/// Re-configuration Response (RFC 6525 §4.4). The two next-TSN fields are
/// optional, present together or not at all.
public struct SCTPReconfigResponse: Hashable, Sendable {
    public struct NextTSNs: Hashable, Sendable {
        public var sender: UInt32
        public var receiver: UInt32

        public init(sender: UInt32, receiver: UInt32) {
            self.sender = sender
            self.receiver = receiver
        }
    }

    public var responseSequenceNumber: UInt32
    public var result: SCTPReconfigResult
    public var nextTSNs: NextTSNs?

    public init(responseSequenceNumber: UInt32, result: SCTPReconfigResult, nextTSNs: NextTSNs? = nil) {
        self.responseSequenceNumber = responseSequenceNumber
        self.result = result
        self.nextTSNs = nextTSNs
    }
}

/// A parameter of a RE-CONFIG chunk (RFC 6525 §4). Unknown types follow the
/// same rule as in INIT (RFC 9260 §3.2.1): a "stop" type ends the list.
public enum SCTPReconfigParameter: Hashable, Sendable {
    case outgoingSSNResetRequest(SCTPOutgoingSSNResetRequest)
    /// Incoming SSN Reset Request (RFC 6525 §4.2): asks the peer to reset its
    /// outgoing streams `streams` (all if empty).
    case incomingSSNResetRequest(requestSequenceNumber: UInt32, streams: SCTPWireList<UInt16>)
    /// SSN/TSN Reset Request (RFC 6525 §4.3).
    case ssnTSNResetRequest(requestSequenceNumber: UInt32)
    case response(SCTPReconfigResponse)
    /// Add Outgoing Streams Request (RFC 6525 §4.5).
    case addOutgoingStreams(requestSequenceNumber: UInt32, newStreams: UInt16)
    /// Add Incoming Streams Request (RFC 6525 §4.6).
    case addIncomingStreams(requestSequenceNumber: UInt32, newStreams: UInt16)
    case unknown(type: SCTPParameterType, value: ArraySlice<UInt8>)

    public var type: SCTPParameterType {
        switch self {
        case .outgoingSSNResetRequest: return .outgoingSSNResetRequest
        case .incomingSSNResetRequest: return .incomingSSNResetRequest
        case .ssnTSNResetRequest: return .ssnTSNResetRequest
        case .response: return .reconfigResponse
        case .addOutgoingStreams: return .addOutgoingStreams
        case .addIncomingStreams: return .addIncomingStreams
        case .unknown(let type, _): return type
        }
    }

    static func decode(_ raw: RawTLV, limits: SCTPLimits) throws(SCTPError) -> SCTPReconfigParameter {
        let type = SCTPParameterType(raw.type)
        let value = raw.value
        let invalid = SCTPError.parameterLengthInvalid(type: type, length: value.count + 4)
        var reader = WireReader(value)
        // Each field read from the value; a short one makes it `invalid`.
        func field<T: FixedWidthInteger>(_: T.Type) throws(SCTPError) -> T {
            do { return try reader.readInteger() } catch { throw invalid }
        }
        func end() throws(SCTPError) {
            do { try reader.expectEnd() } catch { throw invalid }
        }
        // A list of 16-bit stream identifiers fills the rest of the value.
        func streams() throws(SCTPError) -> SCTPWireList<UInt16> {
            let bytes = reader.readRemaining()
            guard bytes.count % 2 == 0 else { throw invalid }
            guard bytes.count / 2 <= limits.maximumStreamsPerChunk else {
                throw .tooManyStreams(count: bytes.count / 2, limit: limits.maximumStreamsPerChunk)
            }
            return SCTPWireList(wireBytes: bytes)
        }
        switch type {
        case .outgoingSSNResetRequest:
            let request = try field(UInt32.self), response = try field(UInt32.self), lastTSN = try field(UInt32.self)
            return .outgoingSSNResetRequest(SCTPOutgoingSSNResetRequest(
                requestSequenceNumber: request, responseSequenceNumber: response, senderLastAssignedTSN: lastTSN, streams: try streams()))
        case .incomingSSNResetRequest:
            let request = try field(UInt32.self)
            return .incomingSSNResetRequest(requestSequenceNumber: request, streams: try streams())
        case .ssnTSNResetRequest:
            let request = try field(UInt32.self)
            try end()
            return .ssnTSNResetRequest(requestSequenceNumber: request)
        case .reconfigResponse:
            // The two next-TSN fields come together or not at all.
            let sequence = try field(UInt32.self), result = SCTPReconfigResult(rawValue: try field(UInt32.self))
            var next: SCTPReconfigResponse.NextTSNs?
            if !reader.isAtEnd { next = SCTPReconfigResponse.NextTSNs(sender: try field(UInt32.self), receiver: try field(UInt32.self)) }
            try end()
            return .response(SCTPReconfigResponse(responseSequenceNumber: sequence, result: result, nextTSNs: next))
        case .addOutgoingStreams, .addIncomingStreams:
            // Request sequence number, number of new streams, 16 reserved bits.
            let sequence = try field(UInt32.self), count = try field(UInt16.self)
            _ = try field(UInt16.self)
            try end()
            return type == .addOutgoingStreams
                ? .addOutgoingStreams(requestSequenceNumber: sequence, newStreams: count)
                : .addIncomingStreams(requestSequenceNumber: sequence, newStreams: count)
        default:
            return .unknown(type: type, value: value)
        }
    }

    @discardableResult
    func encode(into buffer: inout [UInt8], limits: SCTPLimits) throws(SCTPError) -> Int {
        func checkStreams(_ streams: SCTPWireList<UInt16>) throws(SCTPError) {
            guard streams.count <= limits.maximumStreamsPerChunk else {
                throw .tooManyStreams(count: streams.count, limit: limits.maximumStreamsPerChunk)
            }
        }
        switch self {
        case .outgoingSSNResetRequest(let request):
            try checkStreams(request.streams)
            return try appendTLV(type: type.rawValue, into: &buffer) {
                $0.appendBigEndian(request.requestSequenceNumber)
                $0.appendBigEndian(request.responseSequenceNumber)
                $0.appendBigEndian(request.senderLastAssignedTSN)
                $0.append(contentsOf: request.streams.wireBytes)
            }
        case .incomingSSNResetRequest(let sequence, let streams):
            try checkStreams(streams)
            return try appendTLV(type: type.rawValue, into: &buffer) {
                $0.appendBigEndian(sequence)
                $0.append(contentsOf: streams.wireBytes)
            }
        case .ssnTSNResetRequest(let sequence):
            return try appendTLV(type: type.rawValue, into: &buffer) { $0.appendBigEndian(sequence) }
        case .response(let response):
            return try appendTLV(type: type.rawValue, into: &buffer) {
                $0.appendBigEndian(response.responseSequenceNumber)
                $0.appendBigEndian(response.result.rawValue)
                if let next = response.nextTSNs {
                    $0.appendBigEndian(next.sender)
                    $0.appendBigEndian(next.receiver)
                }
            }
        case .addOutgoingStreams(let sequence, let count), .addIncomingStreams(let sequence, let count):
            return try appendTLV(type: type.rawValue, into: &buffer) {
                $0.appendBigEndian(sequence)
                $0.appendBigEndian(count)
                $0.appendBigEndian(UInt16(0))  // reserved
            }
        case .unknown(_, let value):
            return try appendTLV(type: type.rawValue, into: &buffer) { $0.append(contentsOf: value) }
        }
    }
}
