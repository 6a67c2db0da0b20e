import TernSTUN

/// The candidate types of RFC 8445 §5.1.1, named as SDP names them (RFC 8839 §5.1).
public enum ICECandidateType: String, Hashable, Sendable, CaseIterable, Comparable {
    case host
    case serverReflexive = "srflx"
    case peerReflexive = "prflx"
    case relayed = "relay"

    /// RFC 8445 §5.1.2.2: the recommended type preferences.
    public var typePreference: UInt32 {
        switch self {
        case .host: return 126
        case .peerReflexive: return 110
        case .serverReflexive: return 100
        case .relayed: return 0
        }
    }

    /// Ordered from the most to the least preferred type.
    public static func < (lhs: ICECandidateType, rhs: ICECandidateType) -> Bool {
        lhs.typePreference > rhs.typePreference
    }
}

/// RFC 6544 §4.5: the role of a TCP candidate. Kept so that TCP candidate
/// lines round-trip; the agent only pairs UDP candidates.
public enum ICETCPType: String, Hashable, Sendable, CaseIterable {
    case active
    case passive
    case simultaneousOpen = "so"
}

/// The transport of a candidate (RFC 8839 §5.1 `transport`).
public enum ICETransport: Hashable, Sendable {
    case udp
    /// RFC 6544; parsed and formatted only.
    case tcp(ICETCPType)

    public var sdpName: String {
        switch self {
        case .udp: return "udp"
        case .tcp: return "tcp"
        }
    }
}

/// An ICE candidate (RFC 8445 §5.1): a transport address with its type,
/// priority and foundation.
///
/// For a server-reflexive or relayed candidate `relatedAddress` is, as RFC
/// 8839 §5.1 puts it, the base or the mapped address; it is informational
/// and never used for connectivity.
public struct ICECandidate: Hashable, Sendable, CustomStringConvertible {
    /// RFC 8445 §5.1.1.3: equal for candidates of the same type, base IP,
    /// server and transport; 1-32 ice-chars.
    public var foundation: String
    /// RFC 8445 §5.1.2.1: 1-256. tern uses one component (RTP/RTCP mux is implied by data channels).
    public var component: Int
    public var transport: ICETransport
    /// RFC 8445 §5.1.2: 1 ... 2^31 - 1.
    public var priority: UInt32
    /// The transport address (connection-address and port in SDP).
    public var address: STUNAddress
    public var type: ICECandidateType
    /// raddr/rport.
    public var relatedAddress: STUNAddress?

    public init(
        foundation: String,
        component: Int = 1,
        transport: ICETransport = .udp,
        priority: UInt32,
        address: STUNAddress,
        type: ICECandidateType,
        relatedAddress: STUNAddress? = nil
    ) {
        self.foundation = foundation
        self.component = component
        self.transport = transport
        self.priority = priority
        self.address = address
        self.type = type
        self.relatedAddress = relatedAddress
    }

    /// RFC 8445 §5.1.2.1:
    ///
    ///     priority = (2^24)*(type preference) + (2^8)*(local preference) + (2^0)*(256 - component ID)
    public static func priority(type: ICECandidateType, localPreference: UInt16, component: Int = 1) -> UInt32 {
        let componentPart = UInt32(256 - min(max(component, 1), 256))
        return type.typePreference << 24 | UInt32(localPreference) << 8 | componentPart
    }

    public var description: String {
        "\(type.rawValue) \(address)" + (relatedAddress.map { " (from \($0))" } ?? "")
    }
}

/// A candidate pair as the agent reports it: the local candidate, the base it
/// sends from (for a relayed candidate the relayed address itself: the driver
/// sends through its TURN client), and the remote candidate.
public struct ICECandidatePair: Hashable, Sendable, CustomStringConvertible {
    public var local: ICECandidate
    /// Where the driver sends from: a host address of its socket, or a relayed address.
    public var localBase: STUNAddress
    public var remote: ICECandidate
    /// RFC 8445 §6.1.2.3.
    public var priority: UInt64

    public init(local: ICECandidate, localBase: STUNAddress, remote: ICECandidate, priority: UInt64) {
        self.local = local
        self.localBase = localBase
        self.remote = remote
        self.priority = priority
    }

    /// RFC 8445 §6.1.2.3, with G the controlling agent's candidate priority
    /// and D the controlled agent's:
    ///
    ///     pair priority = 2^32*MIN(G,D) + 2*MAX(G,D) + (G>D?1:0)
    public static func priority(controlling g: UInt32, controlled d: UInt32) -> UInt64 {
        let low = UInt64(min(g, d))
        let high = UInt64(max(g, d))
        return low << 32 + 2 * high + (g > d ? 1 : 0)
    }

    public var description: String {
        "\(local.type.rawValue) \(local.address) -> \(remote.type.rawValue) \(remote.address)"
    }
}

/// The states of a candidate pair (RFC 8445 §6.1.2.6).
public enum ICEPairState: String, Hashable, Sendable {
    case frozen
    case waiting
    case inProgress = "in-progress"
    case succeeded
    case failed
}

/// The agent's role (RFC 8445 §6.1.1).
public enum ICERole: String, Hashable, Sendable {
    case controlling
    case controlled
}

/// The connection state the agent reports, in the spirit of WebRTC's
/// RTCIceConnectionState.
public enum ICEState: Hashable, Sendable {
    /// Created; remote credentials not known yet.
    case new
    /// Remote credentials known: checks run (RFC 8445 §6.1.4).
    case checking
    /// A pair is selected (nominated, RFC 8445 §8.1.1); data may flow.
    case connected
    /// Selected, and no more candidates are expected from either side.
    case completed
    /// Selected, but consent checks have gone unanswered for a while (RFC 7675).
    case disconnected
    /// Nothing worked, or consent was lost; the reason says which.
    case failed(ICEError)

    public var isFailed: Bool {
        if case .failed = self { return true }
        return false
    }

    /// Connected, completed, or disconnected (which may recover).
    public var hasSelectedPair: Bool {
        switch self {
        case .connected, .completed, .disconnected: return true
        case .new, .checking, .failed: return false
        }
    }
}
