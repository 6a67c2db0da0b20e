// The Data Channel Establishment Protocol (RFC 8832) messages, and the
// payload protocol identifiers that tell a data channel's SCTP user messages
// apart (RFC 8831 §8). A codec only: which stream a channel uses and the
// open/ack exchange belong to the channel state machine.

import TernWire

/// Payload protocol identifiers of WebRTC data channels (RFC 8831 §8; the
/// DCEP one from RFC 8832 §8.1). Carried in each DATA chunk's PPID field.
public struct DataChannelPPID: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32

    public init(rawValue: UInt32) {
        self.rawValue = rawValue
    }

    /// 50: a DCEP message (DATA_CHANNEL_OPEN or DATA_CHANNEL_ACK).
    public static let dcep = DataChannelPPID(rawValue: 50)
    /// 51: a UTF-8 string message.
    public static let string = DataChannelPPID(rawValue: 51)
    /// 52: part of a binary message. Deprecated (RFC 8831 §8): SCTP's own
    /// fragmentation carries large messages; received for old peers only.
    public static let binaryPartial = DataChannelPPID(rawValue: 52)
    /// 53: a binary message.
    public static let binary = DataChannelPPID(rawValue: 53)
    /// 54: part of a string message. Deprecated like `binaryPartial`.
    public static let stringPartial = DataChannelPPID(rawValue: 54)
    /// 56: an empty string message.
    public static let stringEmpty = DataChannelPPID(rawValue: 56)
    /// 57: an empty binary message.
    public static let binaryEmpty = DataChannelPPID(rawValue: 57)

    /// SCTP cannot carry an empty user message, so an empty message is sent
    /// as this one byte with `stringEmpty` or `binaryEmpty`, and the receiver
    /// ignores the byte (RFC 8831 §6.6).
    public static let emptyMessageUserData: [UInt8] = [0]

    /// The identifier for a user message of this kind and size.
    public static func forMessage(isString: Bool, isEmpty: Bool) -> DataChannelPPID {
        switch (isString, isEmpty) {
        case (true, false): return .string
        case (true, true): return .stringEmpty
        case (false, false): return .binary
        case (false, true): return .binaryEmpty
        }
    }

    public var isDeprecated: Bool { self == .binaryPartial || self == .stringPartial }

    /// Whether the message is text (51, 54, 56).
    public var isString: Bool { self == .string || self == .stringPartial || self == .stringEmpty }

    /// Whether the message is binary (52, 53, 57).
    public var isBinary: Bool { self == .binary || self == .binaryPartial || self == .binaryEmpty }

    /// Whether the message is empty whatever its user data (56, 57).
    public var isEmptyMessage: Bool { self == .stringEmpty || self == .binaryEmpty }

    public var description: String { String(rawValue) }
}

/// The channel type of DATA_CHANNEL_OPEN (RFC 8832 §5.1): reliability in the
/// low bits, 0x80 for unordered delivery.
public enum DataChannelType: UInt8, Hashable, Sendable, CaseIterable {
    case reliable = 0x00
    case reliableUnordered = 0x80
    case partialReliableRexmit = 0x01
    case partialReliableRexmitUnordered = 0x81
    case partialReliableTimed = 0x02
    case partialReliableTimedUnordered = 0x82

    /// RFC 8832 §5.1: the high bit of the channel type.
    public static let unorderedBit: UInt8 = 0x80

    public var isOrdered: Bool { rawValue & Self.unorderedBit == 0 }
}

/// DATA_CHANNEL_OPEN (RFC 8832 §5.1), sent on the stream the new channel uses.
public struct DataChannelOpen: Hashable, Sendable {
    /// What the reliability parameter means for the channel type.
    public enum Reliability: Hashable, Sendable {
        /// Retransmit until delivered.
        case reliable
        /// Give up on a message after this many retransmissions.
        case maxRetransmits(UInt32)
        /// Give up on a message this many milliseconds after it was handed to SCTP.
        case maxLifetime(milliseconds: UInt32)
    }

    /// The priority values WebRTC stacks send, by pion's names; RFC 8832 §5.1
    /// carries the field and leaves its meaning to RFC 8831.
    public static let priorityBelowNormal: UInt16 = 128
    public static let priorityNormal: UInt16 = 256
    public static let priorityHigh: UInt16 = 512
    public static let priorityExtraHigh: UInt16 = 1024

    public var channelType: DataChannelType
    public var priority: UInt16
    /// Retransmissions or milliseconds for the partially reliable types; for
    /// reliable ones sent as zero and ignored on receipt (RFC 8832 §5.1), but
    /// kept as received.
    public var reliabilityParameter: UInt32
    public var label: String
    /// The sub-protocol (RFC 8832 §5.1 "Protocol"); empty for none.
    public var subprotocol: String

    public init(channelType: DataChannelType, priority: UInt16, reliabilityParameter: UInt32, label: String, subprotocol: String) {
        self.channelType = channelType
        self.priority = priority
        self.reliabilityParameter = reliabilityParameter
        self.label = label
        self.subprotocol = subprotocol
    }

    public init(label: String, subprotocol: String = "", ordered: Bool = true, reliability: Reliability = .reliable,
                priority: UInt16 = DataChannelOpen.priorityNormal)
    {
        let type: DataChannelType
        let parameter: UInt32
        switch reliability {
        case .reliable: (type, parameter) = (ordered ? .reliable : .reliableUnordered, 0)
        case .maxRetransmits(let count): (type, parameter) = (ordered ? .partialReliableRexmit : .partialReliableRexmitUnordered, count)
        case .maxLifetime(let milliseconds):
            (type, parameter) = (ordered ? .partialReliableTimed : .partialReliableTimedUnordered, milliseconds)
        }
        self.init(channelType: type, priority: priority, reliabilityParameter: parameter, label: label, subprotocol: subprotocol)
    }

    public var isOrdered: Bool { channelType.isOrdered }

    public var reliability: Reliability {
        switch channelType {
        case .reliable, .reliableUnordered: return .reliable
        case .partialReliableRexmit, .partialReliableRexmitUnordered: return .maxRetransmits(reliabilityParameter)
        case .partialReliableTimed, .partialReliableTimedUnordered: return .maxLifetime(milliseconds: reliabilityParameter)
        }
    }

    /// Message type, channel type, priority, reliability parameter, label
    /// length, protocol length.
    public static let headerLength = 12
}

/// Bounds on what the decoder accepts (and the encoder produces). A
/// DATA_CHANNEL_OPEN over a bound is refused with `labelTooLong` or
/// `protocolTooLong`; `DataChannelEndpoint` drops it unanswered, and the
/// label and protocol are all it keeps of a peer's OPEN beyond fixed fields.
public struct DCEPLimits: Hashable, Sendable {
    /// Longest label, in bytes. Default 1024: tern's labels are a few bytes,
    /// browsers send what the page chose; the wire allows 65535, which a
    /// peer could send on every stream.
    public var maximumLabelLength: Int
    /// Longest protocol, in bytes. Default 1024, as the label: sub-protocol
    /// names are short (tern's is "tern/1"); the wire allows 65535.
    public var maximumProtocolLength: Int

    public init(maximumLabelLength: Int = 1024, maximumProtocolLength: Int = 1024) {
        self.maximumLabelLength = maximumLabelLength
        self.maximumProtocolLength = maximumProtocolLength
    }

    public static let `default` = DCEPLimits()
}

/// A DCEP message (RFC 8832 §5), the user data of a DATA chunk with PPID 50.
public enum DCEPMessage: Hashable, Sendable {
    case open(DataChannelOpen)
    case ack

    /// RFC 8832 §8.2.1
    public static let openMessageType: UInt8 = 0x03
    public static let ackMessageType: UInt8 = 0x02
    /// The longest DATA_CHANNEL_ACK accepted: its one byte (RFC 8832 §5.2)
    /// and up to three of padding, which pion sends.
    public static let maximumAckLength = 4

    /// Decodes one message that fills `bytes`.
    ///
    /// DATA_CHANNEL_OPEN must end where its label and protocol lengths say;
    /// both strings must be UTF-8 and within `limits`. DATA_CHANNEL_ACK is one
    /// byte (RFC 8832 §5.2), but up to three more are accepted and ignored:
    /// pion pads its ACK to four bytes.
    public static func decode(_ bytes: ArraySlice<UInt8>, limits: DCEPLimits = .default) throws(DataChannelError) -> DCEPMessage {
        guard let type = bytes.first else { throw .empty }
        switch type {
        case ackMessageType:
            guard bytes.count <= maximumAckLength else { throw .trailingBytes(bytes.count - 1) }
            return .ack
        case openMessageType:
            return .open(try decodeOpen(bytes, limits: limits))
        default:
            throw .unknownMessageType(type)
        }
    }

    public static func decode(_ bytes: [UInt8], limits: DCEPLimits = .default) throws(DataChannelError) -> DCEPMessage {
        try decode(bytes[...], limits: limits)
    }

    private static func decodeOpen(_ bytes: ArraySlice<UInt8>, limits: DCEPLimits) throws(DataChannelError) -> DataChannelOpen {
        let header = DataChannelOpen.headerLength
        var reader = WireReader(bytes)
        let rawType: UInt8, priority: UInt16, reliabilityParameter: UInt32, labelLength: Int, protocolLength: Int
        do {
            _ = try reader.readUInt8()  // the message type, read by `decode`
            rawType = try reader.readUInt8()
            priority = try reader.readUInt16()
            reliabilityParameter = try reader.readUInt32()
            labelLength = Int(try reader.readUInt16())
            protocolLength = Int(try reader.readUInt16())
        } catch {
            throw .truncated(needed: header, available: bytes.count)
        }
        guard let channelType = DataChannelType(rawValue: rawType) else { throw .unknownChannelType(rawType) }
        guard labelLength <= limits.maximumLabelLength else {
            throw .labelTooLong(length: labelLength, limit: limits.maximumLabelLength)
        }
        guard protocolLength <= limits.maximumProtocolLength else {
            throw .protocolTooLong(length: protocolLength, limit: limits.maximumProtocolLength)
        }
        let needed = header + labelLength + protocolLength
        guard reader.remaining == labelLength + protocolLength,
              let labelBytes = try? reader.readSlice(count: labelLength),
              let protocolBytes = try? reader.readSlice(count: protocolLength)
        else {
            if bytes.count < needed { throw .truncated(needed: needed, available: bytes.count) }
            throw .trailingBytes(bytes.count - needed)
        }
        guard let label = validUTF8(labelBytes) else { throw .labelNotUTF8 }
        guard let subprotocol = validUTF8(protocolBytes) else { throw .protocolNotUTF8 }
        return DataChannelOpen(
            channelType: channelType, priority: priority, reliabilityParameter: reliabilityParameter, label: label, subprotocol: subprotocol)
    }

    /// The string, if `bytes` is well-formed UTF-8 (no overlong forms,
    /// surrogates or values past U+10FFFF).
    static func validUTF8(_ bytes: ArraySlice<UInt8>) -> String? {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue: continue
            case .emptyInput: return String(decoding: bytes, as: UTF8.self)
            case .error: return nil
            }
        }
    }

    /// Appends the encoded message. On a throw, `buffer` is as it was.
    public func encode(into buffer: inout [UInt8], limits: DCEPLimits = .default) throws(DataChannelError) {
        switch self {
        case .ack:
            buffer.append(Self.ackMessageType)
        case .open(let open):
            let label = open.label.utf8
            let subprotocol = open.subprotocol.utf8
            // The length fields are 16 bits, whatever the limits say.
            let labelLimit = min(limits.maximumLabelLength, Int(UInt16.max))
            let protocolLimit = min(limits.maximumProtocolLength, Int(UInt16.max))
            guard label.count <= labelLimit else { throw .labelTooLong(length: label.count, limit: labelLimit) }
            guard subprotocol.count <= protocolLimit else { throw .protocolTooLong(length: subprotocol.count, limit: protocolLimit) }
            buffer.reserveCapacity(buffer.count + DataChannelOpen.headerLength + label.count + subprotocol.count)
            buffer.append(Self.openMessageType)
            buffer.append(open.channelType.rawValue)
            buffer.appendBigEndian(open.priority)
            buffer.appendBigEndian(open.reliabilityParameter)
            // Both counts are at most 65535: checked above.
            buffer.appendBigEndian(UInt16(truncatingIfNeeded: label.count))
            buffer.appendBigEndian(UInt16(truncatingIfNeeded: subprotocol.count))
            buffer.append(contentsOf: label)
            buffer.append(contentsOf: subprotocol)
        }
    }

    public func encode(limits: DCEPLimits = .default) throws(DataChannelError) -> [UInt8] {
        var buffer: [UInt8] = []
        try encode(into: &buffer, limits: limits)
        return buffer
    }
}
