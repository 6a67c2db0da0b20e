import TernSTUN

/// Where the agent's randomness comes from.
public enum ICERandomness: Hashable, Sendable {
    /// The system CSPRNG: transaction ids must be cryptographically random
    /// (RFC 8489 §5, RFC 7675 §5.1). Use this outside tests.
    case system
    /// A seeded generator, so that simulations replay exactly. Tests only.
    case seeded(UInt64)
}

/// How an agent behaves. The defaults follow the RFCs; the comments say where.
public struct ICEConfiguration: Hashable, Sendable {
    /// The role to start in (RFC 8445 §6.1.1: the offerer is controlling). It
    /// can change on a role conflict (§7.3.1.1).
    public var role: ICERole
    /// This agent's ice-ufrag and ice-pwd, sent to the peer in SDP.
    public var localCredentials: ICECredentials
    /// RFC 8445 §7.1.1 / §16.1: the 64-bit tie-breaker for role conflicts;
    /// pick it at random (`ICEConfiguration.randomTieBreaker()`).
    public var tieBreaker: UInt64
    /// Ta, the pacing of new STUN transactions (RFC 8445 §14.2: 50 ms by default).
    public var pacing: Duration
    /// Retransmission of connectivity checks. The first RTO actually used is
    /// `max(initialRTO, Ta * (waiting + in-progress pairs))` (RFC 8445 §14.3).
    /// Rc = 7 and Rm = 16 by default (RFC 8489 §6.2.1); the whole check phase
    /// is bounded by `failureTimeout` anyway.
    public var checkRetransmission: STUNTransaction.Configuration
    /// Retransmission of server-reflexive gathering requests (RFC 8445
    /// §5.1.1.1 uses RFC 8489's rules; shortened so a dead STUN server costs ~9.5 s, not 39.5 s).
    public var gatheringRetransmission: STUNTransaction.Configuration
    /// RFC 7675 §5.1: a consent check every `consentInterval`, randomized to
    /// 0.8-1.2 of it (5 s by default).
    public var consentInterval: Duration
    /// RFC 7675 §5.1: consent expires this long after the last authenticated
    /// response on the selected pair (30 s).
    public var consentTimeout: Duration
    /// Retransmission of each consent check (sent at 0, 0.5, 1.5, 3.5 s, given
    /// up after 4.5 s: less than the next check is due).
    public var consentRetransmission: STUNTransaction.Configuration
    /// Report `.disconnected` after this long without a consent response
    /// (informational; consent is lost only after `consentTimeout`).
    public var disconnectedTimeout: Duration
    /// Give up when no pair has been selected this long after the last sign
    /// of progress (remote credentials or a candidate arriving, from either
    /// side). Trickle ICE (RFC 8838) has no other natural end.
    public var failureTimeout: Duration
    /// Regular nomination (RFC 8445 §8.1.1): the controlling agent nominates
    /// the best valid pair once no better pair is still being checked, or at
    /// the latest this long after the first valid pair.
    public var nominationDelay: Duration
    /// Start at once, move to the best path: the checks go on after a pair
    /// is selected (RFC 8445 §8.1.2 would end them), and a valid pair of
    /// higher priority than the selected one is selected in its place: the
    /// controlling agent nominates it (a second USE-CANDIDATE, as
    /// renomination does), the controlled agent takes the higher of the
    /// nominated pairs (§8.1.1 allows it to). Both sides must be tern: a
    /// standard agent stops checking once it selected. Off by default.
    public var upgradesSelectedPair = false
    /// With `upgradesSelectedPair`: the selected pair is checked this often
    /// (randomized to 0.8-1.2 of it) rather than every `consentInterval`,
    /// so that a path that dies is noticed within `failoverTimeout`.
    public var selectedCheckInterval: Duration = .seconds(1)
    /// With `upgradesSelectedPair`: when the selected pair has answered no
    /// check for this long and another valid pair answered one within
    /// `consentTimeout` (RFC 7675's consent), that pair is selected in its
    /// place (a laptop moving from Wi-Fi to Ethernet, a route that went
    /// away). The best such backup pair is checked every `consentInterval`
    /// to keep it so. Without a live backup, consent expires as usual.
    public var failoverTimeout: Duration = .milliseconds(2500)
    /// RFC 8445 §6.1.2.5: the checklist limit (100 by default).
    public var maximumPairs: Int
    /// Remote candidates kept, signalled and peer-reflexive together (64 by
    /// default): a signalled one past it is refused with `limitReached`, a
    /// check from a new source past it is answered but not remembered.
    public var maximumRemoteCandidates: Int
    /// Local candidates kept (host, server-reflexive, relayed, peer-reflexive;
    /// 32 by default): a peer-reflexive one learned from an answer past it
    /// is not kept. `ResourceLimitTests` drives each of the three limits.
    public var maximumLocalCandidates: Int
    public var randomness: ICERandomness

    public init(
        role: ICERole,
        localCredentials: ICECredentials,
        tieBreaker: UInt64,
        pacing: Duration = .milliseconds(50),
        checkRetransmission: STUNTransaction.Configuration = .init(initialRTO: .milliseconds(500), maxTransmissions: 7, finalWaitMultiplier: 16),
        gatheringRetransmission: STUNTransaction.Configuration = .init(initialRTO: .milliseconds(500), maxTransmissions: 5, finalWaitMultiplier: 4),
        consentInterval: Duration = .seconds(5),
        consentTimeout: Duration = .seconds(30),
        consentRetransmission: STUNTransaction.Configuration = .init(initialRTO: .milliseconds(500), maxTransmissions: 4, finalWaitMultiplier: 2),
        disconnectedTimeout: Duration = .seconds(10),
        failureTimeout: Duration = .seconds(10),
        nominationDelay: Duration = .seconds(1),
        maximumPairs: Int = 100,
        maximumRemoteCandidates: Int = 64,
        maximumLocalCandidates: Int = 32,
        randomness: ICERandomness = .system
    ) {
        self.role = role
        self.localCredentials = localCredentials
        self.tieBreaker = tieBreaker
        self.pacing = pacing
        self.checkRetransmission = checkRetransmission
        self.gatheringRetransmission = gatheringRetransmission
        self.consentInterval = consentInterval
        self.consentTimeout = consentTimeout
        self.consentRetransmission = consentRetransmission
        self.disconnectedTimeout = disconnectedTimeout
        self.failureTimeout = failureTimeout
        self.nominationDelay = nominationDelay
        self.maximumPairs = maximumPairs
        self.maximumRemoteCandidates = maximumRemoteCandidates
        self.maximumLocalCandidates = maximumLocalCandidates
        self.randomness = randomness
    }

    /// A tie-breaker from the system CSPRNG (RFC 8445 §7.1.1: "a 64-bit unsigned integer ... randomly selected").
    public static func randomTieBreaker() -> UInt64 {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }

    func validate() throws(ICEError) {
        guard pacing > .zero else { throw .invalidConfiguration("pacing (Ta) must be positive") }
        guard consentInterval > .zero, consentTimeout > consentInterval else {
            throw .invalidConfiguration("consent timeout must exceed the consent interval")
        }
        guard selectedCheckInterval > .zero, failoverTimeout > .zero else {
            throw .invalidConfiguration("the selected pair's check interval and failover timeout must be positive")
        }
        guard failureTimeout > .zero else { throw .invalidConfiguration("failure timeout must be positive") }
        guard maximumPairs > 0, maximumRemoteCandidates > 0, maximumLocalCandidates > 0 else {
            throw .invalidConfiguration("limits must be positive")
        }
    }
}

/// The agent's generator: the system CSPRNG, or SplitMix64 for tests.
struct ICERandom: RandomNumberGenerator, Sendable {
    private var state: UInt64?

    init(_ randomness: ICERandomness) {
        switch randomness {
        case .system: state = nil
        case .seeded(let seed): state = seed
        }
    }

    mutating func next() -> UInt64 {
        guard var z = state else {
            var system = SystemRandomNumberGenerator()
            return system.next()
        }
        z &+= 0x9E37_79B9_7F4A_7C15
        state = z
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// `base` scaled by a uniform factor in 0.8 ... 1.2 (RFC 7675 §5.1).
    mutating func jittered(_ base: Duration) -> Duration {
        let permille = 800 + Int(next() % 401)
        return base * permille / 1000
    }
}

/// Counters a driver can log or export.
public struct ICEStatistics: Hashable, Sendable {
    public var checksSent = 0
    public var retransmissions = 0
    public var requestsReceived = 0
    public var responsesReceived = 0
    public var consentChecksSent = 0
    /// Datagrams dropped (malformed, unauthenticated, unknown transaction...).
    public var dropped = 0
    public var roleConflicts = 0

    public init() {}
}

extension ICEConfiguration {
    /// This configuration with `upgradesSelectedPair` set as given.
    public func upgrading(_ upgrades: Bool) -> ICEConfiguration {
        var configuration = self
        configuration.upgradesSelectedPair = upgrades
        return configuration
    }
}
