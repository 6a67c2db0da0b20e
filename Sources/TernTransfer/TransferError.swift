import TernCollections

/// Everything that can end a transfer, each with one sentence for the user.
/// The CLI maps them to exit codes (docs/cli.md): `integrity` is 5,
/// `exists` is 6, `connectionLost` 4, the others 1 (a peer's failure
/// carries its code: the peer's integrity failure is 5 here too).
public enum TransferError: Error, Equatable, Sendable {
    /// A received path is not a safe relative path inside the target.
    case unsafePath(String, reason: String)
    /// A file to write already exists and neither --overwrite nor --rename was given.
    case exists(String)
    /// Data did not match its hash (a chunk, a file's root hash, a stream's hash).
    case integrity(String)
    /// The peer broke the transfer protocol (a malformed message, more than offered, ...).
    case protocolViolation(String)
    /// A local file-system operation failed.
    case io(String)
    /// Not enough free space in the target directory for the offer.
    case noSpace(needed: UInt64, available: UInt64)
    /// A stream written into the target stopped before its next chunk would
    /// leave less than `reserve` bytes free (its length is unknown up front).
    case streamNoSpace(String, written: UInt64, available: UInt64, reserve: UInt64)
    /// The peer stopped the transfer and said why.
    case peerFailed(FailureCode, String)
    /// The channel to the peer closed before the transfer ended.
    case connectionLost(String)
    /// A local source that cannot be sent (unreadable, or a name the
    /// receiver would refuse), found before anything is offered.
    case unsendable(String, reason: String)

    public var message: String {
        switch self {
        case .unsafePath(let path, let reason): return "refusing the path \(path): \(reason)"
        case .exists(let path): return "\(path) already exists (pass --overwrite to replace it or --rename to keep both)"
        case .integrity(let what): return "integrity check failed: \(what)"
        case .protocolViolation(let what): return "the peer broke the transfer protocol: \(what)"
        case .io(let what): return what
        case .noSpace(let needed, let available):
            return "not enough free space: the offer needs \(ByteFormat.size(needed)), the target has \(ByteFormat.size(available)) free"
        case .streamNoSpace(let name, let written, let available, let reserve):
            return "not enough free space: stopped the stream \(name) after \(ByteFormat.size(written)), "
                + "with \(ByteFormat.size(available)) left free in the target (tern leaves \(ByteFormat.size(reserve)))"
        case .peerFailed(_, let what): return "the other side stopped: \(what)"
        case .connectionLost(let what): return "the connection to the other side was lost: \(what)"
        case .unsendable(let path, let reason): return "cannot send '\(path)': \(reason)"
        }
    }
}

extension TransferError {
    /// The code an `error` message carries for this failure of our own
    /// (docs/protocol.md §11.2); nil for the peer's failure and a lost
    /// channel, which are not answered.
    public var failureCode: FailureCode? {
        switch self {
        case .unsafePath: return .unsafePath
        case .exists: return .exists
        case .integrity: return .integrity
        case .protocolViolation: return .protocolViolation
        case .io, .unsendable: return .io
        case .noSpace, .streamNoSpace: return .noSpace
        case .peerFailed, .connectionLost: return nil
        }
    }
}
