// Keeping a session alive when its path dies (`upgradesSelectedPair`): the
// selected pair is checked every `selectedCheckInterval`, the best other
// valid pair every `consentInterval`. When the selected pair has answered
// nothing for half the `failoverTimeout`, every backup pair is checked at
// once (one consent check each, RFC 7675 §5.1, in parallel: the probe);
// from then on a backup counts as live only if it answered since the
// probe, so it has the other half of the timeout (two transmissions of the
// check, at 0 and 0.5 s) to show it still reaches the peer. When the
// selected pair has answered nothing for `failoverTimeout` (or sending on
// it failed hard), the best live backup is selected in its place; with
// none, the driver restarts ICE then (ICEAgent+Restart.swift) rather than
// failing over to one dead backup after another, each of which RFC 7675's
// 30 s consent alone would still count live. The controlling side
// nominates the new pair, so the controlled side follows at once (it takes
// a lower-priority nomination once its own selected pair is failing too)
// or finds the same by itself.

extension ICEAgent {
    /// How often the selected pair is checked.
    var checkInterval: Duration {
        configuration.upgradesSelectedPair ? configuration.selectedCheckInterval : configuration.consentInterval
    }

    /// Valid pairs other than the selected one that may carry the session,
    /// best first.
    func backups() -> [Int] {
        valid.indices
            .filter { $0 != selected && valid[$0].usable && !valid[$0].lost && pairs[valid[$0].generatedBy].state != .failed }
            .sorted { valid[$0].priority > valid[$1].priority }
    }

    /// The pair the backup consent check goes to.
    var backupToCheck: Int? { backups().first }

    /// The best backup pair that still has consent at `time` (an answer
    /// within `consentTimeout` before it, RFC 7675 §5.1) and, while a probe
    /// of the backups is current, answered since the probe.
    func liveBackup(at time: Duration) -> Int? {
        let probe = currentBackupProbe
        return backups().first { index in
            guard let answer = valid[index].lastAnswer else { return false }
            if let probe, answer < probe { return false }
            return answer + configuration.consentTimeout > time
        }
    }

    /// When the backups were all checked at once during the selected pair's
    /// current silence (nil: not in this silence).
    var currentBackupProbe: Duration? {
        guard let consent, let probe = consent.backupProbe, probe > consent.lastResponse else { return nil }
        return probe
    }

    /// When the backups are to be probed: half the failover timeout into
    /// the selected pair's silence, once per silence (nil: done, or not
    /// applicable).
    var backupProbeDeadline: Duration? {
        guard configuration.upgradesSelectedPair, selected != nil, let consent, currentBackupProbe == nil else { return nil }
        return consent.lastResponse + configuration.failoverTimeout / 2
    }

    /// The selected pair is failing: one consent check to every backup pair
    /// at once, so that the failover deadline knows which still reach the
    /// peer (rather than trusting answers up to 30 s old).
    mutating func probeBackups(now: Duration) {
        guard let deadline = backupProbeDeadline, now >= deadline else { return }
        consent?.backupProbe = now
        for backup in backups() { sendConsentCheck(valid: backup, now: now) }
    }

    /// When the selected pair will have been silent for `failoverTimeout`,
    /// if a backup is live then (nil otherwise: nothing to move to). A
    /// function of the agent's facts only, so that a deadline past is acted
    /// on when it is reported.
    var failoverDeadline: Duration? {
        guard configuration.upgradesSelectedPair, selected != nil, let consent else { return nil }
        let deadline = consent.lastResponse + configuration.failoverTimeout
        return liveBackup(at: deadline) == nil ? nil : deadline
    }

    /// When a check on any valid pair was last answered (nil before any):
    /// the layers above compare it with their own silence, so that a path
    /// ICE has not heard from either is left to ICE while it can recover it.
    public var lastAnswerFromPeer: Duration? { valid.compactMap(\.lastAnswer).max() }

    /// The selected pair is lost, or silent for half the failover timeout.
    func selectedIsFailing(now: Duration) -> Bool {
        guard configuration.upgradesSelectedPair, let selected, let consent else { return false }
        return valid[selected].lost || now - consent.lastResponse >= configuration.failoverTimeout / 2
    }

    mutating func runFailover(now: Duration) {
        probeBackups(now: now)
        guard let deadline = failoverDeadline, now >= deadline, let backup = liveBackup(at: deadline) else { return }
        failOver(to: backup, now: now)
    }

    /// The driver's sends on the selected pair fail with a hard error (no
    /// route to the peer, the local address went away): move to a live
    /// backup pair at once rather than after `failoverTimeout` of silence.
    /// Without one nothing changes (consent decides). Returns whether the
    /// selected pair changed.
    @discardableResult
    public mutating func selectedPairUnreachable(now: Duration) -> Bool {
        guard configuration.upgradesSelectedPair, !state.isFailed, selected != nil, let backup = liveBackup(at: now) else { return false }
        failOver(to: backup, now: now)
        refreshState(now: now)
        return true
    }

    /// Replaces the selected pair by `backup`, marking the old one lost; the
    /// controlling side nominates the new one so the peer moves too.
    mutating func failOver(to backup: Int, now: Duration) {
        guard let from = selected, from != backup else { return }
        valid[from].lost = true
        let generating = valid[from].generatedBy
        pairs[generating].useCandidate = false
        if nominating == generating { nominating = nil }
        let lostPair = publicPair(valid: from)
        selected = backup
        if let roundTrip = pairs[valid[backup].generatedBy].roundTrip { selectedRoundTrip = roundTrip }
        // Consent on the new pair from now; checked at once.
        consent?.lastResponse = now
        consent?.disconnected = false
        consent?.nextCheck = now
        events.push(.selectedPairLost(lostPair))
        if role == .controlling {
            valid[backup].nominated = true
            nominate(backup)
        }
        events.push(.selectedPair(publicPair(valid: backup)))
    }
}
