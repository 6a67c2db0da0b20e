import TernSTUN

/// What the client tells its driver, in order, through `pollEvent()`.
public enum TURNEvent: Hashable, Sendable {
    /// The Allocate succeeded (RFC 8656 §7.3): the relayed address peers send
    /// to, the client's address as the server saw it (a server-reflexive
    /// candidate), and the lifetime granted.
    case allocated(relayed: STUNAddress, mapped: STUNAddress, lifetime: Duration)
    /// A Refresh succeeded (RFC 8656 §8.3) with this lifetime.
    case refreshed(lifetime: Duration)
    /// A CreatePermission for this peer's IP succeeded (RFC 8656 §9.3); the
    /// port is that of the peer that caused it and does not matter.
    case permissionCreated(peer: STUNAddress)
    /// The permission for this peer's IP could not be installed or refreshed;
    /// data queued for that IP was dropped. The next `send` tries again.
    case permissionFailed(peer: STUNAddress, error: TURNError)
    /// A ChannelBind succeeded (RFC 8656 §11.3): data to and from this peer
    /// now travels as ChannelData.
    case channelBound(channel: UInt16, peer: STUNAddress)
    /// A ChannelBind failed; data to this peer keeps using Send indications.
    case channelBindFailed(peer: STUNAddress, error: TURNError)
    /// Application data from a peer, through a Data indication (RFC 8656 §10.4)
    /// or ChannelData (RFC 8656 §12.6).
    case received(data: [UInt8], from: STUNAddress)
    /// The server no longer serves the allocation at `relayed` (437
    /// Allocation Mismatch, or refusals that show it lost the client's
    /// session, such as coturn's 400 after a 438 "Wrong nonce"). The relayed
    /// address is dead: drop it. The client is already asking for a fresh
    /// allocation (RFC 8656 §7.1); `.allocated` follows with the new relayed
    /// address, or `.failed`. Permissions are asked for again on the new one;
    /// data sent meanwhile waits as before the first allocation.
    case allocationLost(relayed: STUNAddress, error: TURNError)
    /// The allocation could not be made or was lost. Terminal: the driver
    /// closes the socket (or TCP connection) of this session.
    case failed(TURNError)
    /// `deallocate(now:)` finished (or gave up waiting). Terminal.
    case deallocated
}

/// Counters for what the client dropped; a malformed message is never fatal
/// (except a corrupt TCP stream, which cannot be resynchronised).
public struct TURNCounters: Hashable, Sendable {
    /// Datagrams or frames that did not decode as STUN or ChannelData.
    public var malformed = 0
    /// Well-formed messages nobody asked for: unknown transaction, request
    /// from the server, ChannelData on an unbound channel, Data indication
    /// from a peer without a permission.
    public var unexpected = 0
    /// Responses whose MESSAGE-INTEGRITY did not verify (RFC 8489 §9.2.5).
    public var integrityFailures = 0
    /// Retransmitted requests (UDP only).
    public var retransmissions = 0
    /// Application data dropped (queue overflow or failed permission).
    public var droppedSends = 0
    /// Requests sent again with the NONCE of a 438 Stale Nonce (RFC 8489 §9.2.5).
    public var staleNonceRetries = 0
    /// Fresh allocations made because the server lost the previous one.
    public var reallocations = 0

    public init() {}
}
