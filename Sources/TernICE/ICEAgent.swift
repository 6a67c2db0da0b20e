import TernCollections
import TernSTUN

/// A full ICE agent (RFC 8445) for one data stream with one component, with
/// trickle ICE (RFC 8838) and consent freshness (RFC 7675). Sans-IO: it owns
/// no socket, reads no clock and starts no task.
///
/// Time is a `Duration` since any origin the driver picks, as for
/// `STUNTransaction`. The driver:
///
///     var agent = try ICEAgent(configuration: config)
///     try agent.addHostCandidate(socketAddress, now: now)
///     try agent.gatherServerReflexive(from: stunServer, base: socketAddress, now: now)
///     // from the peer, through signalling:
///     try agent.setRemoteCredentials(ufrag: u, password: p, now: now)
///     try agent.addRemoteCandidate(candidate, now: now)
///     agent.remoteCandidatesComplete(now: now)
///     // for every STUN datagram from the socket (or unwrapped by the TURN client):
///     agent.handleDatagram(bytes, from: source, toBase: localAddress, now: now)
///     // after every input and when the timer at `nextDeadline` fires:
///     while let datagram = agent.pollTransmit(now: now) { send(datagram) }
///     while let event = agent.pollEvent() { handle(event) }
///     arm(timer: agent.nextDeadline)
///
/// A value type: copying an agent copies its whole state (tests rely on it).
public struct ICEAgent: Sendable {
    /// Fixed but for `localCredentials`, which an ICE restart replaces.
    public internal(set) var configuration: ICEConfiguration
    /// The current role; it changes on a role conflict (RFC 8445 §7.3.1.1).
    public internal(set) var role: ICERole
    public internal(set) var state: ICEState = .new
    public internal(set) var statistics = ICEStatistics()
    /// True once `remoteCandidatesComplete(now:)` was called (end-of-candidates, RFC 8838 §13).
    public internal(set) var hasAllRemoteCandidates = false

    // MARK: Credentials

    /// RFC 8445 §7.3: requests to us are checked with our own password.
    var localKey: STUNKey
    var remoteUfrag: String?
    var remotePassword: String?
    /// RFC 8445 §7.2.2: our checks are signed with the peer's password.
    var remoteKey: STUNKey?

    // MARK: Candidates and the checklist (RFC 8445 §6.1.2)

    var locals: [Local] = []
    var remotes: [ICECandidate] = []
    var pairs: [Pair] = []
    /// RFC 8445 §7.2.5.3.2: the valid list.
    var valid: [ValidPair] = []
    /// RFC 8445 §6.1.4.1: the triggered-check queue (pair indices, FIFO).
    var triggered: [Int] = []
    var foundations: [FoundationKey: String] = [:]
    var nextPeerReflexiveFoundation = 1

    // MARK: Transactions and timers

    var inFlight: [InFlight] = []
    var pendingGatherings: [(server: STUNAddress, base: STUNAddress)] = []
    var gatheringStarted = false
    /// Ta: the earliest time the next new transaction may start (RFC 8445 §14.2).
    var nextPacingSlot: Duration = .zero
    /// Start of the failure timer's window; nil until remote credentials arrive.
    var lastProgress: Duration?
    var firstValidAt: Duration?
    /// The checklist pair whose check carries USE-CANDIDATE (RFC 8445 §8.1.1).
    var nominating: Int?
    /// Index into `valid` of the selected pair.
    var selected: Int?

    /// Whether ordinary and triggered checks still run: before a pair is
    /// selected, and after it while the agent looks for a better pair
    /// (`upgradesSelectedPair`).
    var checksContinue: Bool { selected == nil || configuration.upgradesSelectedPair }

    /// With `upgradesSelectedPair`, the controlling agent's next nomination:
    /// the highest-priority usable valid pair of a better kind than the
    /// selected one (`pathRank`: direct instead of relayed, host instead of
    /// server-reflexive). A pair of the same kind (the other address
    /// family, say) is no reason to move. Nil before selection (regular
    /// nomination decides).
    var upgradeCandidate: Int? {
        guard configuration.upgradesSelectedPair, let selected else { return nil }
        let rank = pathRank(valid: selected)
        return valid.indices
            .filter { valid[$0].usable && !valid[$0].lost && pairs[valid[$0].generatedBy].state != .failed && pathRank(valid: $0) > rank }
            .max { valid[$0].priority < valid[$1].priority }
    }

    /// How good a valid pair's kind is: by its worse end, then its better
    /// end, each relayed over TCP (this side's) < relayed < server- or
    /// peer-reflexive < host.
    func pathRank(valid index: Int) -> Int {
        func rank(_ type: ICECandidateType) -> Int {
            switch type {
            case .relayed: 1
            case .serverReflexive, .peerReflexive: 2
            case .host: 3
            }
        }
        let ownEnd = locals[valid[index].local]
        let local = ownEnd.relayOverTCP ? 0 : rank(ownEnd.candidate.type), remote = rank(remotes[valid[index].remote].type)
        return min(local, remote) * 4 + max(local, remote)
    }
    var consent: Consent?
    /// The pair selected before an ICE restart (ICEAgent+Restart.swift).
    var previousPath: ICECandidatePair?
    /// How many times `restart` ran.
    public internal(set) var restarts = 0
    var random: ICERandom
    /// Mapping-clash avoidance (ICEAgent+RemoteRouters.swift).
    var remoteRouters = RemoteRouters()

    // MARK: Output

    var outbox = FIFO<ICETransmit>()
    var events = FIFO<ICEEvent>()

    // MARK: Failure accounting

    var unauthenticatedResponses = 0
    var unauthenticatedRequests = 0

    public init(configuration: ICEConfiguration) throws(ICEError) {
        try configuration.validate()
        self.configuration = configuration
        self.role = configuration.role
        self.localKey = STUNKey.shortTerm(password: configuration.localCredentials.password)
        self.random = ICERandom(configuration.randomness)
    }

    // MARK: - Local candidates (RFC 8445 §5.1)

    /// Adds a host candidate: an address the driver's socket is bound to.
    /// The agent computes its priority (RFC 8445 §5.1.2: local preferences
    /// distinct per base, IPv6 and IPv4 interleaved as RFC 8421 §4
    /// recommends) and foundation (§5.1.1.3), pairs it with the remote
    /// candidates, and emits `.localCandidate` for trickling.
    @discardableResult
    public mutating func addHostCandidate(_ address: STUNAddress, now: Duration) throws(ICEError) -> ICECandidate {
        if let existing = locals.first(where: { $0.candidate.address == address && $0.base == address }) {
            return existing.candidate
        }
        guard address.port != 0 else { throw .unusableCandidate("host candidate \(address) has port 0") }
        let preference = try newLocalPreference(for: address.family)
        let candidate = ICECandidate(
            foundation: foundation(.host, base: address.family, server: nil),
            priority: ICECandidate.priority(type: .host, localPreference: preference),
            address: address, type: .host
        )
        try insertLocal(Local(candidate: candidate, base: address, localPreference: preference), now: now)
        return candidate
    }

    /// Adds a relayed candidate the driver allocated with its TURN client
    /// (RFC 8656). Its base is the relayed address itself (RFC 8445 §5.1.1.2):
    /// datagrams `from` it must go through the TURN client, and datagrams the
    /// TURN client unwraps are fed with `toBase:` set to it.
    @discardableResult
    ///
    /// `overTCP`: the TURN server is reached over TCP. Such a candidate gets
    /// a lower local preference than any reached over UDP (RFC 8445
    /// §5.1.2.1 leaves the local preference to the agent; TCP to the server
    /// adds head-of-line blocking), so it is chosen only when UDP fails.
    public mutating func addRelayedCandidate(
        _ relayed: STUNAddress, mappedAddress: STUNAddress?, server: STUNAddress, overTCP: Bool = false, now: Duration
    ) throws(ICEError) -> ICECandidate {
        if let existing = locals.first(where: { $0.candidate.address == relayed && $0.base == relayed }) {
            return existing.candidate
        }
        var preference = try newLocalPreference(for: relayed.family)
        if overTCP { preference = preference > Self.tcpRelayPreferencePenalty ? preference - Self.tcpRelayPreferencePenalty : 1 }
        let candidate = ICECandidate(
            foundation: foundation(.relayed, base: relayed.family, server: server.family),
            priority: ICECandidate.priority(type: .relayed, localPreference: preference),
            address: relayed, type: .relayed, relatedAddress: mappedAddress
        )
        try insertLocal(Local(candidate: candidate, base: relayed, localPreference: preference, relayOverTCP: overTCP), now: now)
        return candidate
    }

    /// Asks `server` for the reflexive address of `base` (a host candidate)
    /// with a STUN Binding transaction, paced by Ta (RFC 8445 §5.1.1.1). The
    /// result arrives as `.localCandidate` (or nothing if it equals the base,
    /// §5.1.3), or `.gatheringFailed`; then `.gatheringComplete` once no
    /// gathering is left. The driver feeds the server's answer to `handleDatagram`.
    public mutating func gatherServerReflexive(from server: STUNAddress, base: STUNAddress, now: Duration) throws(ICEError) {
        guard locals.contains(where: { $0.candidate.type == .host && $0.base == base }) else { throw .unknownBase(base) }
        guard server.family.code == base.family.code else {
            throw .unusableCandidate("STUN server \(server) and base \(base) are of different IP families")
        }
        guard pendingGatherings.count + locals.count < configuration.maximumLocalCandidates else {
            throw .limitReached(what: "gatherings", limit: configuration.maximumLocalCandidates)
        }
        pendingGatherings.append((server, base))
        gatheringStarted = true
        refreshState(now: now)
    }

    /// Adds a server-reflexive candidate the driver learned itself (for
    /// instance the XOR-MAPPED-ADDRESS of a TURN Allocate response).
    /// Returns nil when it is redundant (RFC 8445 §5.1.3: equal to its base
    /// or to a candidate already known).
    @discardableResult
    public mutating func addServerReflexiveCandidate(
        _ mapped: STUNAddress, base: STUNAddress, server: STUNAddress, now: Duration
    ) throws(ICEError) -> ICECandidate? {
        guard let hostIndex = locals.firstIndex(where: { $0.candidate.type == .host && $0.base == base }) else {
            throw .unknownBase(base)
        }
        // RFC 8445 §5.1.3: a candidate with the same transport address and base as another is redundant.
        guard mapped != base, !locals.contains(where: { $0.candidate.address == mapped && $0.base == base }) else { return nil }
        let preference = locals[hostIndex].localPreference
        let candidate = ICECandidate(
            foundation: foundation(.serverReflexive, base: base.family, server: server.family),
            priority: ICECandidate.priority(type: .serverReflexive, localPreference: preference),
            address: mapped, type: .serverReflexive, relatedAddress: base
        )
        try insertLocal(Local(candidate: candidate, base: base, localPreference: preference), now: now)
        return candidate
    }

    /// Adds a candidate built by the caller, taken as it is (foundation and
    /// priority included). Host and relayed candidates are their own base;
    /// a server-reflexive one names the host candidate it was learned from.
    public mutating func addLocalCandidate(_ candidate: ICECandidate, base: STUNAddress, now: Duration) throws(ICEError) {
        guard candidate.transport == .udp, candidate.component == 1 else {
            throw .unusableCandidate("only UDP candidates of component 1 are supported")
        }
        switch candidate.type {
        case .host, .relayed:
            guard base == candidate.address else { throw .unusableCandidate("a \(candidate.type.rawValue) candidate is its own base") }
        case .serverReflexive:
            guard locals.contains(where: { $0.candidate.type == .host && $0.base == base }) else { throw .unknownBase(base) }
        case .peerReflexive:
            throw .unusableCandidate("peer-reflexive candidates are learned from checks, not added")
        }
        guard !locals.contains(where: { $0.candidate.address == candidate.address && $0.base == base }) else { return }
        let preference = UInt16(truncatingIfNeeded: candidate.priority >> 8)
        try insertLocal(Local(candidate: candidate, base: base, localPreference: preference), now: now)
    }

    // MARK: - Remote side (RFC 8445 §6.1.2, RFC 8838)

    /// The peer's ice-ufrag and ice-pwd. Checks wait for them (RFC 8445
    /// §7.2.2 signs with the password); incoming checks are answered before.
    /// Changing them later is an ICE restart: call `restart` first
    /// (ICEAgent+Restart.swift), which forgets the old ones.
    public mutating func setRemoteCredentials(ufrag: String, password: String, now: Duration) throws(ICEError) {
        let checkedUfrag = try ICECredentials.validatedUfrag(Array(ufrag.utf8)[...])
        let checkedPassword = try ICECredentials.validatedPassword(Array(password.utf8)[...])
        if let remoteUfrag, let remotePassword {
            guard remoteUfrag == checkedUfrag, remotePassword == checkedPassword else {
                throw .invalidConfiguration("remote credentials changed without an ICE restart on this side")
            }
            return
        }
        remoteUfrag = checkedUfrag
        remotePassword = checkedPassword
        remoteKey = STUNKey.shortTerm(password: checkedPassword)
        // A request that arrived before the credentials may have named another ufrag; that is checked from now on.
        lastProgress = now
        refreshState(now: now)
    }

    /// A candidate from the peer (in the offer/answer or trickled). It is
    /// paired at once with every local base of the same family (RFC 8445
    /// §6.1.2.2, pruned as §6.1.2.4 says: server-reflexive locals are
    /// replaced by their base). A candidate equal to a peer-reflexive one
    /// learned earlier replaces it (RFC 8838 §11 keeps the signalled data).
    public mutating func addRemoteCandidate(_ candidate: ICECandidate, now: Duration) throws(ICEError) {
        guard !state.isFailed else { return }
        guard candidate.transport == .udp else { throw .unusableCandidate("TCP candidates are not supported") }
        guard candidate.component == 1 else { throw .unusableCandidate("component \(candidate.component); only 1 is used") }
        guard candidate.address.port != 0 else { throw .unusableCandidate("port 0") }
        guard candidate.priority > 0 else { throw .unusableCandidate("priority 0") }
        if let reason = candidate.address.unsendableReason { throw .unusableCandidate("\(candidate.address): \(reason)") }

        if let index = remotes.firstIndex(where: { $0.address == candidate.address }) {
            guard remotes[index].type == .peerReflexive, candidate.type != .peerReflexive else { return }
            remotes[index] = candidate
            for p in pairs.indices where pairs[p].remote == index {
                pairs[p].priority = pairPriority(local: locals[pairs[p].local].candidate.priority, remote: candidate.priority)
                pairs[p].foundation = locals[pairs[p].local].candidate.foundation + ":" + candidate.foundation
            }
            for v in valid.indices where valid[v].remote == index {
                valid[v].priority = pairPriority(local: locals[valid[v].local].candidate.priority, remote: candidate.priority)
            }
            pairWithLocals(remote: index, now: now)
            if lastProgress != nil { lastProgress = now }
            refreshState(now: now)
            return
        }
        guard remotes.count < configuration.maximumRemoteCandidates else {
            throw .limitReached(what: "remote candidates", limit: configuration.maximumRemoteCandidates)
        }
        remotes.append(candidate)
        pairWithLocals(remote: remotes.count - 1, now: now)
        if lastProgress != nil { lastProgress = now }
        refreshState(now: now)
    }

    /// The peer signalled end-of-candidates (RFC 8838 §13). Lets the agent
    /// report `.completed`, and fail early once every pair has failed.
    public mutating func remoteCandidatesComplete(now: Duration) {
        hasAllRemoteCandidates = true
        checkForFailure(now: now)
        refreshState(now: now)
    }

    // MARK: - Output

    /// The next datagram to send, after running the timers due at `now`.
    public mutating func pollTransmit(now: Duration) -> ICETransmit? {
        advanceTime(now: now)
        return outbox.pop()
    }

    /// The next event, oldest first.
    public mutating func pollEvent() -> ICEEvent? {
        events.pop()
    }

    // MARK: - Inspection

    /// The selected pair while connected (nil before, and after consent is
    /// lost). During an ICE restart, the pair selected before it, until the
    /// new checks select one (ICEAgent+Restart.swift).
    public var selectedPair: ICECandidatePair? {
        guard !state.isFailed else { return nil }
        guard let selected else { return previousPath }
        return publicPair(valid: selected)
    }

    public var localCandidates: [ICECandidate] { locals.map(\.candidate) }

    /// The round-trip time of the latest check or consent check on the
    /// selected pair that was answered on its first transmission (Karn's
    /// rule: a retransmitted request gives no sample); nil before one.
    public internal(set) var selectedRoundTrip: Duration?

    /// Subtracted from the local preference of a relayed candidate whose
    /// TURN server is reached over TCP; preferences stay unique because the
    /// ones handed out per family never come within this distance.
    static let tcpRelayPreferencePenalty: UInt16 = 0x4000
    public var remoteCandidates: [ICECandidate] { remotes }

    /// The checklist, highest priority first (pairs removed by §8.1.2 or the pair limit are left out).
    public var checklist: [ICECheckListEntry] {
        pairs.filter { !$0.retired }
            .sorted { $0.priority > $1.priority }
            .map { pair in
                ICECheckListEntry(
                    pair: ICECandidatePair(
                        local: locals[pair.local].candidate, localBase: locals[pair.local].base,
                        remote: remotes[pair.remote], priority: pair.priority
                    ),
                    state: pair.state
                )
            }
    }

    /// The valid list (RFC 8445 §7.2.5.3.2), highest priority first.
    public var validPairs: [ICECandidatePair] {
        valid.indices.sorted { valid[$0].priority > valid[$1].priority }.map(publicPair(valid:))
    }

    /// True while server-reflexive gatherings are queued or in flight.
    public var isGathering: Bool {
        !pendingGatherings.isEmpty || inFlight.contains { if case .gather = $0.purpose { true } else { false } }
    }

    func publicPair(valid index: Int) -> ICECandidatePair {
        let entry = valid[index]
        return ICECandidatePair(
            local: locals[entry.local].candidate, localBase: locals[entry.local].base,
            remote: remotes[entry.remote], priority: entry.priority
        )
    }

    // MARK: - Helpers for local candidates

    /// RFC 8445 §5.1.2.1: "the local preference MUST be unique for each base"
    /// of a component; RFC 8421 §4: prefer IPv6 but interleave the families.
    /// The k-th IPv6 base gets 65535 - 2k, the k-th IPv4 base 65534 - 2k.
    mutating func newLocalPreference(for family: STUNAddress.Family) throws(ICEError) -> UInt16 {
        guard locals.count < configuration.maximumLocalCandidates else {
            throw .limitReached(what: "local candidates", limit: configuration.maximumLocalCandidates)
        }
        let sameFamily = locals.filter {
            ($0.candidate.type == .host || $0.candidate.type == .relayed) && $0.base.family.code == family.code
        }.count
        let top: Int = family.code == 0x02 ? 65535 : 65534
        return UInt16(max(top - 2 * sameFamily, 1))
    }

    /// RFC 8445 §5.1.1.3: the same foundation for candidates of the same type,
    /// base IP address, STUN/TURN server IP address and transport.
    mutating func foundation(_ type: ICECandidateType, base: STUNAddress.Family, server: STUNAddress.Family?) -> String {
        let key = FoundationKey(type: type, base: base, server: server)
        if let known = foundations[key] { return known }
        let value = String(foundations.count + 1)
        foundations[key] = value
        return value
    }

    mutating func insertLocal(_ local: Local, now: Duration) throws(ICEError) {
        guard locals.count < configuration.maximumLocalCandidates else {
            throw .limitReached(what: "local candidates", limit: configuration.maximumLocalCandidates)
        }
        locals.append(local)
        let index = locals.count - 1
        // RFC 8445 §6.1.2.4: a server-reflexive local is replaced by its base
        // when pairing, and the base pairs already exist; only bases pair.
        if local.candidate.type == .host || local.candidate.type == .relayed {
            for remote in remotes.indices { _ = addPair(local: index, remote: remote, now: now) }
        }
        events.push(.localCandidate(local.candidate))
        if lastProgress != nil { lastProgress = now }
        refreshState(now: now)
    }

    mutating func pairWithLocals(remote: Int, now: Duration) {
        for local in locals.indices where locals[local].candidate.type == .host || locals[local].candidate.type == .relayed {
            _ = addPair(local: local, remote: remote, now: now)
        }
    }
}

// MARK: - Internal records

struct Local: Sendable {
    var candidate: ICECandidate
    /// Where datagrams for this candidate are sent from (RFC 8445 §5.1.1).
    var base: STUNAddress
    var localPreference: UInt16
    /// A relayed candidate whose TURN server is reached over TCP.
    var relayOverTCP = false
}

struct FoundationKey: Hashable, Sendable {
    var type: ICECandidateType
    var base: STUNAddress.Family
    var server: STUNAddress.Family?
}

/// How a pair's checks ended, for the failure report.
enum PairFailure: Hashable, Sendable {
    case timedOut
    case rejected(Int)
    case nonSymmetric
    case noMappedAddress
}

struct Pair: Sendable {
    var local: Int
    var remote: Int
    var priority: UInt64
    var state: ICEPairState
    /// RFC 8445 §6.1.2.6: the pair foundation, local and remote foundations together.
    var foundation: String
    /// Controlled agent: USE-CANDIDATE arrived before this pair succeeded (RFC 8445 §7.3.1.5).
    var nominateOnSuccess = false
    /// Controlling agent: the next check on this pair carries USE-CANDIDATE (RFC 8445 §8.1.1).
    var useCandidate = false
    /// At least one check was sent.
    var checked = false
    /// Removed from the checklist (RFC 8445 §8.1.2 after nomination, or §6.1.2.5 limit).
    var retired = false
    /// The valid pair its success produced (RFC 8445 §7.2.5.3.2).
    var valid: Int?
    /// The round trip of its latest check answered on the first transmission.
    var roundTrip: Duration?
    var failure: PairFailure?
}

struct ValidPair: Sendable {
    var local: Int
    var remote: Int
    /// The checklist pair whose check produced it.
    var generatedBy: Int
    var priority: UInt64
    var nominated = false
    /// False once a nomination check on its generating pair failed.
    var usable = true
    /// When a check or consent check on it was last answered.
    var lastAnswer: Duration?
    /// It stopped answering: a consent check on it went unanswered, or it
    /// was selected and went silent. An answer on it clears this.
    var lost = false
}

struct InFlight: Sendable {
    enum Purpose: Sendable {
        /// A connectivity check, with what the request said (needed to read the answer).
        case check(pair: Int, useCandidate: Bool, role: ICERole, priority: UInt32)
        /// A server-reflexive gathering request.
        case gather(server: STUNAddress)
        /// An RFC 7675 consent check on a valid pair.
        case consent(valid: Int)
    }

    var id: STUNTransactionID
    var transaction: STUNTransaction
    var bytes: [UInt8]
    var from: STUNAddress
    var to: STUNAddress
    var purpose: Purpose
    /// When the first transmission left, for a round-trip sample.
    var startedAt: Duration = .zero
    /// RFC 8445 §7.3.1.4: no more retransmissions and no failure on timeout,
    /// but a late response is still used.
    var cancelled = false
}

/// RFC 7675 §5.1 state on the selected pair.
struct Consent: Sendable {
    var lastResponse: Duration
    var nextCheck: Duration
    var disconnected = false
    /// With `upgradesSelectedPair`: when the best backup pair is checked next.
    var nextBackupCheck: Duration?
    /// When every backup pair was last checked at once because the selected
    /// pair was failing (ICEAgent+Failover.swift); current while later than
    /// `lastResponse`.
    var backupProbe: Duration?
}
