import TernSTUN

// Mapping-clash avoidance: who sends the first check through a router that
// answers unsolicited datagrams.
//
// A Linux router with nothing filtering its input answers a datagram to a
// port it has no mapping for with ICMP port unreachable, and conntrack
// confirms an entry for that flow. If our first check to the peer's
// server-reflexive address arrives before the peer's own first packet to us
// has left its router, that entry clashes with the peer's outgoing flow to
// us: MASQUERADE gives it a fresh source port, which our router (filtering
// by address and port) drops, and the entry lives as long as our checks keep
// refreshing it. A direct path then exists only if the peer's packet leaves
// first. docs/lab.md (cone-icmp-a, cone-icmp-b) shows both orders.
//
// So the driver probes the router behind each remote server-reflexive
// candidate (one datagram to a port nobody uses, from another socket) and
// reports whether it answered. Ordinary checks to that address wait:
// until the answer, at most `probeWait`; when the router answers, until
// `hold` after the candidate arrived, so the peer (whose probe of our
// router, if it drops, found it silent) sends first and our check arrives
// as a reply. Triggered checks never wait: a request from the address means
// the peer's router already has its mapping. If both routers answer, both
// wait and neither order works (a direct path needs both first packets to
// cross in flight); the relay carries the session.
//
// Between tern peers the hold need not be a guess: after its first ordinary
// check from a host base to one of our server-reflexive addresses leaves,
// the peer says so through the mailbox (`mappingOpened`, the agent's event
// of the same name). Its router then has the mapping our check needs, so
// `peerOpenedMapping` ends every hold at once; the driver's fixed hold is
// then only the fallback for a peer that never says it.

/// What the agent knows about the routers behind remote candidates.
struct RemoteRouters: Sendable {
    struct Policy: Sendable {
        var probeWait: Duration
        var hold: Duration
    }

    struct Router: Sendable {
        /// When the first candidate behind it arrived (the holds count from here).
        var since: Duration
        /// Nil until the probe's result is known.
        var answersUnsolicited: Bool?
    }

    /// Nil: nothing is probed or held (the default; the driver opts in).
    var policy: Policy?
    /// Keyed by the router's IP address bytes.
    var routers: [[UInt8]: Router] = [:]
    /// The peer has sent a check to one of our server-reflexive addresses
    /// (`peerOpenedMapping`): nothing is held any more.
    var peerOpened = false
    /// Remote router addresses (IP bytes) a check from a host base has gone
    /// to, each announced once as `ICEEvent.mappingOpened`.
    var announced: Set<[UInt8]> = []
    /// The time of the latest pacer run: `hasPacedWork` and `nextDeadline`
    /// take no time, and must agree with what the pacer will do.
    var clock: Duration = .zero

    /// Until when ordinary checks to an address behind this router wait; nil if they may go.
    func holdEnd(for address: STUNAddress, now: Duration) -> Duration? {
        guard let policy, !peerOpened, let router = routers[address.ipBytes] else { return nil }
        let end: Duration
        switch router.answersUnsolicited {
        case nil: end = router.since + policy.probeWait
        case false?: return nil
        case true?: end = router.since + policy.hold
        }
        return end > now ? end : nil
    }
}

extension ICEAgent {
    /// Turns mapping-clash avoidance on (see the top of this file): ordinary
    /// checks to an address named in `probingRemoteRouter` wait up to
    /// `probeWait` for the probe's answer, and `hold` when the router answers.
    public mutating func avoidMappingClashes(probeWait: Duration, hold: Duration) {
        remoteRouters.policy = RemoteRouters.Policy(probeWait: max(probeWait, .zero), hold: max(hold, probeWait))
    }

    /// The driver starts probing the router at `address`'s IP (a remote
    /// server-reflexive candidate it is about to add). Returns false when
    /// avoidance is off or that router is already known (no new probe needed).
    @discardableResult
    public mutating func probingRemoteRouter(_ address: STUNAddress, now: Duration) -> Bool {
        guard remoteRouters.policy != nil, remoteRouters.routers[address.ipBytes] == nil else { return false }
        remoteRouters.routers[address.ipBytes] = RemoteRouters.Router(since: now)
        return true
    }

    /// The probe's result: the router at `address`'s IP answered an
    /// unsolicited datagram (ICMP unreachable) or stayed silent.
    public mutating func remoteRouter(_ address: STUNAddress, answersUnsolicited: Bool, now: Duration) {
        guard var router = remoteRouters.routers[address.ipBytes], router.answersUnsolicited == nil else { return }
        router.answersUnsolicited = answersUnsolicited
        remoteRouters.routers[address.ipBytes] = router
    }

    /// The peer says its first check to one of our server-reflexive
    /// addresses has left (its `mappingOpened`): its router has a mapping
    /// towards us, so our checks can no longer clash with its flow. Ends
    /// every hold.
    public mutating func peerOpenedMapping(now: Duration) {
        remoteRouters.peerOpened = true
    }

    /// After an ordinary check from a host base to a remote server-reflexive
    /// candidate: the first one to each remote router is announced as
    /// `mappingOpened` (with avoidance on), for the driver to tell the peer.
    mutating func noteCheckSent(pair index: Int) {
        guard remoteRouters.policy != nil else { return }
        let remote = remotes[pairs[index].remote]
        guard remote.type == .serverReflexive, locals[pairs[index].local].candidate.type == .host,
            remoteRouters.announced.insert(remote.address.ipBytes).inserted
        else { return }
        events.push(.mappingOpened(towards: remote.address))
    }

    /// True while ordinary checks on this pair must wait (as of the latest pacer run).
    func isHeld(_ index: Int) -> Bool {
        remoteRouters.holdEnd(for: remotes[pairs[index].remote].address, now: remoteRouters.clock) != nil
    }

    /// A Waiting pair the pacer may check now: not retired, not held.
    func isCheckable(_ index: Int) -> Bool {
        !pairs[index].retired && pairs[index].state == .waiting && !isHeld(index)
    }

    /// The earliest end of a hold that keeps a Waiting pair back, for
    /// `nextDeadline` (pairs the checklist dropped are retired, not Waiting).
    var nextHoldEnd: Duration? {
        guard remoteRouters.policy != nil, canCheck else { return nil }
        return pairs.indices
            .filter { !pairs[$0].retired && pairs[$0].state == .waiting }
            .compactMap { remoteRouters.holdEnd(for: remotes[pairs[$0].remote].address, now: remoteRouters.clock) }
            .min()
    }
}
