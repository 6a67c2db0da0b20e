import TernSTUN

/// Something the driver must act on or may report; see `ICEAgent.pollEvent()`.
public enum ICEEvent: Hashable, Sendable {
    /// A local candidate to send to the peer (trickle ICE, RFC 8838 §4):
    /// host and relayed candidates as they are added, server-reflexive ones
    /// as their STUN transactions complete. Peer-reflexive candidates are
    /// never signalled (RFC 8445 §7.2.5.3.1).
    case localCandidate(ICECandidate)
    /// A server-reflexive gathering failed (no answer or an error from the server).
    case gatheringFailed(ICEError)
    /// Every server-reflexive gathering started so far has finished: together
    /// with its own TURN gathering, the driver can signal end-of-candidates.
    case gatheringComplete
    case stateChanged(ICEState)
    /// The role changed after a role conflict (RFC 8445 §7.3.1.1).
    case roleChanged(ICERole)
    /// The pair to send data on. It may be replaced by a better one on the
    /// controlled side if the peer nominates several (RFC 8445 §8.1.1).
    case selectedPair(ICECandidatePair)
    /// The selected pair stopped answering (or sending on it failed hard)
    /// and another valid pair takes over (`upgradesSelectedPair` only); a
    /// `.selectedPair` with the new pair follows at once.
    case selectedPairLost(ICECandidatePair)
    /// RFC 7675 §5.2: consent for this pair expired; stop sending on it at once.
    case consentLost(ICECandidatePair)
    /// The first check from a host base to the router at this remote
    /// server-reflexive address went out (with mapping-clash avoidance on):
    /// our router now has a mapping towards the peer. Tell a tern peer
    /// (`PeerMessage.mappingOpened`), whose checks to us may be held until
    /// then (ICEAgent+RemoteRouters.swift).
    case mappingOpened(towards: STUNAddress)
}

/// One datagram to send: from `from` (a local base: a host address of the
/// socket, or a relayed address to go through the TURN client) to `to`.
public struct ICETransmit: Hashable, Sendable {
    public var bytes: [UInt8]
    public var from: STUNAddress
    public var to: STUNAddress

    public init(bytes: [UInt8], from: STUNAddress, to: STUNAddress) {
        self.bytes = bytes
        self.from = from
        self.to = to
    }
}

/// What happened to a datagram fed to `handleDatagram`.
public enum ICEDatagramOutcome: Hashable, Sendable {
    /// The agent used it (it may have queued an answer or changed state).
    case handled
    /// The agent dropped it; the error says why. Never fatal to the session.
    case dropped(ICEError)
}

/// A row of the checklist, for diagnostics and tests.
public struct ICECheckListEntry: Hashable, Sendable {
    public var pair: ICECandidatePair
    public var state: ICEPairState
}
