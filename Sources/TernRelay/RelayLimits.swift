import NIOCore

/// Limits the relay enforces, with their defaults; each one a `tern relay`
/// flag unless said otherwise. docs/relay.md explains them to operators.
///
/// The defaults are sized to what a pairing needs (two CPace shares, two
/// confirmation tags, an offer, an answer and a few dozen trickled ICE
/// candidates: under 40 messages and a few KiB per side) with room to spare,
/// and to what one address may reasonably hold (a NAT with many users).
public struct RelayLimits: Sendable {
    // MARK: Connections

    /// A TCP connection that has not completed the WebSocket upgrade (or
    /// finished its HTTP request) this long after it was accepted is closed.
    public var handshakeTimeout: TimeAmount = .seconds(5)
    /// A WebSocket connection that has not allocated, claimed or attached
    /// this long after the upgrade is closed (`expired`).
    public var claimTimeout: TimeAmount = .seconds(10)
    /// Connections (TCP, before and after the upgrade) open at once from one
    /// address: one IPv4 address, or one IPv6 /64. Refused at accept time.
    public var maxConnectionsPerAddress = 128
    /// Connections open at once in total. At start the relay lowers it to
    /// the descriptor limit (RLIMIT_NOFILE, raised to its hard limit where
    /// allowed) minus `descriptorReserve`.
    public var maxConnections = 20_000
    /// Descriptors kept for everything else (listeners, the STUN socket, the
    /// event loops, logging). Not a flag.
    public var descriptorReserve = 64

    // MARK: Mailboxes

    /// Largest mailbox message body in bytes.
    public var maxMessageBytes = 64 * 1024
    /// Messages one side may add to one mailbox.
    public var maxMessagesPerSide = 64
    /// Bytes (message bodies) one side may store in one mailbox.
    public var maxBytesPerSide = 1 << 20
    /// Bytes stored in all mailboxes by the connections of one address (or
    /// IPv6 /64), until those mailboxes are removed.
    public var maxBytesPerAddress = 8 << 20
    /// Bytes stored in all mailboxes together.
    public var maxBytesTotal = 512 << 20
    /// A nameplate waiting for its second side, or a mailbox neither of whose
    /// sides is connected, with no activity for this long is removed; a
    /// removed waiting nameplate the relay allocated stays refused
    /// ("expired") for as long again.
    public var idleLifetime: TimeAmount = .minutes(10)
    /// Mailboxes one client address (or IPv6 /64) may have open at once.
    public var maxMailboxesPerAddress = 64
    /// Mailboxes open at once in total.
    public var maxMailboxes = 10_000
    /// A side whose connection dropped without a `close` keeps its place
    /// this long, for the client to reconnect and attach (its schedule of
    /// retries takes about 8 s); then it counts as gone. A mailbox whose
    /// sides are all gone is removed and its nameplate freed, so that a
    /// pre-agreed code can be used again by a new pair. Not a flag: it
    /// follows the client's reconnect schedule, not the operator's needs.
    public var reattachWindow: TimeAmount = .seconds(15)

    // MARK: Nameplates

    /// `allocate` and `claim` requests one address (or IPv6 /64) may make
    /// per minute, as a token bucket of this many tokens refilled evenly
    /// over a minute (croc's relay allows 30 per minute). 0 turns it off.
    public var claimsPerMinute = 30
    /// Tombstones (refused, recently abandoned allocated nameplates) one
    /// address may leave at once; beyond it, its abandoned nameplates are
    /// freed at once instead.
    public var maxTombstonesPerAddress = 16

    public init() {}
}
