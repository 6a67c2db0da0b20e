import TernWire

/// A STUN attribute type code (RFC 8489 §14, §18.3 registry).
public struct STUNAttributeType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16

    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    public init(_ rawValue: UInt16) {
        self.rawValue = rawValue
    }

    /// RFC 8489 §14: types 0x0000-0x7FFF are comprehension-required.
    public var isComprehensionRequired: Bool { rawValue < 0x8000 }

    // RFC 8489 §18.3.1 (comprehension-required)
    public static let mappedAddress = STUNAttributeType(0x0001)
    public static let username = STUNAttributeType(0x0006)
    public static let messageIntegrity = STUNAttributeType(0x0008)
    public static let errorCode = STUNAttributeType(0x0009)
    public static let unknownAttributes = STUNAttributeType(0x000A)
    public static let realm = STUNAttributeType(0x0014)
    public static let nonce = STUNAttributeType(0x0015)
    public static let messageIntegritySHA256 = STUNAttributeType(0x001C)
    public static let passwordAlgorithm = STUNAttributeType(0x001D)
    public static let userhash = STUNAttributeType(0x001E)
    public static let xorMappedAddress = STUNAttributeType(0x0020)
    // RFC 8489 §18.3.2 (comprehension-optional)
    public static let passwordAlgorithms = STUNAttributeType(0x8002)
    public static let software = STUNAttributeType(0x8022)
    public static let alternateServer = STUNAttributeType(0x8023)
    public static let fingerprint = STUNAttributeType(0x8028)
    // RFC 8656 §18 (TURN)
    public static let channelNumber = STUNAttributeType(0x000C)
    public static let lifetime = STUNAttributeType(0x000D)
    public static let xorPeerAddress = STUNAttributeType(0x0012)
    public static let data = STUNAttributeType(0x0013)
    public static let xorRelayedAddress = STUNAttributeType(0x0016)
    public static let requestedAddressFamily = STUNAttributeType(0x0017)
    public static let evenPort = STUNAttributeType(0x0018)
    public static let requestedTransport = STUNAttributeType(0x0019)
    public static let dontFragment = STUNAttributeType(0x001A)
    public static let reservationToken = STUNAttributeType(0x0022)
    // RFC 6062 §6.2 (TURN TCP allocations)
    public static let connectionID = STUNAttributeType(0x002A)
    // RFC 8445 §16.1 (ICE)
    public static let priority = STUNAttributeType(0x0024)
    public static let useCandidate = STUNAttributeType(0x0025)
    public static let iceControlled = STUNAttributeType(0x8029)
    public static let iceControlling = STUNAttributeType(0x802A)

    public var description: String { "0x" + hex(rawValue) }
}

/// ERROR-CODE (RFC 8489 §14.8): a code 300-699 and a UTF-8 reason phrase.
public struct STUNErrorCode: Hashable, Sendable, CustomStringConvertible {
    /// Class * 100 + number, 300...699.
    public var code: Int
    public var reason: String

    public init(code: Int, reason: String) {
        self.code = code
        self.reason = reason
    }

    /// RFC 8489 §14.8
    public static let tryAlternate = STUNErrorCode(code: 300, reason: "Try Alternate")
    public static let badRequest = STUNErrorCode(code: 400, reason: "Bad Request")
    public static let unauthenticated = STUNErrorCode(code: 401, reason: "Unauthenticated")
    public static let unknownAttribute = STUNErrorCode(code: 420, reason: "Unknown Attribute")
    public static let staleNonce = STUNErrorCode(code: 438, reason: "Stale Nonce")
    public static let serverError = STUNErrorCode(code: 500, reason: "Server Error")
    /// RFC 8445 §7.3.1.1
    public static let roleConflict = STUNErrorCode(code: 487, reason: "Role Conflict")
    /// RFC 8656 §18
    public static let forbidden = STUNErrorCode(code: 403, reason: "Forbidden")
    public static let allocationMismatch = STUNErrorCode(code: 437, reason: "Allocation Mismatch")
    public static let addressFamilyNotSupported = STUNErrorCode(code: 440, reason: "Address Family not Supported")
    public static let wrongCredentials = STUNErrorCode(code: 441, reason: "Wrong Credentials")
    public static let unsupportedTransportProtocol = STUNErrorCode(code: 442, reason: "Unsupported Transport Protocol")
    public static let peerAddressFamilyMismatch = STUNErrorCode(code: 443, reason: "Peer Address Family Mismatch")
    public static let allocationQuotaReached = STUNErrorCode(code: 486, reason: "Allocation Quota Reached")
    public static let insufficientCapacity = STUNErrorCode(code: 508, reason: "Insufficient Capacity")

    public var description: String { "\(code) \(reason)" }
}

/// One STUN attribute. The attributes ICE and TURN act on are typed; anything
/// else is kept as `.unknown` with its raw value, so that a message survives a
/// decode/encode round trip and a server can report comprehension-required
/// ones (RFC 8489 §14).
///
/// Text attributes are Strings; bytes that are not UTF-8 (RFC 8489 requires
/// UTF-8) decode to U+FFFD. Integrity is always checked over the received
/// bytes, never over a re-encoding, so this cannot hide tampering.
public enum STUNAttribute: Hashable, Sendable {
    /// MAPPED-ADDRESS (RFC 8489 §14.1).
    case mappedAddress(STUNAddress)
    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
    case xorMappedAddress(STUNAddress)
    /// XOR-PEER-ADDRESS (RFC 8656 §18.3).
    case xorPeerAddress(STUNAddress)
    /// XOR-RELAYED-ADDRESS (RFC 8656 §18.5).
    case xorRelayedAddress(STUNAddress)
    /// ALTERNATE-SERVER (RFC 8489 §14.15).
    case alternateServer(STUNAddress)
    /// USERNAME (RFC 8489 §14.3).
    case username(String)
    /// USERHASH (RFC 8489 §14.4), 32 bytes, kept raw.
    case userhash([UInt8])
    /// MESSAGE-INTEGRITY (RFC 8489 §14.5): the 20-byte HMAC-SHA1 as received.
    /// To add one when encoding, pass a key to `encode(integrity:)` instead.
    case messageIntegrity([UInt8])
    /// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6): 16-32 bytes, kept raw.
    case messageIntegritySHA256([UInt8])
    /// FINGERPRINT (RFC 8489 §14.7) as received. To add one when encoding,
    /// pass `fingerprint: true` to `encode` instead.
    case fingerprint(UInt32)
    /// ERROR-CODE (RFC 8489 §14.8).
    case errorCode(STUNErrorCode)
    /// REALM (RFC 8489 §14.9).
    case realm(String)
    /// NONCE (RFC 8489 §14.10).
    case nonce(String)
    /// PASSWORD-ALGORITHMS (RFC 8489 §14.11), raw value.
    case passwordAlgorithms([UInt8])
    /// PASSWORD-ALGORITHM (RFC 8489 §14.12), raw value.
    case passwordAlgorithm([UInt8])
    /// UNKNOWN-ATTRIBUTES (RFC 8489 §14.13).
    case unknownAttributes([STUNAttributeType])
    /// SOFTWARE (RFC 8489 §14.14).
    case software(String)
    /// PRIORITY (RFC 8445 §16.1).
    case priority(UInt32)
    /// USE-CANDIDATE (RFC 8445 §16.1), no value.
    case useCandidate
    /// ICE-CONTROLLED (RFC 8445 §16.1): the agent's 64-bit tiebreaker.
    case iceControlled(UInt64)
    /// ICE-CONTROLLING (RFC 8445 §16.1): the agent's 64-bit tiebreaker.
    case iceControlling(UInt64)
    /// CHANNEL-NUMBER (RFC 8656 §18.1); the RFFU half is not kept.
    case channelNumber(UInt16)
    /// LIFETIME (RFC 8656 §18.2), seconds.
    case lifetime(UInt32)
    /// DATA (RFC 8656 §18.4).
    case data([UInt8])
    /// REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.6): 0x01 IPv4, 0x02 IPv6.
    case requestedAddressFamily(UInt8)
    /// EVEN-PORT (RFC 8656 §18.7): the R bit (reserve the next port too).
    case evenPort(reserveNext: Bool)
    /// REQUESTED-TRANSPORT (RFC 8656 §18.8): an IP protocol number, 17 for UDP.
    case requestedTransport(UInt8)
    /// DONT-FRAGMENT (RFC 8656 §18.9), no value.
    case dontFragment
    /// RESERVATION-TOKEN (RFC 8656 §18.10), 8 bytes.
    case reservationToken(UInt64)
    /// CONNECTION-ID (RFC 6062 §6.2.1).
    case connectionID(UInt32)
    /// Any other attribute, kept verbatim (value without padding).
    case unknown(type: STUNAttributeType, value: [UInt8])

    /// The attribute's type code.
    public var type: STUNAttributeType {
        switch self {
        case .mappedAddress: return .mappedAddress
        case .xorMappedAddress: return .xorMappedAddress
        case .xorPeerAddress: return .xorPeerAddress
        case .xorRelayedAddress: return .xorRelayedAddress
        case .alternateServer: return .alternateServer
        case .username: return .username
        case .userhash: return .userhash
        case .messageIntegrity: return .messageIntegrity
        case .messageIntegritySHA256: return .messageIntegritySHA256
        case .fingerprint: return .fingerprint
        case .errorCode: return .errorCode
        case .realm: return .realm
        case .nonce: return .nonce
        case .passwordAlgorithms: return .passwordAlgorithms
        case .passwordAlgorithm: return .passwordAlgorithm
        case .unknownAttributes: return .unknownAttributes
        case .software: return .software
        case .priority: return .priority
        case .useCandidate: return .useCandidate
        case .iceControlled: return .iceControlled
        case .iceControlling: return .iceControlling
        case .channelNumber: return .channelNumber
        case .lifetime: return .lifetime
        case .data: return .data
        case .requestedAddressFamily: return .requestedAddressFamily
        case .evenPort: return .evenPort
        case .requestedTransport: return .requestedTransport
        case .dontFragment: return .dontFragment
        case .reservationToken: return .reservationToken
        case .connectionID: return .connectionID
        case .unknown(let type, _): return type
        }
    }
}

// MARK: - Value codec

extension STUNAttribute {
    /// Decodes one attribute value (without padding). `transactionID` is for
    /// the XOR address attributes.
    static func decode(
        type: UInt16,
        value: ArraySlice<UInt8>,
        transactionID: STUNTransactionID
    ) throws(STUNError) -> STUNAttribute {
        func exactly(_ length: Int) throws(STUNError) {
            guard value.count == length else {
                throw .malformedAttribute(type: type, reason: "length \(value.count), expected \(length)")
            }
        }
        var reader = WireReader(value)
        // The next field of the value (its length checked first, so a short
        // read says what the check missed).
        func field<T: FixedWidthInteger>(_: T.Type) throws(STUNError) -> T {
            do { return try reader.readInteger() } catch { throw .malformedAttribute(type: type, reason: error.description) }
        }
        switch STUNAttributeType(type) {
        case .mappedAddress:
            return .mappedAddress(try decodeAddress(type: type, value: value, xor: nil))
        case .xorMappedAddress:
            return .xorMappedAddress(try decodeAddress(type: type, value: value, xor: transactionID))
        case .xorPeerAddress:
            return .xorPeerAddress(try decodeAddress(type: type, value: value, xor: transactionID))
        case .xorRelayedAddress:
            return .xorRelayedAddress(try decodeAddress(type: type, value: value, xor: transactionID))
        case .alternateServer:
            return .alternateServer(try decodeAddress(type: type, value: value, xor: nil))
        case .username:
            return .username(String(decoding: value, as: UTF8.self))
        case .userhash:
            // RFC 8489 §14.4: "The value of USERHASH has a fixed length of 32 bytes."
            try exactly(32)
            return .userhash(Array(value))
        case .messageIntegrity:
            // RFC 8489 §14.5: HMAC-SHA1, 20 bytes.
            try exactly(20)
            return .messageIntegrity(Array(value))
        case .messageIntegritySHA256:
            // RFC 8489 §14.6: at least 16 bytes, at most 32, a multiple of 4.
            guard (16...32).contains(value.count), value.count % 4 == 0 else {
                throw .malformedAttribute(type: type, reason: "length \(value.count), expected 16-32 in steps of 4")
            }
            return .messageIntegritySHA256(Array(value))
        case .fingerprint:
            try exactly(4)
            return .fingerprint(try field(UInt32.self))
        case .errorCode:
            // RFC 8489 §14.8: 21 reserved bits, class (3 bits, 3-6), number (8 bits, 0-99), reason.
            guard value.count >= 4 else {
                throw .malformedAttribute(type: type, reason: "length \(value.count), expected at least 4")
            }
            _ = try field(UInt16.self)
            let errorClass = Int(try field(UInt8.self) & 0x07)
            let number = Int(try field(UInt8.self))
            guard (3...6).contains(errorClass), number <= 99 else {
                throw .malformedAttribute(type: type, reason: "class \(errorClass) number \(number) is not a code 300-699")
            }
            let reason = String(decoding: reader.readRemaining(), as: UTF8.self)
            return .errorCode(STUNErrorCode(code: errorClass * 100 + number, reason: reason))
        case .realm:
            return .realm(String(decoding: value, as: UTF8.self))
        case .nonce:
            return .nonce(String(decoding: value, as: UTF8.self))
        case .passwordAlgorithms:
            return .passwordAlgorithms(Array(value))
        case .passwordAlgorithm:
            return .passwordAlgorithm(Array(value))
        case .unknownAttributes:
            // RFC 8489 §14.13: a list of 16-bit types.
            guard value.count % 2 == 0 else {
                throw .malformedAttribute(type: type, reason: "odd length \(value.count)")
            }
            var types: [STUNAttributeType] = []
            types.reserveCapacity(value.count / 2)
            while !reader.isAtEnd {
                types.append(STUNAttributeType(try field(UInt16.self)))
            }
            return .unknownAttributes(types)
        case .software:
            return .software(String(decoding: value, as: UTF8.self))
        case .priority:
            try exactly(4)
            return .priority(try field(UInt32.self))
        case .useCandidate:
            // RFC 8445 §16.1: "The USE-CANDIDATE attribute has no content".
            try exactly(0)
            return .useCandidate
        case .iceControlled:
            try exactly(8)
            return .iceControlled(try field(UInt64.self))
        case .iceControlling:
            try exactly(8)
            return .iceControlling(try field(UInt64.self))
        case .channelNumber:
            // RFC 8656 §18.1: 16-bit number, 16 bits RFFU.
            try exactly(4)
            return .channelNumber(try field(UInt16.self))
        case .lifetime:
            try exactly(4)
            return .lifetime(try field(UInt32.self))
        case .data:
            return .data(Array(value))
        case .requestedAddressFamily:
            // RFC 8656 §18.6: family (8 bits), 24 bits RFFU.
            try exactly(4)
            return .requestedAddressFamily(try field(UInt8.self))
        case .evenPort:
            // RFC 8656 §18.7: one byte, R in the top bit.
            try exactly(1)
            return .evenPort(reserveNext: try field(UInt8.self) & 0x80 != 0)
        case .requestedTransport:
            // RFC 8656 §18.8: protocol (8 bits), 24 bits RFFU.
            try exactly(4)
            return .requestedTransport(try field(UInt8.self))
        case .dontFragment:
            try exactly(0)
            return .dontFragment
        case .reservationToken:
            try exactly(8)
            return .reservationToken(try field(UInt64.self))
        case .connectionID:
            try exactly(4)
            return .connectionID(try field(UInt32.self))
        default:
            return .unknown(type: STUNAttributeType(type), value: Array(value))
        }
    }

    /// RFC 8489 §14.1 / §14.2: reserved byte, family, port, address. With a
    /// transaction id, port and address are XORed with the magic cookie (and,
    /// for IPv6, the cookie followed by the transaction id).
    static func decodeAddress(
        type: UInt16,
        value: ArraySlice<UInt8>,
        xor transactionID: STUNTransactionID?
    ) throws(STUNError) -> STUNAddress {
        var reader = WireReader(value)
        let badLength = STUNError.badAddressLength(type: type, length: value.count)
        func field<T: FixedWidthInteger>(_: T.Type) throws(STUNError) -> T {
            do { return try reader.readInteger() } catch { throw badLength }
        }
        _ = try field(UInt8.self)  // reserved
        let family = try field(UInt8.self)
        var port = try field(UInt16.self)
        if transactionID != nil { port ^= UInt16(truncatingIfNeeded: STUN.magicCookie >> 16) }
        switch family {
        case 0x01:
            guard reader.remaining == 4 else { throw badLength }
            var ip = try field(UInt32.self)
            if transactionID != nil { ip ^= STUN.magicCookie }
            return STUNAddress(family: .ipv4(ip), port: port)
        case 0x02:
            guard reader.remaining == 16 else { throw badLength }
            var high = try field(UInt64.self)
            var low = try field(UInt64.self)
            if let transactionID {
                high ^= UInt64(STUN.magicCookie) << 32 | UInt64(transactionID.high)
                low ^= transactionID.low
            }
            return STUNAddress(family: .ipv6(high, low), port: port)
        default:
            throw .badAddressFamily(type: type, family: family)
        }
    }

    /// Appends the value (no header, no padding) to `buffer`.
    func appendValue(to buffer: inout [UInt8], transactionID: STUNTransactionID) throws(STUNError) {
        switch self {
        case .mappedAddress(let address), .alternateServer(let address):
            Self.appendAddress(address, to: &buffer, xor: nil)
        case .xorMappedAddress(let address), .xorPeerAddress(let address), .xorRelayedAddress(let address):
            Self.appendAddress(address, to: &buffer, xor: transactionID)
        case .username(let text), .realm(let text), .nonce(let text), .software(let text):
            buffer.append(contentsOf: text.utf8)
        case .userhash(let bytes), .messageIntegrity(let bytes), .messageIntegritySHA256(let bytes),
            .passwordAlgorithms(let bytes), .passwordAlgorithm(let bytes), .data(let bytes):
            buffer.append(contentsOf: bytes)
        case .unknown(_, let bytes):
            buffer.append(contentsOf: bytes)
        case .fingerprint(let value), .priority(let value), .lifetime(let value), .connectionID(let value):
            buffer.appendBigEndian(value)
        case .errorCode(let error):
            guard (300...699).contains(error.code) else {
                throw .malformedAttribute(type: STUNAttributeType.errorCode.rawValue, reason: "code \(error.code) is not 300-699")
            }
            buffer.appendBigEndian(UInt16(0))
            buffer.append(UInt8(error.code / 100))
            buffer.append(UInt8(error.code % 100))
            buffer.append(contentsOf: error.reason.utf8)
        case .unknownAttributes(let types):
            for type in types { buffer.appendBigEndian(type.rawValue) }
        case .useCandidate, .dontFragment:
            break
        case .iceControlled(let value), .iceControlling(let value), .reservationToken(let value):
            buffer.appendBigEndian(value)
        case .channelNumber(let number):
            buffer.appendBigEndian(number)
            buffer.appendBigEndian(UInt16(0))
        case .requestedAddressFamily(let byte), .requestedTransport(let byte):
            buffer.appendBigEndian(UInt32(byte) << 24)  // the byte, then 24 bits RFFU
        case .evenPort(let reserveNext):
            buffer.append(reserveNext ? 0x80 : 0x00)
        }
    }

    static func appendAddress(_ address: STUNAddress, to buffer: inout [UInt8], xor transactionID: STUNTransactionID?) {
        let cookieHigh = UInt16(truncatingIfNeeded: STUN.magicCookie >> 16)
        buffer.append(0)
        buffer.append(address.family.code)
        buffer.appendBigEndian(transactionID == nil ? address.port : address.port ^ cookieHigh)
        switch address.family {
        case .ipv4(let ip):
            buffer.appendBigEndian(transactionID == nil ? ip : ip ^ STUN.magicCookie)
        case .ipv6(var high, var low):
            if let transactionID {
                high ^= UInt64(STUN.magicCookie) << 32 | UInt64(transactionID.high)
                low ^= transactionID.low
            }
            buffer.appendBigEndian(high)
            buffer.appendBigEndian(low)
        }
    }
}
