import TernSTUN

// ICE restart (RFC 8445 §9, RFC 8839 §4.4.1.1.1): when the selected path
// dies and no other valid pair remains (a laptop leaving its Wi-Fi for
// Ethernet: every old candidate is gone), the agent starts again with new
// credentials and new candidates, which the two sides trade through the
// signalling channel. The pair selected before keeps carrying the session
// (`selectedPair`) until the new checks select one, so the layers above
// (DTLS, SCTP) keep their association: the new pair only changes where
// their datagrams go.
//
// What the restart forgets: every candidate, pair and transaction of the
// old generation, and the peer's credentials (RFC 8445 §9: a restart is a
// new ICE session for the data stream). A check with the old ufrag or
// signed with the old password is answered 401 and dropped, as any check
// with unknown credentials (RFC 8445 §7.3). What it keeps: the role and
// tie-breaker, the configuration, the statistics.

extension ICEAgent {
    /// Starts ICE again with `localCredentials` (both the ufrag and the
    /// password must be new, RFC 8839 §4.4.1.1.1). The driver then adds its
    /// candidates afresh (host, server-reflexive, relayed), sends them with
    /// the new credentials to the peer, and gives the peer's new ones to
    /// `setRemoteCredentials` and `addRemoteCandidate` as at the start. If
    /// no new pair is selected within `failureTimeout`, the agent fails as
    /// at the start.
    public mutating func restart(localCredentials: ICECredentials, now: Duration) throws(ICEError) {
        guard !state.isFailed else { throw .invalidConfiguration("a failed agent does not restart") }
        let old = configuration.localCredentials
        guard localCredentials.ufrag != old.ufrag, localCredentials.password != old.password else {
            throw .invalidConfiguration("an ICE restart needs a new ufrag and a new password")
        }
        // A restart during a restart keeps the pair selected before the first.
        if let selected { previousPath = publicPair(valid: selected) }

        configuration.localCredentials = localCredentials
        localKey = STUNKey.shortTerm(password: localCredentials.password)
        remoteUfrag = nil
        remotePassword = nil
        remoteKey = nil
        hasAllRemoteCandidates = false

        locals.removeAll()
        remotes.removeAll()
        pairs.removeAll()
        valid.removeAll()
        triggered.removeAll()
        inFlight.removeAll()
        pendingGatherings.removeAll()
        gatheringStarted = false
        nominating = nil
        selected = nil
        consent = nil
        firstValidAt = nil
        // The peer's routers are learned afresh from its new candidates.
        remoteRouters = RemoteRouters(policy: remoteRouters.policy, clock: now)
        unauthenticatedResponses = 0
        unauthenticatedRequests = 0
        // The failure timer runs from the restart: the new checks have
        // `failureTimeout` to select a pair.
        lastProgress = now
        restarts += 1
        refreshState(now: now)
    }

    /// True between `restart` and the selection of a new pair.
    public var isRestarting: Bool { selected == nil && previousPath != nil && !state.isFailed }

    /// When the selected pair will have been silent for `failoverTimeout`
    /// with no live backup pair to move to: the time for the driver to
    /// restart ICE, if it can reach the peer some other way. Nil when it
    /// does not apply (no selection, a standard agent, a live backup).
    /// Not part of `nextDeadline`: the agent itself does nothing then.
    public var restartDeadline: Duration? {
        guard configuration.upgradesSelectedPair, !state.isFailed, let selected, let consent else { return nil }
        if valid[selected].lost { return consent.lastResponse }
        let deadline = consent.lastResponse + configuration.failoverTimeout
        return liveBackup(at: deadline) == nil ? deadline : nil
    }

    /// Whether the driver should restart ICE now (`restartDeadline` passed).
    public func restartAdvised(now: Duration) -> Bool {
        restartDeadline.map { now >= $0 } ?? false
    }
}

extension ICEAgent {
    /// The local candidate whose base is `base` can no longer send or
    /// receive: the TURN allocation behind a relayed candidate is gone (its
    /// server lost it, or the address it was made from went away). Its
    /// pairs leave the checklist and their checks in flight are dropped, so
    /// that a fresh allocation's candidate, which has the same foundation
    /// (the same type, relayed IP and server, RFC 8445 §5.1.1.3), is not
    /// kept Frozen behind checks that can only time out (§6.1.2.6); valid
    /// pairs on it other than the selected one are lost, so none is taken
    /// as a backup. The candidate itself stays known (the peer may still
    /// name it).
    public mutating func localCandidateGone(base: STUNAddress, now: Duration) {
        let gone = Set(locals.indices.filter { locals[$0].base == base })
        guard !gone.isEmpty else { return }
        for index in pairs.indices where gone.contains(pairs[index].local) {
            pairs[index].retired = true
            pairs[index].useCandidate = false
            if nominating == index { nominating = nil }
        }
        triggered.removeAll { gone.contains(pairs[$0].local) }
        inFlight.removeAll { flight in
            if case .check(let pair, _, _, _) = flight.purpose { return gone.contains(pairs[pair].local) }
            return false
        }
        for index in valid.indices where index != selected && gone.contains(valid[index].local) { valid[index].lost = true }
        refreshState(now: now)
    }
}
