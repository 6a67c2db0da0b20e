// Decoding and encoding whole STUN messages (RFC 8489 §5, §14).

import TernWire

/// One attribute as it sits in the datagram: header offset, type, raw value.
struct RawAttribute {
    var type: UInt16
    /// Offset of the 4-byte attribute header from the start of the message.
    var offset: Int
    /// The value without padding.
    var value: ArraySlice<UInt8>
}

/// Walks the attributes of a message whose header has been validated:
/// TernWire's padded TLV reader in the STUN layout (RFC 8489 §14: the value
/// is padded to a multiple of 4 bytes, and the padding is part of the
/// message). Every step moves forward by at least four bytes; an attribute
/// that runs past the message, padding included, throws.
struct AttributeWalker {
    private var items: PaddedTLVReader

    init(_ message: ArraySlice<UInt8>) {
        items = PaddedTLVReader(message.dropFirst(STUN.headerLength), format: .stun)
    }

    mutating func next() throws(STUNError) -> RawAttribute? {
        do {
            guard let item = try items.next() else { return nil }
            return RawAttribute(type: item.type, offset: STUN.headerLength + item.offset, value: item.value)
        } catch {
            throw .attributeOverrun(type: items.itemType ?? 0, offset: STUN.headerLength + items.itemOffset)
        }
    }
}

/// Where a decoder stands with respect to the attributes that end a message.
enum TrailerPhase {
    /// Nothing special seen yet: every attribute counts.
    case open
    /// After MESSAGE-INTEGRITY: only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT
    /// count, the rest is ignored (RFC 8489 §14.5).
    case afterIntegrity
    /// After MESSAGE-INTEGRITY-SHA256: only FINGERPRINT counts (RFC 8489 §14.6).
    case afterIntegritySHA256
    /// After FINGERPRINT: nothing may follow (RFC 8489 §14.7).
    case afterFingerprint

    /// Whether an attribute of `type` is to be processed, and the phase after
    /// it. Throws when something follows FINGERPRINT.
    func admit(_ type: UInt16) throws(STUNError) -> (counts: Bool, next: TrailerPhase) {
        let kind = STUNAttributeType(type)
        switch self {
        case .afterFingerprint:
            throw .fingerprintNotLast
        case .open:
            switch kind {
            case .messageIntegrity: return (true, .afterIntegrity)
            case .messageIntegritySHA256: return (true, .afterIntegritySHA256)
            case .fingerprint: return (true, .afterFingerprint)
            default: return (true, .open)
            }
        case .afterIntegrity:
            switch kind {
            case .messageIntegritySHA256: return (true, .afterIntegritySHA256)
            case .fingerprint: return (true, .afterFingerprint)
            default: return (false, .afterIntegrity)
            }
        case .afterIntegritySHA256:
            switch kind {
            case .fingerprint: return (true, .afterFingerprint)
            default: return (false, .afterIntegritySHA256)
            }
        }
    }
}

extension STUNMessage {
    /// Decodes one STUN message that fills `datagram` exactly.
    ///
    /// Throws for anything malformed: header (RFC 8489 §5), an attribute that
    /// overruns the message, a known attribute with a bad value, an attribute
    /// after FINGERPRINT. Does not check MESSAGE-INTEGRITY or FINGERPRINT
    /// values: see `checkIntegrity(of:key:)` and `checkFingerprint(of:)`.
    public static func decode(_ datagram: ArraySlice<UInt8>) throws(STUNError) -> STUNMessage {
        let header = try STUNHeader.decode(datagram)
        var attributes: [STUNAttribute] = []
        var walker = AttributeWalker(datagram)
        var phase = TrailerPhase.open
        while let raw = try walker.next() {
            let (counts, next) = try phase.admit(raw.type)
            phase = next
            guard counts else { continue }
            attributes.append(try STUNAttribute.decode(type: raw.type, value: raw.value, transactionID: header.transactionID))
        }
        return STUNMessage(header.messageClass, header.method, transactionID: header.transactionID, attributes: attributes)
    }

    public static func decode(_ datagram: [UInt8]) throws(STUNError) -> STUNMessage {
        try decode(datagram[...])
    }

    /// Encodes the message.
    ///
    /// The attributes are written in order, each padded to four bytes with
    /// `padding` (RFC 8489 §14 leaves the padding bytes' value open; RFC 5769's
    /// vectors use 0x20). Then, if `key` is given, MESSAGE-INTEGRITY computed
    /// with it (RFC 8489 §14.5), and if `fingerprint` is true, FINGERPRINT
    /// (RFC 8489 §14.7). Attributes already in the list, including received
    /// MESSAGE-INTEGRITY or FINGERPRINT values, are written verbatim.
    public func encode(integrity key: STUNKey? = nil, fingerprint: Bool = false, padding: UInt8 = 0) throws(STUNError) -> [UInt8] {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(STUN.headerLength + 64 + (key == nil ? 0 : 24) + (fingerprint ? 8 : 0))
        buffer.appendBigEndian(STUNHeader.messageType(messageClass, method))
        buffer.appendBigEndian(UInt16(0))  // length, set below
        buffer.appendBigEndian(STUN.magicCookie)
        buffer.appendBigEndian(transactionID.high)
        buffer.appendBigEndian(transactionID.low)

        for attribute in attributes {
            let start = buffer.startTLV(type: attribute.type.rawValue)
            try attribute.appendValue(to: &buffer, transactionID: transactionID)
            do {
                try buffer.finishTLV(startingAt: start, format: .stun, padding: padding)
            } catch {
                throw .valueTooLong(type: attribute.type.rawValue, length: error.available)
            }
            // Check as we go, so a huge list fails before it is all copied.
            guard buffer.count - STUN.headerLength <= Self.maximumBodyLength else {
                throw .messageTooLarge(buffer.count - STUN.headerLength)
            }
        }

        if let key {
            // RFC 8489 §14.5: the HMAC covers the message up to the attribute,
            // with the length field already counting MESSAGE-INTEGRITY itself
            // (and nothing after it).
            try setBodyLength(of: &buffer, to: buffer.count - STUN.headerLength + 24)
            let mac = try STUNCrypto.hmacSHA1(key: key, buffer[...])
            buffer.appendBigEndian(STUNAttributeType.messageIntegrity.rawValue)
            buffer.appendBigEndian(UInt16(20))
            buffer.append(contentsOf: mac)
        }
        if fingerprint {
            // RFC 8489 §14.7: CRC-32 of the message up to the attribute, with
            // the length field counting FINGERPRINT, XORed with 0x5354554e.
            try setBodyLength(of: &buffer, to: buffer.count - STUN.headerLength + 8)
            let crc = CRC32.checksum(buffer) ^ STUNMessage.fingerprintXOR
            buffer.appendBigEndian(STUNAttributeType.fingerprint.rawValue)
            buffer.appendBigEndian(UInt16(4))
            buffer.appendBigEndian(crc)
        }
        try setBodyLength(of: &buffer, to: buffer.count - STUN.headerLength)
        return buffer
    }

    /// The largest body a 16-bit length that is a multiple of 4 can describe.
    static let maximumBodyLength = 0xFFFC

    /// RFC 8489 §14.7: "XOR'ed with the 32-bit value 0x5354554e".
    static let fingerprintXOR: UInt32 = 0x5354_554E

    private func setBodyLength(of buffer: inout [UInt8], to length: Int) throws(STUNError) {
        guard length <= Self.maximumBodyLength else { throw .messageTooLarge(length) }
        buffer.setBigEndian(UInt16(length), at: 2)
    }
}
