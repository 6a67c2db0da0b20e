/// Everything that can go wrong in TernSTUN: a malformed or hostile datagram,
/// a failed integrity or fingerprint check, or a value too large to encode.
///
/// One error type for the whole module. Every case has a human `reason`; the
/// cases themselves are the stable code a caller switches on (a relay counts
/// drops by case, the CLI maps them to a sentence).
public enum STUNError: Error, Hashable, Sendable, CustomStringConvertible {
    // MARK: Header (RFC 8489 §5): a message failing these is silently dropped.

    /// Fewer bytes than the 20-byte STUN header.
    case truncated(needed: Int, available: Int)
    /// The first two bits of the message are not zero (RFC 8489 §5).
    case notSTUN(firstByte: UInt8)
    /// The message length field is not a multiple of four (RFC 8489 §5).
    case lengthNotMultipleOfFour(Int)
    /// The message length field claims more bytes than the datagram holds.
    case lengthMismatch(declared: Int, available: Int)
    /// The datagram holds bytes past the end the length field declares.
    case trailingBytes(Int)
    /// The magic cookie is not 0x2112A442 (RFC 8489 §5); RFC 3489 peers are not spoken to.
    case badMagicCookie(UInt32)

    // MARK: Attributes (RFC 8489 §14)

    /// An attribute's declared length runs past the end of the message.
    case attributeOverrun(type: UInt16, offset: Int)
    /// An address attribute with a family other than IPv4 (0x01) or IPv6 (0x02).
    case badAddressFamily(type: UInt16, family: UInt8)
    /// An address attribute whose length does not match its family.
    case badAddressLength(type: UInt16, length: Int)
    /// A known attribute whose value does not have the form its RFC gives.
    case malformedAttribute(type: UInt16, reason: String)
    /// An attribute follows FINGERPRINT (RFC 8489 §14.7: it must be last).
    case fingerprintNotLast

    // MARK: Checks

    /// No MESSAGE-INTEGRITY attribute to check.
    case integrityMissing
    /// MESSAGE-INTEGRITY does not match the key (RFC 8489 §9.1.3 / §9.2.4).
    case integrityMismatch
    /// No FINGERPRINT attribute to check.
    case fingerprintMissing
    /// FINGERPRINT does not match the message's CRC-32 (RFC 8489 §14.7).
    case fingerprintMismatch(expected: UInt32, actual: UInt32)
    /// OpenSSL failed to compute a digest or MAC (the name says which).
    case cryptoFailure(String)

    // MARK: Encoding

    /// An attribute value longer than the 16-bit length field can carry.
    case valueTooLong(type: UInt16, length: Int)
    /// A message whose attributes exceed the 16-bit message length field.
    case messageTooLarge(Int)

    // MARK: TURN ChannelData (RFC 8656 §12)

    /// A channel number outside 0x4000-0x4FFF (RFC 8656 §12).
    case badChannelNumber(UInt16)
    /// ChannelData whose length field claims more bytes than were received.
    case channelDataTruncated(declared: Int, available: Int)
    /// ChannelData application data over the 65535-byte length field.
    case channelDataTooLarge(Int)

    /// One sentence for a log line or a user; never includes secret material.
    public var reason: String {
        switch self {
        case .truncated(let needed, let available):
            return "STUN message too short: \(available) bytes, need at least \(needed)"
        case .notSTUN(let firstByte):
            return "not a STUN message: first byte 0x\(hex(firstByte)) has a leading bit set"
        case .lengthNotMultipleOfFour(let length):
            return "STUN message length \(length) is not a multiple of 4"
        case .lengthMismatch(let declared, let available):
            return "STUN message length \(declared) is more than the \(available) bytes received"
        case .trailingBytes(let count):
            return "\(count) bytes follow the end of the STUN message"
        case .badMagicCookie(let cookie):
            return "bad STUN magic cookie 0x\(hex(cookie))"
        case .attributeOverrun(let type, let offset):
            return "STUN attribute 0x\(hex(type)) at offset \(offset) runs past the end of the message"
        case .badAddressFamily(let type, let family):
            return "STUN attribute 0x\(hex(type)) has unknown address family 0x\(hex(family))"
        case .badAddressLength(let type, let length):
            return "STUN attribute 0x\(hex(type)) has address length \(length), which does not fit its family"
        case .malformedAttribute(let type, let why):
            return "malformed STUN attribute 0x\(hex(type)): \(why)"
        case .fingerprintNotLast:
            return "an attribute follows FINGERPRINT, which must be last"
        case .integrityMissing:
            return "STUN message has no MESSAGE-INTEGRITY"
        case .integrityMismatch:
            return "STUN MESSAGE-INTEGRITY does not match the key"
        case .fingerprintMissing:
            return "STUN message has no FINGERPRINT"
        case .fingerprintMismatch(let expected, let actual):
            return "STUN FINGERPRINT 0x\(hex(actual)) does not match computed 0x\(hex(expected))"
        case .cryptoFailure(let what):
            return "OpenSSL failed to compute \(what)"
        case .valueTooLong(let type, let length):
            return "STUN attribute 0x\(hex(type)) value of \(length) bytes does not fit a 16-bit length"
        case .messageTooLarge(let length):
            return "STUN message body of \(length) bytes does not fit a 16-bit length"
        case .badChannelNumber(let number):
            return "channel number 0x\(hex(number)) is outside 0x4000-0x4FFF"
        case .channelDataTruncated(let declared, let available):
            return "ChannelData claims \(declared) bytes of data but only \(available) arrived"
        case .channelDataTooLarge(let length):
            return "ChannelData payload of \(length) bytes does not fit a 16-bit length"
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
