/// Everything that can be wrong with a code or a rendezvous frame.
public enum RendezvousError: Error, Equatable, Sendable {
    /// A code that does not parse; the string says why, for the user.
    case badCode(String)
    /// A frame over the size limit.
    case frameTooLarge(size: Int, limit: Int)
    /// A frame that is not valid JSON or misses a field; the string says which.
    case malformedFrame(String)
    /// A frame whose `type` this side does not know.
    case unknownFrameType(String)

    public var reason: String {
        switch self {
        case .badCode(let why): return "bad code: \(why)"
        case .frameTooLarge(let size, let limit): return "frame of \(size) bytes is over the limit of \(limit)"
        case .malformedFrame(let why): return "malformed frame: \(why)"
        case .unknownFrameType(let type): return "unknown frame type '\(type.prefix(32))'"
        }
    }
}
