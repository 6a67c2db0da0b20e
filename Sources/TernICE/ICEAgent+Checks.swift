import TernSTUN

// The checklist: pair formation, scheduling, sending checks and reading
// their answers (RFC 8445 §6.1.2, §6.1.4, §7.2).

extension ICEAgent {
    // MARK: - Pairs

    /// RFC 8445 §6.1.2.3 with this agent's current role.
    func pairPriority(local: UInt32, remote: UInt32) -> UInt64 {
        switch role {
        case .controlling: return ICECandidatePair.priority(controlling: local, controlled: remote)
        case .controlled: return ICECandidatePair.priority(controlling: remote, controlled: local)
        }
    }

    /// RFC 8445 §6.1.2.2: pair only candidates of the same component and
    /// transport and of the same address family; an IPv6 link-local address
    /// only with another link-local one.
    func canPair(local: Int, remote: Int) -> Bool {
        let l = locals[local].candidate
        let r = remotes[remote]
        guard l.component == r.component, l.transport == .udp, r.transport == .udp else { return false }
        guard l.address.family.code == r.address.family.code else { return false }
        return IPAddressText.isLinkLocal(l.address.family) == IPAddressText.isLinkLocal(r.address.family)
    }

    /// The checklist pair of these candidates, created if needed. Nil when
    /// the candidates cannot pair, the checks are over, or the list is full
    /// of better pairs (RFC 8445 §6.1.2.5).
    mutating func addPair(local: Int, remote: Int, now: Duration) -> Int? {
        if let existing = pairs.firstIndex(where: { $0.local == local && $0.remote == remote }) {
            return existing
        }
        guard canPair(local: local, remote: remote), !state.isFailed else { return nil }
        let priority = pairPriority(local: locals[local].candidate.priority, remote: remotes[remote].priority)
        let active = pairs.indices.filter { !pairs[$0].retired }
        if active.count >= configuration.maximumPairs {
            // RFC 8445 §6.1.2.5: keep the highest-priority pairs; only a pair
            // that has not been checked yet can make room.
            let evictable = active.filter { pairs[$0].state == .frozen || pairs[$0].state == .waiting }
            guard let lowest = evictable.min(by: { pairs[$0].priority < pairs[$1].priority }),
                pairs[lowest].priority < priority
            else { return nil }
            pairs[lowest].retired = true
            triggered.removeAll { $0 == lowest }
        }
        let foundation = locals[local].candidate.foundation + ":" + remotes[remote].foundation
        // RFC 8445 §6.1.2.6 and RFC 8838 §11: a new pair waits unless a pair
        // of the same foundation is already waiting or being checked, in
        // which case it stays frozen until that one succeeds (§7.2.5.3.3).
        let busy = pairs.contains {
            !$0.retired && $0.foundation == foundation && ($0.state == .waiting || $0.state == .inProgress)
        }
        // After selection (RFC 8445 §8.1.2) new pairs are kept only for
        // triggered checks and nominations; they start out of the list.
        pairs.append(Pair(
            local: local, remote: remote, priority: priority, state: busy ? .frozen : .waiting,
            foundation: foundation, retired: !checksContinue
        ))
        return pairs.count - 1
    }

    /// RFC 8445 §7.3.1.4: schedule a triggered check for a pair.
    mutating func trigger(_ index: Int) {
        pairs[index].retired = false
        switch pairs[index].state {
        case .succeeded:
            // "If the state of that pair is Succeeded, nothing further is done."
            // A nomination re-check is queued by `nominate` itself.
            return
        case .inProgress:
            // Cancel the check in progress (no retransmissions, no failure on
            // timeout; a late answer still counts) and check again.
            for i in inFlight.indices {
                if case .check(let pair, _, _, _) = inFlight[i].purpose, pair == index { inFlight[i].cancelled = true }
            }
        case .waiting, .frozen, .failed:
            break
        }
        pairs[index].state = .waiting
        pairs[index].failure = nil
        if !triggered.contains(index) { triggered.append(index) }
    }

    // MARK: - Scheduling (RFC 8445 §6.1.4.2)

    /// True if checks may be sent: the peer's password is known and nothing has failed.
    var canCheck: Bool { remoteKey != nil && !state.isFailed }

    /// Whether a triggered-queue entry would be sent now.
    func isSendableTrigger(_ index: Int) -> Bool {
        let pair = pairs[index]
        guard !pair.retired else { return false }
        if pair.useCandidate { return role == .controlling }
        guard pair.state == .waiting else { return false }
        return checksContinue || pair.nominateOnSuccess
    }

    /// RFC 8445 §6.1.4.2 step 2: with no Waiting pair, a Frozen pair may be
    /// unfrozen if no pair of its foundation is Waiting or In-Progress.
    func isUnfreezable(_ index: Int) -> Bool {
        let pair = pairs[index]
        guard !pair.retired, pair.state == .frozen else { return false }
        return !pairs.contains {
            !$0.retired && $0.foundation == pair.foundation && ($0.state == .waiting || $0.state == .inProgress)
        }
    }

    /// True when the pacer has something to start at the next slot; exactly
    /// the condition under which `runPacer` sends, so that a deadline is
    /// never reported without something happening when it passes.
    var hasPacedWork: Bool {
        if !pendingGatherings.isEmpty { return true }
        guard canCheck else { return false }
        if triggered.contains(where: isSendableTrigger) { return true }
        guard checksContinue else { return false }
        return pairs.indices.contains { isCheckable($0) || isUnfreezable($0) }
    }

    /// Starts at most one new transaction per Ta (RFC 8445 §14.2): a
    /// gathering first, then the triggered-check queue, then the ordinary
    /// check of the highest-priority Waiting pair (§6.1.4.2).
    mutating func runPacer(now: Duration) {
        remoteRouters.clock = now
        guard now >= nextPacingSlot, hasPacedWork else { return }
        nextPacingSlot = now + configuration.pacing
        if !pendingGatherings.isEmpty {
            let gathering = pendingGatherings.removeFirst()
            startGathering(server: gathering.server, base: gathering.base, now: now)
            return
        }
        while !triggered.isEmpty {
            let index = triggered.removeFirst()
            if isSendableTrigger(index) {
                sendCheck(pair: index, now: now)
                return
            }
        }
        guard checksContinue else { return }
        if !pairs.indices.contains(where: isCheckable) {
            // Step 2: unfreeze one pair per foundation, the highest-priority
            // one (Waiting pairs held back for a remote router count as none).
            for index in pairs.indices.sorted(by: { pairs[$0].priority > pairs[$1].priority }) where isUnfreezable(index) {
                pairs[index].state = .waiting
            }
        }
        let waiting = pairs.indices.filter(isCheckable)
        if let best = waiting.max(by: { pairs[$0].priority < pairs[$1].priority }) {
            sendCheck(pair: best, now: now)
        }
    }

    // MARK: - Sending checks (RFC 8445 §7.2)

    /// The attributes every check and consent request carries (RFC 8445 §7.2.2):
    /// USERNAME "remote:local", PRIORITY as if the local candidate were
    /// peer-reflexive (§7.1.1), and the role with the tie-breaker (§7.1.3).
    func checkAttributes(localPreference: UInt16) -> (attributes: [STUNAttribute], priority: UInt32) {
        let priority = ICECandidate.priority(type: .peerReflexive, localPreference: localPreference)
        var attributes: [STUNAttribute] = [
            .username("\(remoteUfrag ?? ""):\(configuration.localCredentials.ufrag)"),
            .priority(priority),
        ]
        switch role {
        case .controlling: attributes.append(.iceControlling(configuration.tieBreaker))
        case .controlled: attributes.append(.iceControlled(configuration.tieBreaker))
        }
        return (attributes, priority)
    }

    mutating func sendCheck(pair index: Int, now: Duration) {
        guard let remoteKey else { return }
        let pair = pairs[index]
        let local = locals[pair.local]
        var (attributes, priority) = checkAttributes(localPreference: local.localPreference)
        let useCandidate = pair.useCandidate && role == .controlling
        if useCandidate {
            // RFC 8445 §8.1.1: the nominating check.
            attributes.append(.useCandidate)
        }
        let id = STUNTransactionID.random(using: &random)
        let request = STUNMessage(.request, .binding, transactionID: id, attributes: attributes)
        guard let bytes = try? request.encode(integrity: remoteKey, fingerprint: true) else { return }

        // RFC 8445 §14.3: RTO = MAX(500 ms, Ta * (Num-Waiting + Num-In-Progress)).
        let busy = pairs.filter { !$0.retired && ($0.state == .waiting || $0.state == .inProgress) }.count
        var retransmission = configuration.checkRetransmission
        retransmission.initialRTO = max(retransmission.initialRTO, configuration.pacing * max(busy, 1))

        if pair.state != .succeeded { pairs[index].state = .inProgress }
        pairs[index].checked = true
        statistics.checksSent += 1
        start(InFlight(
            id: id, transaction: STUNTransaction(now: now, configuration: retransmission), bytes: bytes,
            from: local.base, to: remotes[pair.remote].address,
            purpose: .check(pair: index, useCandidate: useCandidate, role: role, priority: priority)
        ), now: now)
        noteCheckSent(pair: index)
    }

    mutating func startGathering(server: STUNAddress, base: STUNAddress, now: Duration) {
        let id = STUNTransactionID.random(using: &random)
        // RFC 8445 §5.1.1.1: a plain Binding request, no credentials.
        guard let bytes = try? STUNMessage(.request, .binding, transactionID: id).encode(fingerprint: true) else { return }
        start(InFlight(
            id: id, transaction: STUNTransaction(now: now, configuration: configuration.gatheringRetransmission),
            bytes: bytes, from: base, to: server, purpose: .gather(server: server)
        ), now: now)
    }

    /// Records the transaction and sends its first transmission.
    mutating func start(_ flight: InFlight, now: Duration) {
        var flight = flight
        flight.startedAt = now
        if case .transmit = flight.transaction.poll(now: now) {
            outbox.push(ICETransmit(bytes: flight.bytes, from: flight.from, to: flight.to))
        }
        inFlight.append(flight)
    }

    // MARK: - Answers to our requests (RFC 8445 §7.2.5)

    mutating func handleResponse(_ response: STUNMessage, raw: [UInt8], from source: STUNAddress, toBase base: STUNAddress, now: Duration) -> ICEDatagramOutcome {
        guard let index = inFlight.firstIndex(where: { $0.id == response.transactionID }) else {
            return drop(.unknownTransaction)
        }
        guard response.method == .binding else { return drop(.ignored("response method \(response.method)")) }
        statistics.responsesReceived += 1
        let flight = inFlight[index]

        if case .gather(let server) = flight.purpose {
            guard source == flight.to, base == flight.from else { return drop(.ignored("answer from \(source), not the STUN server")) }
            inFlight.remove(at: index)
            gatheringAnswered(response, server: server, base: base, now: now)
            return .handled
        }

        // RFC 8445 §7.2.5 / RFC 8489 §9.1.4: the answer must carry a valid
        // FINGERPRINT and MESSAGE-INTEGRITY made with the peer's password; an
        // answer that does not is discarded as if it never arrived (a 400/401
        // from a peer that rejected our credentials has no integrity).
        guard let remoteKey else { return drop(.unauthenticated("no remote password")) }
        do {
            try STUNMessage.checkFingerprint(of: raw)
            try STUNMessage.checkIntegrity(of: raw, key: remoteKey)
        } catch {
            unauthenticatedResponses += 1
            if let code = response.errorCode {
                return drop(.unauthenticated("error \(code.code) without valid integrity: the peer may not know our ice-pwd"))
            }
            return drop(.unauthenticated(error.reason))
        }
        inFlight.remove(at: index)
        // RFC 8445 §7.2.5.2.1: the answer must come from where the request went, to where it came from.
        let symmetric = source == flight.to && base == flight.from
        let roundTrip: Duration? = symmetric && flight.transaction.transmissions == 1 ? now - flight.startedAt : nil

        switch flight.purpose {
        case .gather:
            return .handled  // handled above
        case .consent(let validIndex):
            // RFC 7675 §5.1: consent is refreshed by an authenticated success
            // response from the same 5-tuple.
            if symmetric, response.messageClass == .successResponse, valid.indices.contains(validIndex) {
                valid[validIndex].lastAnswer = now
                valid[validIndex].lost = false
            }
            if symmetric, response.messageClass == .successResponse, selected == validIndex, var consent {
                if let roundTrip { selectedRoundTrip = roundTrip }
                consent.lastResponse = now
                consent.disconnected = false
                self.consent = consent
            }
            return .handled
        case .check(let pair, let useCandidate, let sentRole, let priority):
            guard symmetric else {
                pairFailed(pair, .nonSymmetric)
                return .handled
            }
            if response.messageClass == .errorResponse {
                let code = response.errorCode?.code ?? 0
                if code == STUNErrorCode.roleConflict.code {
                    roleConflictAnswered(pair: pair, sentRole: sentRole, now: now)
                } else {
                    // RFC 8445 §7.2.5.2.4: any other error is unrecoverable for this pair.
                    pairFailed(pair, .rejected(code))
                }
                return .handled
            }
            // RFC 8445 §7.2.5.3: XOR-MAPPED-ADDRESS says how the peer saw us.
            guard let mapped = response.xorMappedAddress ?? response.mappedAddress else {
                pairFailed(pair, .noMappedAddress)
                return .handled
            }
            if let roundTrip { pairs[pair].roundTrip = roundTrip }
            checkSucceeded(pair: pair, mapped: mapped, sentPriority: priority, useCandidate: useCandidate, sentRole: sentRole, now: now)
            if let roundTrip, let selected, valid[selected].generatedBy == pair { selectedRoundTrip = roundTrip }
            return .handled
        }
    }

    /// RFC 8445 §7.2.5.1: a 487 answer. Switch role if the request was sent
    /// in the role we still have, and check the pair again.
    mutating func roleConflictAnswered(pair index: Int, sentRole: ICERole, now: Duration) {
        statistics.roleConflicts += 1
        if role == sentRole {
            switchRole(to: sentRole == .controlling ? .controlled : .controlling, now: now)
        }
        if nominating == index { nominating = nil }
        pairs[index].useCandidate = false
        if pairs[index].state != .succeeded {
            pairs[index].state = .waiting
            if !triggered.contains(index) { triggered.append(index) }
        }
    }

    mutating func pairFailed(_ index: Int, _ failure: PairFailure) {
        pairs[index].state = .failed
        pairs[index].failure = failure
        pairs[index].useCandidate = false
        if nominating == index {
            nominating = nil
            // The nomination did not go through: do not pick this path again.
            if let v = pairs[index].valid { valid[v].usable = false }
        }
    }

    /// RFC 8445 §7.2.5.3: a success response.
    mutating func checkSucceeded(pair index: Int, mapped: STUNAddress, sentPriority: UInt32, useCandidate: Bool, sentRole: ICERole, now: Duration) {
        let pair = pairs[index]
        let base = locals[pair.local].base

        // §7.2.5.3.1: a mapped address that is no known local candidate is a
        // new peer-reflexive one, with the priority the request carried and
        // the base of the pair's local candidate. It is not signalled.
        var localIndex = locals.firstIndex { $0.candidate.address == mapped && $0.base == base }
            ?? locals.firstIndex { $0.candidate.address == mapped }
        if localIndex == nil, locals.count < configuration.maximumLocalCandidates {
            let candidate = ICECandidate(
                foundation: foundation(.peerReflexive, base: base.family, server: nil),
                priority: sentPriority, address: mapped, type: .peerReflexive, relatedAddress: base
            )
            locals.append(Local(candidate: candidate, base: base, localPreference: locals[pair.local].localPreference))
            localIndex = locals.count - 1
        }
        let validLocal = localIndex ?? pair.local

        // §7.2.5.3.2: the valid pair is (local candidate of the mapped address, remote of the request).
        let validIndex: Int
        if let known = valid.firstIndex(where: { $0.local == validLocal && $0.remote == pair.remote }) {
            validIndex = known
        } else {
            valid.append(ValidPair(
                local: validLocal, remote: pair.remote, generatedBy: index,
                priority: validLocal == pair.local
                    ? pair.priority : pairPriority(local: locals[validLocal].candidate.priority, remote: remotes[pair.remote].priority)
            ))
            validIndex = valid.count - 1
        }
        pairs[index].valid = validIndex
        valid[validIndex].lastAnswer = now
        valid[validIndex].lost = false
        if firstValidAt == nil { firstValidAt = now }

        // §7.2.5.3.3: the pair succeeded; unfreeze the pairs of its foundation.
        pairs[index].state = .succeeded
        pairs[index].failure = nil
        for other in pairs.indices where pairs[other].state == .frozen && pairs[other].foundation == pair.foundation {
            pairs[other].state = .waiting
        }

        // §7.2.5.3.4: nomination.
        if useCandidate, sentRole == .controlling, role == .controlling {
            pairs[index].useCandidate = false
            if nominating == index { nominating = nil }
            valid[validIndex].nominated = true
            select(valid: validIndex, now: now)
        } else if role == .controlled, pairs[index].nominateOnSuccess {
            // §7.3.1.5: USE-CANDIDATE arrived while this pair was being checked.
            valid[validIndex].nominated = true
            select(valid: validIndex, now: now)
        }
        evaluateNomination(now: now)
    }

    // MARK: - Nomination (RFC 8445 §8.1)

    /// The usable valid pair with the highest priority, not yet nominated.
    var bestNominationCandidate: Int? {
        valid.indices
            .filter { valid[$0].usable && pairs[valid[$0].generatedBy].state != .failed }
            .max { valid[$0].priority < valid[$1].priority }
    }

    /// Regular nomination by the controlling agent (RFC 8445 §8.1.1): repeat
    /// the check that produced the best valid pair with USE-CANDIDATE once
    /// it is direct (no relay at either end: a better direct pair would gain
    /// little, and waiting for host pairs between private networks that
    /// never answer would cost `nominationDelay` behind every NAT), or once
    /// no pair of higher priority is still to be checked, or at the latest
    /// `nominationDelay` after the first valid pair, so a relayed pair gives
    /// a direct one that long to succeed.
    mutating func evaluateNomination(now: Duration) {
        if role == .controlling, nominating == nil, canCheck, let better = upgradeCandidate {
            nominate(better)
            return
        }
        guard role == .controlling, selected == nil, nominating == nil, canCheck,
            let best = bestNominationCandidate, let since = firstValidAt
        else { return }
        let bestPriority = valid[best].priority
        let betterPending = pairs.contains {
            !$0.retired && $0.priority > bestPriority && ($0.state == .waiting || $0.state == .inProgress || $0.state == .frozen)
        }
        let direct = locals[valid[best].local].candidate.type != .relayed && remotes[valid[best].remote].type != .relayed
        guard direct || !betterPending || now >= since + configuration.nominationDelay else { return }
        nominate(best)
    }

    /// Repeats the check that produced a valid pair, with USE-CANDIDATE, first.
    mutating func nominate(_ best: Int) {
        let generating = valid[best].generatedBy
        pairs[generating].useCandidate = true
        pairs[generating].retired = false
        nominating = generating
        triggered.removeAll { $0 == generating }
        triggered.insert(generating, at: 0)
    }

    /// When `evaluateNomination` will act if nothing else happens first.
    var nominationDeadline: Duration? {
        guard role == .controlling, selected == nil, nominating == nil, canCheck,
            let since = firstValidAt, bestNominationCandidate != nil
        else { return nil }
        return since + configuration.nominationDelay
    }

    /// A nominated valid pair becomes the selected pair (RFC 8445 §8.1.1); on
    /// the controlled side a later nomination of a higher-priority pair
    /// replaces it. §8.1.2: Waiting and Frozen pairs leave the checklist and
    /// checks in progress stop, except those for nominations.
    mutating func select(valid index: Int, now: Duration) {
        if let roundTrip = pairs[valid[index].generatedBy].roundTrip { selectedRoundTrip = roundTrip }
        if let current = selected {
            // A nomination of a lower-priority pair is the controlling
            // side's failover: taken once our own selected pair is failing too.
            guard current != index, valid[index].priority > valid[current].priority || selectedIsFailing(now: now) else { return }
            if valid[index].priority < valid[current].priority {
                failOver(to: index, now: now)
                refreshState(now: now)
                return
            }
        }
        selected = index
        // Start at once, move to the best path: nothing is dropped.
        guard !configuration.upgradesSelectedPair else {
            startConsent(now: now)
            events.push(.selectedPair(publicPair(valid: index)))
            refreshState(now: now)
            return
        }
        for p in pairs.indices where pairs[p].state == .waiting || pairs[p].state == .frozen {
            if !pairs[p].nominateOnSuccess { pairs[p].retired = true }
        }
        let stillSendable = triggered.filter { isSendableTrigger($0) }
        triggered = stillSendable
        for i in inFlight.indices {
            if case .check(let pair, let useCandidate, _, _) = inFlight[i].purpose, !useCandidate, !pairs[pair].nominateOnSuccess {
                inFlight[i].cancelled = true
            }
        }
        startConsent(now: now)
        events.push(.selectedPair(publicPair(valid: index)))
        refreshState(now: now)
    }

    /// RFC 7675: consent runs on the selected pair from its selection on.
    mutating func startConsent(now: Duration) {
        if consent == nil {
            consent = Consent(lastResponse: now, nextCheck: now + random.jittered(checkInterval))
        } else {
            consent?.lastResponse = now
        }
        if configuration.upgradesSelectedPair, consent?.nextBackupCheck == nil {
            consent?.nextBackupCheck = now + random.jittered(configuration.consentInterval)
        }
    }

    /// RFC 8445 §7.3.1.1 / §7.2.5.1: a role switch recomputes every pair priority.
    mutating func switchRole(to newRole: ICERole, now: Duration) {
        guard newRole != role else { return }
        role = newRole
        for p in pairs.indices {
            pairs[p].priority = pairPriority(local: locals[pairs[p].local].candidate.priority, remote: remotes[pairs[p].remote].priority)
            if newRole == .controlled { pairs[p].useCandidate = false }
        }
        for v in valid.indices {
            valid[v].priority = pairPriority(local: locals[valid[v].local].candidate.priority, remote: remotes[valid[v].remote].priority)
        }
        nominating = nil
        if newRole == .controlling, firstValidAt != nil { firstValidAt = now }
        events.push(.roleChanged(newRole))
    }

    // MARK: - Gathering answers

    mutating func gatheringAnswered(_ response: STUNMessage, server: STUNAddress, base: STUNAddress, now: Duration) {
        if response.messageClass == .successResponse, let mapped = response.xorMappedAddress ?? response.mappedAddress {
            do {
                try addServerReflexiveCandidate(mapped, base: base, server: server, now: now)
            } catch {
                events.push(.gatheringFailed(error))
            }
        } else {
            let why = response.errorCode.map { "error \($0.code)" } ?? "no XOR-MAPPED-ADDRESS"
            events.push(.gatheringFailed(.gatheringFailed(server: server, reason: why)))
        }
        if !isGathering { events.push(.gatheringComplete) }
    }

    mutating func drop(_ error: ICEError) -> ICEDatagramOutcome {
        statistics.dropped += 1
        return .dropped(error)
    }
}
