import TernSTUN

// Datagrams in, timers, consent and the state the agent reports
// (RFC 8445 §7.3, §8; RFC 7675 §5).

extension ICEAgent {
    // MARK: - Datagrams

    /// Feeds one STUN datagram received from `source` on the local base
    /// `toBase` (the socket's address, or a relayed address for datagrams the
    /// TURN client unwrapped). Anything malformed or unauthenticated is
    /// dropped and counted, never fatal. Responses to transactions the agent
    /// did not start (the driver's TURN client's) come back as
    /// `.dropped(.unknownTransaction)`.
    @discardableResult
    public mutating func handleDatagram(_ bytes: [UInt8], from source: STUNAddress, toBase base: STUNAddress, now: Duration) -> ICEDatagramOutcome {
        guard !state.isFailed else { return drop(.ignored("the agent has failed")) }
        guard STUN.looksLikeSTUN(bytes) else { return drop(.notSTUN) }
        let message: STUNMessage
        do {
            message = try STUNMessage.decode(bytes)
        } catch {
            return drop(.malformedSTUN(error))
        }
        let outcome: ICEDatagramOutcome
        switch message.messageClass {
        case .request:
            outcome = handleRequest(message, raw: bytes, from: source, toBase: base, now: now)
        case .successResponse, .errorResponse:
            outcome = handleResponse(message, raw: bytes, from: source, toBase: base, now: now)
        case .indication:
            // RFC 8445 §11: Binding indications are keepalives; nothing to do.
            outcome = .handled
        }
        checkForFailure(now: now)
        refreshState(now: now)
        return outcome
    }

    /// RFC 8445 §7.3: a Binding request from the peer.
    mutating func handleRequest(_ request: STUNMessage, raw: [UInt8], from source: STUNAddress, toBase base: STUNAddress, now: Duration) -> ICEDatagramOutcome {
        statistics.requestsReceived += 1
        guard request.method == .binding else { return drop(.ignored("request method \(request.method)")) }
        // RFC 8445 §7.2.2 makes FINGERPRINT mandatory in checks; on a socket
        // shared with DTLS it is what says "this is STUN" (RFC 7983).
        do {
            try STUNMessage.checkFingerprint(of: raw)
        } catch {
            return drop(.malformedSTUN(error))
        }
        guard let localIndex = locals.firstIndex(where: {
            ($0.candidate.type == .host || $0.candidate.type == .relayed) && $0.candidate.address == base
        }) else {
            return drop(.unknownBase(base))
        }

        // RFC 8489 §9.1.3: USERNAME and MESSAGE-INTEGRITY are required (400);
        // RFC 8445 §7.3: USERNAME is "<our ufrag>:<their ufrag>" and the
        // integrity key is our password (401 otherwise).
        guard let username = request.username, request.messageIntegrity != nil else {
            unauthenticatedRequests += 1
            reply(to: request, error: .badRequest, from: base, to: source, signed: false)
            return drop(.unauthenticated("request without USERNAME or MESSAGE-INTEGRITY"))
        }
        let parts = username.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let ufragMatches = parts.count == 2 && parts[0] == configuration.localCredentials.ufrag
            && (remoteUfrag == nil || parts[1] == remoteUfrag ?? "")
        do {
            guard ufragMatches else { throw STUNError.integrityMismatch }
            try STUNMessage.checkIntegrity(of: raw, key: localKey)
        } catch {
            unauthenticatedRequests += 1
            reply(to: request, error: .unauthenticated, from: base, to: source, signed: false)
            return drop(.unauthenticated(ufragMatches ? "bad MESSAGE-INTEGRITY" : "USERNAME does not name our ufrag"))
        }

        // RFC 8489 §6.3.1.1: unknown comprehension-required attributes: 420.
        let unknown = request.unknownComprehensionRequired
        guard unknown.isEmpty else {
            reply(to: request, error: .unknownAttribute, extra: [.unknownAttributes(unknown)], from: base, to: source, signed: true)
            return .handled
        }
        // RFC 8445 §7.1.1: every check carries PRIORITY.
        guard let priority = request.priority, priority > 0 else {
            reply(to: request, error: .badRequest, from: base, to: source, signed: true)
            return .handled
        }

        // RFC 8445 §7.3.1.1: role conflicts, settled by the tie-breakers.
        switch role {
        case .controlling:
            if let theirs = request.iceControlling {
                statistics.roleConflicts += 1
                if configuration.tieBreaker >= theirs {
                    reply(to: request, error: .roleConflict, from: base, to: source, signed: true)
                    return .handled
                }
                switchRole(to: .controlled, now: now)
            }
        case .controlled:
            if let theirs = request.iceControlled {
                statistics.roleConflicts += 1
                if configuration.tieBreaker >= theirs {
                    switchRole(to: .controlling, now: now)
                } else {
                    reply(to: request, error: .roleConflict, from: base, to: source, signed: true)
                    return .handled
                }
            }
        }

        // RFC 8445 §7.3.1.2: success, with the source as XOR-MAPPED-ADDRESS,
        // signed with our password, from the base the request reached.
        let response = STUNMessage(.successResponse, .binding, transactionID: request.transactionID, attributes: [.xorMappedAddress(source)])
        if let bytes = try? response.encode(integrity: localKey, fingerprint: true) {
            outbox.push(ICETransmit(bytes: bytes, from: base, to: source))
        }

        // RFC 8445 §7.3.1.3: an unknown source is a peer-reflexive remote
        // candidate with the request's PRIORITY and a new foundation. It is
        // paired only through the triggered check below.
        var remoteIndex = remotes.firstIndex { $0.address == source }
        if remoteIndex == nil, remotes.count < configuration.maximumRemoteCandidates {
            var foundation: String
            repeat {
                foundation = "prflx\(nextPeerReflexiveFoundation)"
                nextPeerReflexiveFoundation += 1
            } while remotes.contains { $0.foundation == foundation }
            remotes.append(ICECandidate(foundation: foundation, priority: priority, address: source, type: .peerReflexive))
            remoteIndex = remotes.count - 1
            if lastProgress != nil { lastProgress = now }
        }
        guard let remoteIndex, let pairIndex = addPair(local: localIndex, remote: remoteIndex, now: now) else { return .handled }

        // RFC 8445 §7.3.1.4: a triggered check on the pair, unless checks are
        // over (after selection only nominations still need one).
        let nominated = role == .controlled && request.useCandidate
        if let v = pairs[pairIndex].valid, valid[v].lost, pairs[pairIndex].state == .succeeded {
            // A check arrived on a pair that had stopped answering: check it again.
            pairs[pairIndex].state = .waiting
        }
        if checksContinue || nominated {
            trigger(pairIndex)
        }
        // RFC 8445 §7.3.1.5: USE-CANDIDATE on the controlled side.
        if nominated {
            if pairs[pairIndex].state == .succeeded, let v = pairs[pairIndex].valid {
                valid[v].nominated = true
                select(valid: v, now: now)
            } else {
                pairs[pairIndex].nominateOnSuccess = true
            }
        }
        return .handled
    }

    /// An error response to `request` (RFC 8489 §6.3.1.1), signed when the
    /// request was authenticated (RFC 8489 §9.1.3), with FINGERPRINT.
    mutating func reply(
        to request: STUNMessage, error: STUNErrorCode, extra: [STUNAttribute] = [],
        from base: STUNAddress, to destination: STUNAddress, signed: Bool
    ) {
        let response = STUNMessage(.errorResponse, request.method, transactionID: request.transactionID, attributes: [.errorCode(error)] + extra)
        if let bytes = try? response.encode(integrity: signed ? localKey : nil, fingerprint: true) {
            outbox.push(ICETransmit(bytes: bytes, from: base, to: destination))
        }
    }

    // MARK: - Timers

    /// Runs everything due at `now`: retransmissions and timeouts, the next
    /// paced transaction, nomination, consent, the failure timer. Idempotent
    /// for a given `now`; `pollTransmit(now:)` calls it.
    public mutating func advanceTime(now: Duration) {
        guard !state.isFailed else { return }
        var expired: [InFlight] = []
        var index = 0
        while index < inFlight.count {
            switch inFlight[index].transaction.poll(now: now) {
            case .transmit:
                if !inFlight[index].cancelled {
                    let flight = inFlight[index]
                    outbox.push(ICETransmit(bytes: flight.bytes, from: flight.from, to: flight.to))
                    statistics.retransmissions += 1
                }
                index += 1
            case .wait:
                index += 1
            case .timedOut, .completed:
                expired.append(inFlight.remove(at: index))
            }
        }
        for flight in expired where !flight.cancelled {
            switch flight.purpose {
            case .check(let pair, _, _, _):
                // RFC 8445 §7.2.5.2.3: the transaction timed out: the pair fails.
                pairFailed(pair, .timedOut)
            case .gather(let server):
                events.push(.gatheringFailed(.gatheringFailed(server: server, reason: "no answer")))
                if !isGathering { events.push(.gatheringComplete) }
            case .consent(let index):
                // Expiry of the selected pair is decided by the time of its
                // last answer; a backup pair that did not answer is lost.
                if index != selected, valid.indices.contains(index), (valid[index].lastAnswer ?? .zero) < flight.startedAt {
                    valid[index].lost = true
                }
            }
        }
        runPacer(now: now)
        evaluateNomination(now: now)
        runConsent(now: now)
        checkForFailure(now: now)
        refreshState(now: now)
    }

    /// The earliest time at which `advanceTime` has something to do; nil when idle.
    public var nextDeadline: Duration? {
        guard !state.isFailed else { return nil }
        var deadline: Duration?
        func consider(_ time: Duration?) {
            guard let time else { return }
            deadline = min(deadline ?? time, time)
        }
        for flight in inFlight { consider(flight.transaction.deadline) }
        if hasPacedWork { consider(nextPacingSlot) }
        consider(nextHoldEnd)
        consider(nominationDeadline)
        if let consent, selected != nil {
            consider(consent.nextCheck)
            consider(consent.lastResponse + configuration.consentTimeout)
            if !consent.disconnected { consider(consent.lastResponse + configuration.disconnectedTimeout) }
            consider(consent.nextBackupCheck)
            consider(failoverDeadline)
            consider(backupProbeDeadline)
        }
        if selected == nil, let lastProgress { consider(lastProgress + configuration.failureTimeout) }
        return deadline
    }

    // MARK: - Consent freshness (RFC 7675)

    mutating func runConsent(now: Duration) {
        guard selected != nil, remoteKey != nil else { return }
        runFailover(now: now)
        guard let selected, var consent else { return }
        let silence = now - consent.lastResponse
        // RFC 7675 §5.1: consent expires 30 s after the last response; §5.2:
        // stop sending at once.
        if silence >= configuration.consentTimeout {
            let pair = publicPair(valid: selected)
            cancelEverything()
            events.push(.consentLost(pair))
            enter(.failed(.consentLost(silentFor: silence)))
            return
        }
        if now >= consent.nextCheck {
            // RFC 7675 §5.1: an authenticated Binding request with a fresh
            // transaction id, every 4-6 s (5 s randomized by 0.8-1.2).
            consent.nextCheck = now + random.jittered(checkInterval)
            sendConsentCheck(valid: selected, now: now)
        }
        if let next = consent.nextBackupCheck, now >= next {
            // Keep the best other valid pair alive: one check every consent interval.
            consent.nextBackupCheck = now + random.jittered(configuration.consentInterval)
            if let backup = backupToCheck { sendConsentCheck(valid: backup, now: now) }
        }
        if !consent.disconnected, silence >= configuration.disconnectedTimeout {
            consent.disconnected = true
        }
        self.consent = consent
    }

    mutating func sendConsentCheck(valid index: Int, now: Duration) {
        guard let remoteKey else { return }
        let entry = valid[index]
        let local = locals[entry.local]
        let (attributes, _) = checkAttributes(localPreference: local.localPreference)
        let id = STUNTransactionID.random(using: &random)
        let request = STUNMessage(.request, .binding, transactionID: id, attributes: attributes)
        guard let bytes = try? request.encode(integrity: remoteKey, fingerprint: true) else { return }
        statistics.consentChecksSent += 1
        start(InFlight(
            id: id, transaction: STUNTransaction(now: now, configuration: configuration.consentRetransmission),
            bytes: bytes, from: local.base, to: remotes[entry.remote].address, purpose: .consent(valid: index)
        ), now: now)
    }

    // MARK: - Failure and state

    /// Fails the checks when no pair was selected `failureTimeout` after the
    /// last progress, or at once when the peer has sent all its candidates,
    /// no gathering is left and every pair has failed (RFC 8445 §6.1.2.1, RFC 8838 §8).
    mutating func checkForFailure(now: Duration) {
        guard selected == nil, !state.isFailed, let lastProgress else { return }
        let active = pairs.filter { !$0.retired }
        let allFailed = hasAllRemoteCandidates && !isGathering && !active.isEmpty
            && active.allSatisfy { $0.state == .failed } && !inFlight.contains { if case .check = $0.purpose { true } else { false } }
        guard allFailed || now >= lastProgress + configuration.failureTimeout else { return }
        let report = failureReport()
        cancelEverything()
        enter(.failed(.connectivityFailed(report)))
    }

    /// What was tried, for the failure reason.
    public func failureReport() -> ICEFailureReport {
        var tried: [String] = []
        for pair in pairs where pair.checked {
            let name = "\(locals[pair.local].candidate.type.rawValue)→\(remotes[pair.remote].type.rawValue)"
            if !tried.contains(name) { tried.append(name) }
        }
        var rejected: [Int] = []
        for pair in pairs {
            if case .rejected(let code) = pair.failure, !rejected.contains(code) { rejected.append(code) }
        }
        let localTypes = Set(locals.map(\.candidate.type)).sorted()
        let remoteTypes = Set(remotes.map(\.type)).sorted()
        return ICEFailureReport(
            localTypes: localTypes,
            remoteTypes: remoteTypes,
            triedPairs: tried,
            timedOut: pairs.filter { $0.failure == .timedOut }.count,
            rejectedWith: rejected,
            unauthenticatedResponses: unauthenticatedResponses,
            unauthenticatedRequests: unauthenticatedRequests,
            remoteCredentialsKnown: remoteKey != nil,
            awaitingNomination: role == .controlled && !valid.isEmpty,
            relayTried: localTypes.contains(.relayed) || remoteTypes.contains(.relayed)
        )
    }

    mutating func cancelEverything() {
        inFlight.removeAll()
        triggered.removeAll()
        pendingGatherings.removeAll()
        nominating = nil
    }

    /// Recomputes the reported state from the agent's facts and emits
    /// `.stateChanged` when it differs.
    mutating func refreshState(now: Duration) {
        guard !state.isFailed else { return }
        let next: ICEState
        if selected != nil {
            if consent?.disconnected == true {
                next = .disconnected
            } else if hasAllRemoteCandidates, !isGathering {
                next = .completed
            } else {
                next = .connected
            }
        } else if remoteKey != nil || previousPath != nil {
            next = .checking
        } else {
            next = .new
        }
        enter(next)
    }

    mutating func enter(_ next: ICEState) {
        guard next != state else { return }
        state = next
        events.push(.stateChanged(next))
    }
}
