/// One top-level item of an offer (docs/protocol.md §7): a file, a
/// directory (with what it holds counted), a stream of unknown length, or a
/// short text. The sender offers it sealed through the mailbox (TernPairing's
/// `Offer`); the receiver holds the transfer's manifest to it (TernTransfer):
/// its sizes and counts are limits, not hints.
public struct OfferEntry: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable {
        case file, directory, stream, text
    }

    public var name: String
    public var kind: Kind
    /// Bytes in all; nil for a stream of unknown length.
    public var size: UInt64?
    /// Regular files inside (1 for a file, 0 for a stream or text).
    public var files: UInt64
    /// Directories below a directory (not counting itself); absent means 0.
    /// Like `files`, a limit the receiver holds the manifest to.
    public var directories: UInt64?
    /// Symbolic links below a directory; absent means 0.
    public var links: UInt64?

    public init(name: String, kind: Kind, size: UInt64?, files: UInt64, directories: UInt64? = nil, links: UInt64? = nil) {
        self.name = name
        self.kind = kind
        self.size = size
        self.files = files
        self.directories = directories
        self.links = links
    }
}
