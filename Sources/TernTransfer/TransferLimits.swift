/// Every bound the transfer puts on what a peer may make this side hold or
/// do (docs/protocol.md §11.2 and §11.6). The defaults are what tern uses;
/// the receiver takes its `TransferLimits` in its options, and the message
/// decoder applies `TransferLimits.standard`, which are also the protocol's
/// numbers. ResourceLimitTests drives each one from the wire.
public struct TransferLimits: Sendable, Equatable {
    /// Entries in one manifest, over all its messages: 1,000,000. Each costs
    /// the receiver a validated path and a plan item before any data moves.
    public var maximumEntries = 1_000_000
    /// Entries, asks, chains or starts in one message: 65,536.
    public var maximumItemsPerMessage = 65_536
    /// The smallest chunk a manifest may ask for: 1024 bytes (smaller chunks
    /// cost a message and a hash each for little data).
    public var minimumChunkSize = 1024
    /// The largest chunk: 262,099 bytes, the largest message less the chunk
    /// header; also the largest record of a `files` message.
    public var maximumChunkSize = 256 * 1024 - TransferMessage.chunkHeaderSize
    /// The largest message: 262,144 bytes (`a=max-message-size`, §11.1).
    public var maximumMessageSize = 256 * 1024
    /// The reason of an `error` message: 1024 UTF-8 bytes, cut between characters.
    public var maximumFailureReasonBytes = 1024
    /// One path component: 255 bytes (NAME_MAX).
    public var maximumComponentBytes = 255
    /// A whole path: 4096 bytes (PATH_MAX).
    public var maximumPathBytes = 4096
    /// Components of a path, so its depth: 256.
    public var maximumDepth = 256
    /// A symbolic link's target: 4096 bytes.
    public var maximumLinkTargetBytes = 4096
    /// The sizes of a manifest's files together: below 2^63, so that every
    /// sum of them (progress, free space, an offset) stays in range.
    public var maximumTotalBytes = UInt64(Int64.max)
    /// A resume state file beside a partial: 4096 bytes (it holds about 200).
    public var maximumStateFileBytes = 4096
    /// The free space a stream written into the target leaves: 1 MiB. Its
    /// length is unknown up front, so before each chunk the receiver checks
    /// that the file system keeps this much after it, and stops with
    /// `no-space` instead of filling the disk.
    public var streamReserveBytes: UInt64 = 1 << 20

    public init() {}

    /// The limits tern uses, and the protocol's.
    public static let standard = TransferLimits()
}
