/// What can be wrong with a datagram on the LAN beacon port, or with the
/// beacon's sockets.
public enum LANError: Error, Equatable, Sendable {
    /// Fewer bytes than the message needs (a cut datagram).
    case truncated
    /// More bytes than any message has: refused before it is looked at.
    case tooLong(size: Int, limit: Int)
    /// Not a tern beacon datagram (another program on the port).
    case notTern
    /// A beacon version this side does not speak.
    case unknownVersion(UInt8)
    /// A message kind this side does not know.
    case unknownKind(UInt8)
    /// A nameplate that is empty, too long, not decimal, or starts with 0.
    case badNameplate
    /// Port 0 announced.
    case badPort
    /// Bytes after the end of the message.
    case trailingBytes(Int)
    /// The beacon's sockets could not be set up; the string says why.
    case socket(String)

    public var reason: String {
        switch self {
        case .truncated: return "the datagram is cut short"
        case .tooLong(let size, let limit): return "a datagram of \(size) bytes is over the limit of \(limit)"
        case .notTern: return "not a tern beacon datagram"
        case .unknownVersion(let version): return "unknown beacon version \(version)"
        case .unknownKind(let kind): return "unknown beacon message kind \(kind)"
        case .badNameplate: return "the nameplate is not a number of 1 to \(LANLimits.maximumNameplateDigits) digits"
        case .badPort: return "port 0 announced"
        case .trailingBytes(let count): return "\(count) bytes after the end of the message"
        case .socket(let why): return "the LAN beacon could not start: \(why)"
        }
    }
}
