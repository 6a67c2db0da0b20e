import TernICE
import TernPairing
import TernRendezvous
import TernSDP
import TernTURN

/// What a session's connectivity needs from the relay and the user.
public struct ConnectivityOptions: Sendable {
    /// The sender offers and controls (design.md); the receiver answers.
    public var role: ICERole
    /// `stun:` addresses from the relay's welcome.
    public var stun: [String]
    /// TURN credentials and `turn:` addresses from the relay's welcome.
    public var turn: TURNCredentials?
    /// Use relayed candidates only: no host or server-reflexive candidate is
    /// gathered or signalled, so the peer never learns this side's addresses.
    public var forceRelay: Bool
    /// How long the checks may go without progress before ICE gives up.
    public var failureTimeout: Duration
    /// How long to wait for the peer's signals: its session description
    /// from the start, its `connected` from our own selection. A peer that
    /// stops halfway through signalling otherwise leaves ICE waiting (its
    /// failure timer starts only with the peer's credentials).
    public var signallingTimeout: Duration = PeerConnection.signallingTimeout
    /// Our DTLS certificate's fingerprint, for `a=fingerprint` in our description.
    public var fingerprint: Fingerprint?
    /// Wait for the peer's `connected` message before `connected()` returns
    /// (tern peers send one). A browser does not: then our own selection is enough.
    public var awaitPeerConnected = true
    /// How long a `turns:` server's TLS handshake may take once its TCP
    /// connection is up (a middlebox that accepts port 443 and then says
    /// nothing must not hold the relayed candidate until ICE gives up).
    public var tlsHandshakeTimeout: Duration = .seconds(5)
    /// Start at once, move to the best path: the first pair that works
    /// carries the session at once, ICE keeps checking, and a better pair
    /// that succeeds later takes over (`ICEConfiguration.upgradesSelectedPair`;
    /// `setPathChangedHandler` tells). Both sides must do it: on for tern
    /// peers, off for a browser's (standard ICE: regular nomination after
    /// up to 1 s, no checks after selection).
    public var upgradesPath: Bool { awaitPeerConnected }

    public init(
        role: ICERole, stun: [String], turn: TURNCredentials?, forceRelay: Bool = false, failureTimeout: Duration = .seconds(10),
        fingerprint: Fingerprint? = nil
    ) {
        self.role = role
        self.stun = stun
        self.turn = turn
        self.forceRelay = forceRelay
        self.failureTimeout = failureTimeout
        self.fingerprint = fingerprint
    }
}

/// The path ICE selected.
public struct ConnectedPath: Sendable, Equatable {
    public var pair: ICECandidatePair
    /// The round trip of a check on the pair, when one was answered at its first try.
    public var roundTrip: Duration?
    /// How this side reaches its TURN server, when its local candidate is relayed.
    public var relayTransport: TURNTransport?
    /// The TCP connection to that TURN server is TLS (`turns:`).
    public var relayOverTLS = false
    /// The peer's certificate fingerprints and DTLS setup role, from its description.
    public var remoteFingerprints: [Fingerprint] = []
    public var remoteSetup: DTLSSetup?
    /// The peer's `a=max-message-size` (RFC 8841 §6), if it gave one.
    public var remoteMaxMessageSize: UInt64?

    /// The MTU of the route towards the peer, when known (direct pairs).
    public var routeMTU: Int?

    /// This pair took over because the one before it stopped answering (or
    /// sending on it failed), not because it is better.
    public var replacedLostPath = false

    /// This pair ended an ICE restart through the mailbox (the only path
    /// had died; ConnectivityCore+Restart.swift).
    public var afterRestart = false

    /// True when either end of the pair is a TURN relay.
    public var isRelayed: Bool { pair.local.type == .relayed || pair.remote.type == .relayed }

    /// The same network path as `other`: sent from the same base (socket
    /// address or relayed address) to the same remote IP address, only the
    /// remote port may differ (a NAT rebinding: RFC 9000 §9.4 lets the
    /// round-trip estimate and the congestion state stay then).
    public func isSameNetworkPath(as other: ConnectedPath) -> Bool {
        pair.localBase == other.pair.localBase && pair.remote.address.family == other.pair.remote.address.family
    }

    /// The largest datagram worth probing for on this pair (the layers above
    /// start at 1200 bytes and probe up to it): an Ethernet MTU of 1500, or
    /// the route's if smaller (a VPN's, say: larger datagrams would be
    /// fragmented before they leave), less the IP and UDP headers, less
    /// room for TURN framing (a Send indication's header and attributes)
    /// when relayed.
    public var maximumDatagramSize: Int {
        var size = min(1500, routeMTU ?? 1500)
        switch pair.remote.address.family {
        case .ipv4: size -= 20 + 8
        case .ipv6: size -= 40 + 8
        }
        if isRelayed { size -= 48 }
        return size
    }
}
