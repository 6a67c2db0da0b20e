/// Everything that can go wrong decoding or encoding a DCEP message (RFC
/// 8832). One error type for the module; the cases are the stable code, and
/// `reason` is one sentence for a log line.
public enum DataChannelError: Error, Hashable, Sendable, CustomStringConvertible {
    /// An empty message: not even a message type.
    case empty
    /// A message type other than DATA_CHANNEL_OPEN (0x03) or DATA_CHANNEL_ACK (0x02).
    case unknownMessageType(UInt8)
    /// A DATA_CHANNEL_OPEN shorter than its header, or than the label and
    /// protocol lengths say.
    case truncated(needed: Int, available: Int)
    /// Bytes after the end of the message (DATA_CHANNEL_ACK tolerates up to three).
    case trailingBytes(Int)
    /// A channel type RFC 8832 §5.1 does not define.
    case unknownChannelType(UInt8)
    /// A label that is not UTF-8 (RFC 8832 §5.1).
    case labelNotUTF8
    /// A protocol that is not UTF-8 (RFC 8832 §5.1).
    case protocolNotUTF8
    /// A label longer than the decoder's limit or than 65535 bytes.
    case labelTooLong(length: Int, limit: Int)
    /// A protocol longer than the decoder's limit or than 65535 bytes.
    case protocolTooLong(length: Int, limit: Int)

    public var reason: String {
        switch self {
        case .empty:
            return "empty DCEP message"
        case .unknownMessageType(let type):
            return "unknown DCEP message type 0x\(hex(type))"
        case .truncated(let needed, let available):
            return "DATA_CHANNEL_OPEN needs \(needed) bytes but has \(available)"
        case .trailingBytes(let count):
            return "\(count) bytes follow the end of the DCEP message"
        case .unknownChannelType(let type):
            return "unknown data channel type 0x\(hex(type))"
        case .labelNotUTF8:
            return "data channel label is not UTF-8"
        case .protocolNotUTF8:
            return "data channel protocol is not UTF-8"
        case .labelTooLong(let length, let limit):
            return "data channel label of \(length) bytes is over the limit of \(limit)"
        case .protocolTooLong(let length, let limit):
            return "data channel protocol of \(length) bytes is over the limit of \(limit)"
        }
    }

    public var description: String { reason }
}

/// Lower-case hex, two digits.
func hex(_ value: UInt8) -> String {
    let digits = String(value, radix: 16)
    return digits.count == 2 ? digits : "0" + digits
}
