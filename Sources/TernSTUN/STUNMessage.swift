import TernWire

/// Constants and the first-byte test used to demultiplex a UDP socket.
public enum STUN {
    /// RFC 8489 §5: the fixed value in bytes 4-7 of every RFC 5389+ message.
    public static let magicCookie: UInt32 = 0x2112_A442
    /// RFC 8489 §5: type (2), length (2), cookie (4), transaction id (12).
    public static let headerLength = 20

    /// RFC 7983 §7: a first byte of 0-3 means STUN on a multiplexed socket.
    @inlinable
    public static func isSTUN(firstByte: UInt8) -> Bool {
        firstByte <= 3
    }

    /// A cheap pre-check before decoding: long enough, leading bits clear, and
    /// the magic cookie in place (RFC 8489 §5).
    public static func looksLikeSTUN(_ datagram: ArraySlice<UInt8>) -> Bool {
        let reader = WireReader(datagram)
        guard datagram.count >= headerLength, let first = reader.peekInteger(as: UInt8.self),
              let cookie = reader.peekInteger(ahead: 4, as: UInt32.self)
        else { return false }
        return isSTUN(firstByte: first) && cookie == magicCookie
    }

    public static func looksLikeSTUN(_ datagram: [UInt8]) -> Bool {
        looksLikeSTUN(datagram[...])
    }

    /// Whether a datagram's message type is a Binding (request, indication
    /// or answer), from its first two bytes: the method's bits with the
    /// class bits (0x0110) masked out (RFC 8489 §5). False when shorter.
    public static func isBinding(_ datagram: [UInt8]) -> Bool {
        guard let type = WireReader(datagram).peekInteger(as: UInt16.self) else { return false }
        return type & 0x3EEF == STUNMethod.binding.rawValue
    }
}

/// The message class, two bits spread through the type field (RFC 8489 §5).
public enum STUNClass: UInt8, Hashable, Sendable, CaseIterable {
    case request = 0b00
    case indication = 0b01
    case successResponse = 0b10
    case errorResponse = 0b11
}

/// The 12-bit message method (RFC 8489 §5, §18.2). Any 12-bit value decodes;
/// the named ones are those tern speaks.
public struct STUNMethod: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt16

    /// Nil when `rawValue` does not fit the 12 bits a method has.
    public init?(rawValue: UInt16) {
        guard rawValue <= 0x0FFF else { return nil }
        self.rawValue = rawValue
    }

    private init(_ value: UInt16) {
        self.rawValue = value
    }

    /// RFC 8489 §18.2.
    public static let binding = STUNMethod(0x001)
    /// RFC 8656 §17.
    public static let allocate = STUNMethod(0x003)
    public static let refresh = STUNMethod(0x004)
    public static let send = STUNMethod(0x006)
    public static let data = STUNMethod(0x007)
    public static let createPermission = STUNMethod(0x008)
    public static let channelBind = STUNMethod(0x009)

    public var description: String {
        switch self {
        case .binding: return "Binding"
        case .allocate: return "Allocate"
        case .refresh: return "Refresh"
        case .send: return "Send"
        case .data: return "Data"
        case .createPermission: return "CreatePermission"
        case .channelBind: return "ChannelBind"
        default: return "Method(0x\(String(rawValue, radix: 16)))"
        }
    }
}

/// The 96-bit transaction id (RFC 8489 §5), kept in two integers so that it is
/// cheap to copy, hash and compare.
public struct STUNTransactionID: Hashable, Sendable, CustomStringConvertible {
    /// Bytes 0-3 of the id.
    public var high: UInt32
    /// Bytes 4-11 of the id.
    public var low: UInt64

    public init(high: UInt32, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Nil unless exactly 12 bytes are given.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 12 else { return nil }
        var high: UInt32 = 0
        var low: UInt64 = 0
        for (index, byte) in bytes.enumerated() {
            if index < 4 { high = high << 8 | UInt32(byte) } else { low = low << 8 | UInt64(byte) }
        }
        self.init(high: high, low: low)
    }

    /// RFC 8489 §5: "The transaction ID MUST be uniformly and randomly chosen
    /// from the interval 0 .. 2**96-1, and MUST be cryptographically random."
    /// The default generator is the system CSPRNG.
    public static func random() -> STUNTransactionID {
        var generator = SystemRandomNumberGenerator()
        return random(using: &generator)
    }

    /// A random id from `generator` (tests pass a seeded one).
    public static func random(using generator: inout some RandomNumberGenerator) -> STUNTransactionID {
        STUNTransactionID(high: generator.next(), low: generator.next())
    }

    /// The 12 bytes in wire order.
    public var bytes: [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(12)
        bytes.appendBigEndian(high)
        bytes.appendBigEndian(low)
        return bytes
    }

    public var description: String {
        hex(high) + hex(low)
    }
}

/// The fixed 20-byte header, for callers that need to look before decoding
/// attributes (a server answers 400 to a request whose attributes are bad, but
/// only if the header is good: RFC 8489 §6.3).
public struct STUNHeader: Hashable, Sendable {
    public var messageClass: STUNClass
    public var method: STUNMethod
    /// The message length field: bytes of attributes after the header.
    public var length: Int
    public var transactionID: STUNTransactionID

    /// Checks what RFC 8489 §6.3 calls the basic validity of a message: the
    /// two leading zero bits, a length that is a multiple of four and matches
    /// the datagram exactly, and the magic cookie (RFC 8489 §5).
    public static func decode(_ datagram: ArraySlice<UInt8>) throws(STUNError) -> STUNHeader {
        var reader = WireReader(datagram)
        let type: UInt16, length: Int, cookie: UInt32, high: UInt32, low: UInt64
        do {
            type = try reader.readUInt16()
            length = Int(try reader.readUInt16())
            cookie = try reader.readUInt32()
            high = try reader.readUInt32()
            low = try reader.readUInt64()
        } catch {
            throw .truncated(needed: STUN.headerLength, available: datagram.count)
        }
        // RFC 8489 §5: "The most significant 2 bits of every STUN message MUST be zeroes."
        guard type & 0xC000 == 0 else { throw .notSTUN(firstByte: UInt8(truncatingIfNeeded: type >> 8)) }
        // RFC 8489 §5: attributes are padded, so the length is a multiple of 4.
        guard length % 4 == 0 else { throw .lengthNotMultipleOfFour(length) }
        guard cookie == STUN.magicCookie else { throw .badMagicCookie(cookie) }
        let available = reader.remaining
        guard length <= available else { throw .lengthMismatch(declared: length, available: available) }
        guard length == available else { throw .trailingBytes(available - length) }

        // RFC 8489 §5, Figure 3: M11..M7 C1 M6..M4 C0 M3..M0.
        let classBits = UInt8(truncatingIfNeeded: (type >> 7) & 0b10 | (type >> 4) & 0b01)
        let methodBits = (type & 0x000F) | (type >> 1) & 0x0070 | (type >> 2) & 0x0F80
        // Both are in range by construction (2 and 12 bits); the fallbacks are unreachable.
        let messageClass = STUNClass(rawValue: classBits) ?? .request
        let method = STUNMethod(rawValue: methodBits) ?? .binding
        let transactionID = STUNTransactionID(high: high, low: low)
        return STUNHeader(messageClass: messageClass, method: method, length: length, transactionID: transactionID)
    }

    public static func decode(_ datagram: [UInt8]) throws(STUNError) -> STUNHeader {
        try decode(datagram[...])
    }

    /// The 14-bit message type field for a class and method (RFC 8489 §5).
    static func messageType(_ messageClass: STUNClass, _ method: STUNMethod) -> UInt16 {
        let m = method.rawValue
        let c = UInt16(messageClass.rawValue)
        return (m & 0x000F) | (m & 0x0070) << 1 | (m & 0x0F80) << 2 | (c & 0b01) << 4 | (c & 0b10) << 7
    }
}

/// A STUN message: header fields and the ordered list of attributes.
///
/// Decoding keeps attributes in wire order, including MESSAGE-INTEGRITY and
/// FINGERPRINT with their received values; attributes after MESSAGE-INTEGRITY
/// other than MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are dropped, because
/// RFC 8489 §14.5 says to ignore them.
public struct STUNMessage: Hashable, Sendable {
    public var messageClass: STUNClass
    public var method: STUNMethod
    public var transactionID: STUNTransactionID
    public var attributes: [STUNAttribute]

    public init(
        _ messageClass: STUNClass,
        _ method: STUNMethod,
        transactionID: STUNTransactionID,
        attributes: [STUNAttribute] = []
    ) {
        self.messageClass = messageClass
        self.method = method
        self.transactionID = transactionID
        self.attributes = attributes
    }

    // MARK: Accessors (the first attribute of a type is the one that counts)

    public var mappedAddress: STUNAddress? { first { if case .mappedAddress(let a) = $0 { a } else { nil } } }
    public var xorMappedAddress: STUNAddress? { first { if case .xorMappedAddress(let a) = $0 { a } else { nil } } }
    public var xorRelayedAddress: STUNAddress? { first { if case .xorRelayedAddress(let a) = $0 { a } else { nil } } }
    /// All XOR-PEER-ADDRESS attributes: CreatePermission may carry several (RFC 8656 §9.1).
    public var xorPeerAddresses: [STUNAddress] { attributes.compactMap { if case .xorPeerAddress(let a) = $0 { a } else { nil } } }
    public var alternateServer: STUNAddress? { first { if case .alternateServer(let a) = $0 { a } else { nil } } }
    public var username: String? { first { if case .username(let s) = $0 { s } else { nil } } }
    public var realm: String? { first { if case .realm(let s) = $0 { s } else { nil } } }
    public var nonce: String? { first { if case .nonce(let s) = $0 { s } else { nil } } }
    public var software: String? { first { if case .software(let s) = $0 { s } else { nil } } }
    public var errorCode: STUNErrorCode? { first { if case .errorCode(let e) = $0 { e } else { nil } } }
    public var unknownAttributes: [STUNAttributeType]? { first { if case .unknownAttributes(let t) = $0 { t } else { nil } } }
    public var priority: UInt32? { first { if case .priority(let p) = $0 { p } else { nil } } }
    public var useCandidate: Bool { attributes.contains(.useCandidate) }
    public var iceControlled: UInt64? { first { if case .iceControlled(let t) = $0 { t } else { nil } } }
    public var iceControlling: UInt64? { first { if case .iceControlling(let t) = $0 { t } else { nil } } }
    public var lifetime: UInt32? { first { if case .lifetime(let l) = $0 { l } else { nil } } }
    public var channelNumber: UInt16? { first { if case .channelNumber(let n) = $0 { n } else { nil } } }
    public var data: [UInt8]? { first { if case .data(let d) = $0 { d } else { nil } } }
    public var messageIntegrity: [UInt8]? { first { if case .messageIntegrity(let m) = $0 { m } else { nil } } }
    public var fingerprint: UInt32? { first { if case .fingerprint(let f) = $0 { f } else { nil } } }

    /// Unknown attributes in the comprehension-required range 0x0000-0x7FFF.
    /// A server answers a request carrying any with 420 and lists them in
    /// UNKNOWN-ATTRIBUTES (RFC 8489 §6.3.1.1).
    public var unknownComprehensionRequired: [STUNAttributeType] {
        attributes.compactMap {
            if case .unknown(let type, _) = $0, type.isComprehensionRequired { type } else { nil }
        }
    }

    private func first<T>(_ extract: (STUNAttribute) -> T?) -> T? {
        for attribute in attributes {
            if let value = extract(attribute) { return value }
        }
        return nil
    }
}
