import TernTestSupport
import Testing
import TernICE
import TernSTUN

// The agent fed by hand, message by message: what it answers, what it sends
// and when, and what it refuses.

let localHost = STUNAddress.ipv4(192, 168, 1, 10, port: 5000)
let peerHost = STUNAddress.ipv4(192, 168, 1, 20, port: 6000)
let peerCredentials = (ufrag: "PEER", password: "peerpasswordpeerpassword")

func makeAgent(role: ICERole = .controlled, tieBreaker: UInt64 = 1000, configure: (inout ICEConfiguration) -> Void = { _ in }) throws -> ICEAgent {
    var configuration = ICEConfiguration(
        role: role,
        localCredentials: try ICECredentials(ufrag: "LOCL", password: "localpasswordlocalpassword"),
        tieBreaker: tieBreaker,
        randomness: .seeded(42)
    )
    configure(&configuration)
    var agent = try ICEAgent(configuration: configuration)
    try agent.addHostCandidate(localHost, now: .zero)
    return agent
}

/// A connectivity check as the peer would send it to `agent`.
func peerCheck(
    to agent: ICEAgent, attributes extra: [STUNAttribute] = [.iceControlling(5)], priority: UInt32 = 1_862_270_975,
    username: String? = nil, password: String? = nil, fingerprint: Bool = true, id: STUNTransactionID = STUNTransactionID(high: 1, low: 2)
) throws -> [UInt8] {
    let local = agent.configuration.localCredentials
    let attributes: [STUNAttribute] = [.username(username ?? "\(local.ufrag):\(peerCredentials.ufrag)"), .priority(priority)] + extra
    return try STUNMessage(.request, .binding, transactionID: id, attributes: attributes)
        .encode(integrity: STUNKey.shortTerm(password: password ?? local.password), fingerprint: fingerprint)
}

/// The peer's answer to a request the agent sent.
func peerAnswer(to transmit: ICETransmit, error: STUNErrorCode? = nil, mapped: STUNAddress? = nil, password: String = peerCredentials.password) throws -> [UInt8] {
    let request = try STUNMessage.decode(transmit.bytes)
    let attributes: [STUNAttribute] = error.map { [.errorCode($0)] } ?? [.xorMappedAddress(mapped ?? transmit.from)]
    return try STUNMessage(error == nil ? .successResponse : .errorResponse, .binding, transactionID: request.transactionID, attributes: attributes)
        .encode(integrity: STUNKey.shortTerm(password: password), fingerprint: true)
}

extension ICEAgent {
    mutating func drainTransmits(now: Duration) -> [ICETransmit] {
        var out: [ICETransmit] = []
        while let transmit = pollTransmit(now: now) { out.append(transmit) }
        return out
    }

    mutating func requireTransmit(now: Duration, sourceLocation: SourceLocation = #_sourceLocation) throws -> ICETransmit {
        let transmit = pollTransmit(now: now)
        return try #require(transmit, sourceLocation: sourceLocation)
    }

    mutating func drainEvents() -> [ICEEvent] {
        var out: [ICEEvent] = []
        while let event = pollEvent() { out.append(event) }
        return out
    }
}

@Suite("ICE agent, message by message")
struct AgentTests {
    @Test func answersAnAuthenticatedCheckAndLearnsAPeerReflexiveCandidate() throws {
        var agent = try makeAgent()
        #expect(agent.handleDatagram(try peerCheck(to: agent, priority: 12345), from: peerHost, toBase: localHost, now: .zero) == .handled)
        let out = agent.drainTransmits(now: .zero)
        // No remote credentials yet: the answer only, no triggered check (RFC 8445 §7.2.2 needs the password).
        #expect(out.count == 1)
        let answer = try #require(out.first)
        #expect(answer.from == localHost && answer.to == peerHost)
        let response = try STUNMessage.decode(answer.bytes)
        #expect(response.messageClass == .successResponse)
        #expect(response.transactionID == STUNTransactionID(high: 1, low: 2))
        // RFC 8445 §7.3.1.2: XOR-MAPPED-ADDRESS is the source; signed with our password; FINGERPRINT.
        #expect(response.xorMappedAddress == peerHost)
        try STUNMessage.checkIntegrity(of: answer.bytes, key: STUNKey.shortTerm(password: "localpasswordlocalpassword"))
        try STUNMessage.checkFingerprint(of: answer.bytes)
        // RFC 8445 §7.3.1.3: a peer-reflexive remote candidate with the request's PRIORITY.
        #expect(agent.remoteCandidates.map(\.type) == [.peerReflexive])
        #expect(agent.remoteCandidates.first?.priority == 12345)
        #expect(agent.remoteCandidates.first?.address == peerHost)

        // Once the credentials arrive, the triggered check goes out at once.
        try agent.setRemoteCredentials(ufrag: peerCredentials.ufrag, password: peerCredentials.password, now: .milliseconds(10))
        let checks = agent.drainTransmits(now: .milliseconds(10))
        #expect(checks.count == 1)
        #expect(checks.first?.to == peerHost)
    }

    @Test func aPeerReflexiveRemoteTakesTheTypeSignalledLaterForItsAddress() throws {
        var agent = try makeAgent()
        #expect(agent.handleDatagram(try peerCheck(to: agent, priority: 12345), from: peerHost, toBase: localHost, now: .zero) == .handled)
        #expect(agent.remoteCandidates.map(\.type) == [.peerReflexive])
        // The check beat the candidate; the candidate then arrives by signalling.
        try agent.addRemoteCandidate(ICECandidate(foundation: "9", priority: 2_130_706_431, address: peerHost, type: .host), now: .milliseconds(5))
        #expect(agent.remoteCandidates.map(\.type) == [.host])
        #expect(agent.remoteCandidates.first?.priority == 2_130_706_431)
    }

    @Test func refusesChecksWithBadCredentials() throws {
        var agent = try makeAgent()
        let cases: [(bytes: [UInt8], code: Int)] = [
            (try peerCheck(to: agent, password: "wrongpasswordwrongpassword"), 401),
            (try peerCheck(to: agent, username: "OTHER:PEER"), 401),
            (try STUNMessage(.request, .binding, transactionID: STUNTransactionID(high: 3, low: 4), attributes: [.priority(1)])
                .encode(fingerprint: true), 400),
        ]
        for (bytes, code) in cases {
            guard case .dropped(.unauthenticated) = agent.handleDatagram(bytes, from: peerHost, toBase: localHost, now: .zero) else {
                Issue.record("expected an unauthenticated drop")
                continue
            }
            let answer = try agent.requireTransmit(now: .zero)
            let response = try STUNMessage.decode(answer.bytes)
            #expect(response.errorCode?.code == code)
            // RFC 8489 §9.1.3: no MESSAGE-INTEGRITY in these answers.
            #expect(response.messageIntegrity == nil)
        }
        #expect(agent.remoteCandidates.isEmpty, "nothing learned from unauthenticated requests")

        // No FINGERPRINT: not ICE, dropped without an answer.
        let bare = try peerCheck(to: agent, fingerprint: false)
        #expect(agent.handleDatagram(bare, from: peerHost, toBase: localHost, now: .zero) == .dropped(.malformedSTUN(.fingerprintMissing)))
        #expect(agent.pollTransmit(now: .zero) == nil)
        // A base the agent does not have.
        let elsewhere = STUNAddress.ipv4(10, 9, 9, 9, port: 1)
        #expect(agent.handleDatagram(try peerCheck(to: agent), from: peerHost, toBase: elsewhere, now: .zero) == .dropped(.unknownBase(elsewhere)))
        #expect(agent.statistics.dropped == 5)
    }

    @Test func checksAreSignedWithTheRemotePasswordAndCarryRoleAndPriority() throws {
        var agent = try makeAgent(role: .controlling, tieBreaker: 777)
        try agent.setRemoteCredentials(ufrag: peerCredentials.ufrag, password: peerCredentials.password, now: .zero)
        try agent.addRemoteCandidate(ICECandidate(foundation: "9", priority: 2_130_706_431, address: peerHost, type: .host), now: .zero)
        let check = try agent.requireTransmit(now: .zero)
        #expect(check.from == localHost && check.to == peerHost)
        let request = try STUNMessage.decode(check.bytes)
        // RFC 8445 §7.2.2: USERNAME "remote:local", PRIORITY as peer-reflexive, ICE-CONTROLLING.
        #expect(request.username == "PEER:LOCL")
        #expect(request.priority == ICECandidate.priority(type: .peerReflexive, localPreference: 65534))
        #expect(request.iceControlling == 777)
        #expect(request.iceControlled == nil)
        #expect(!request.useCandidate)
        try STUNMessage.checkIntegrity(of: check.bytes, key: STUNKey.shortTerm(password: peerCredentials.password))
        try STUNMessage.checkFingerprint(of: check.bytes)
        #expect(agent.checklist.first?.state == .inProgress)
    }

    @Test func ordinaryChecksArePacedByTa() throws {
        var agent = try makeAgent(role: .controlling) { $0.pacing = .milliseconds(20) }
        try agent.setRemoteCredentials(ufrag: peerCredentials.ufrag, password: peerCredentials.password, now: .zero)
        for i in 0..<4 {
            try agent.addRemoteCandidate(
                ICECandidate(foundation: "f\(i)", priority: 2_000_000_000 - UInt32(i), address: .ipv4(192, 168, 1, 30 + UInt8(i), port: 7000), type: .host),
                now: .zero
            )
        }
        var sent: [(Duration, STUNAddress)] = []
        var now = Duration.zero
        while now < .milliseconds(200), let deadline = agent.nextDeadline {
            now = max(now, deadline)
            for transmit in agent.drainTransmits(now: now) { sent.append((now, transmit.to)) }
        }
        // One new check per Ta, highest priority first (RFC 8445 §6.1.4.2, §14.2).
        #expect(sent.prefix(4).map(\.0) == [0, 20, 40, 60].map { Duration.milliseconds($0) })
        #expect(sent.prefix(4).map(\.1.family) == (0..<4).map { STUNAddress.ipv4(192, 168, 1, 30 + UInt8($0), port: 0).family })
    }

    @Test func controllingAgentNominatesAfterASuccessAndSelects() throws {
        var agent = try makeAgent(role: .controlling)
        try agent.setRemoteCredentials(ufrag: peerCredentials.ufrag, password: peerCredentials.password, now: .zero)
        try agent.addRemoteCandidate(ICECandidate(foundation: "9", priority: 2_130_706_431, address: peerHost, type: .host), now: .zero)
        let check = try agent.requireTransmit(now: .zero)
        agent.handleDatagram(try peerAnswer(to: check), from: peerHost, toBase: localHost, now: .milliseconds(5))
        #expect(agent.validPairs.count == 1)
        // The only pair succeeded, nothing better is pending: nominate at the next Ta slot.
        #expect(agent.pollTransmit(now: .milliseconds(5)) == nil)
        let nomination = try agent.requireTransmit(now: .milliseconds(50))
        #expect(try STUNMessage.decode(nomination.bytes).useCandidate)
        _ = agent.drainEvents()
        agent.handleDatagram(try peerAnswer(to: nomination), from: peerHost, toBase: localHost, now: .milliseconds(55))
        let events = agent.drainEvents()
        #expect(events.contains(.selectedPair(try #require(agent.selectedPair))))
        #expect(events.contains(.stateChanged(.connected)))
        #expect(agent.selectedPair?.local.address == localHost)
        agent.remoteCandidatesComplete(now: .milliseconds(60))
        #expect(agent.state == .completed)
    }

    @Test(arguments: [true, false])
    func nominationWaitsForABetterPairStillBeingChecked(betterAnswers: Bool) throws {
        var agent = try makeAgent(role: .controlling)
        try agent.setRemoteCredentials(ufrag: peerCredentials.ufrag, password: peerCredentials.password, now: .zero)
        let relay = STUNAddress.ipv4(198, 51, 100, 50, port: 50000)
        try agent.addRemoteCandidate(ICECandidate(foundation: "h", priority: 2_130_706_431, address: peerHost, type: .host), now: .zero)
        try agent.addRemoteCandidate(ICECandidate(foundation: "r", priority: 16_777_215, address: relay, type: .relayed), now: .zero)
        let hostCheck = try agent.requireTransmit(now: .zero)
        let relayCheck = try agent.requireTransmit(now: .milliseconds(50))
        #expect(hostCheck.to == peerHost && relayCheck.to == relay)
        // The relay path answers first: a valid pair, but a better one is still in progress.
        agent.handleDatagram(try peerAnswer(to: relayCheck), from: relay, toBase: localHost, now: .milliseconds(60))
        #expect(agent.drainTransmits(now: .milliseconds(100)).isEmpty, "no nomination of the relay path yet")
        var nomination: (time: Duration, transmit: ICETransmit)?
        if betterAnswers {
            agent.handleDatagram(try peerAnswer(to: hostCheck), from: peerHost, toBase: localHost, now: .milliseconds(120))
        }
        var now = Duration.milliseconds(120)
        while nomination == nil, now < .seconds(3), let deadline = agent.nextDeadline {
            now = max(now, deadline)
            for transmit in agent.drainTransmits(now: now) where try STUNMessage.decode(transmit.bytes).useCandidate {
                nomination = (now, transmit)
            }
        }
        let nominated = try #require(nomination)
        if betterAnswers {
            // RFC 8445 §8.1.1: the best valid pair, as soon as nothing better is pending.
            #expect(nominated.transmit.to == peerHost)
            #expect(nominated.time == .milliseconds(120))
        } else {
            // Nothing better came: the relay path, `nominationDelay` after the first valid pair.
            #expect(nominated.transmit.to == relay)
            #expect(nominated.time == .milliseconds(1060))
        }
    }

    @Test func answerWithAnUnknownMappedAddressMakesAPeerReflexiveLocalCandidate() throws {
        var agent = try makeAgent(role: .controlling)
        try agent.setRemoteCredentials(ufrag: peerCredentials.ufrag, password: peerCredentials.password, now: .zero)
        try agent.addRemoteCandidate(ICECandidate(foundation: "9", priority: 2_130_706_431, address: peerHost, type: .host), now: .zero)
        let check = try agent.requireTransmit(now: .zero)
        let mapped = STUNAddress.ipv4(203, 0, 113, 5, port: 41000)
        agent.handleDatagram(try peerAnswer(to: check, mapped: mapped), from: peerHost, toBase: localHost, now: .milliseconds(5))
        let local = try #require(agent.localCandidates.last)
        // RFC 8445 §7.2.5.3.1: type prflx, the PRIORITY of the request, the pair's base.
        #expect(local.type == .peerReflexive && local.address == mapped)
        #expect(local.priority == (try STUNMessage.decode(check.bytes).priority))
        #expect(agent.validPairs.first?.local == local)
        #expect(agent.validPairs.first?.localBase == localHost)
        // Not trickled.
        #expect(!agent.drainEvents().contains(.localCandidate(local)))
    }

    @Test func responsesMustBeAuthenticatedAndSymmetric() throws {
        var agent = try makeAgent(role: .controlling)
        try agent.setRemoteCredentials(ufrag: peerCredentials.ufrag, password: peerCredentials.password, now: .zero)
        try agent.addRemoteCandidate(ICECandidate(foundation: "9", priority: 2_130_706_431, address: peerHost, type: .host), now: .zero)
        let check = try agent.requireTransmit(now: .zero)
        // Signed with the wrong password: dropped as if it never came (RFC 8489 §9.1.4).
        let forged = try peerAnswer(to: check, password: "notthepeerpasswordatall")
        guard case .dropped(.unauthenticated) = agent.handleDatagram(forged, from: peerHost, toBase: localHost, now: .milliseconds(1)) else {
            Issue.record("forged answer accepted")
            return
        }
        #expect(agent.checklist.first?.state == .inProgress)
        // From another address: RFC 8445 §7.2.5.2.1 fails the pair.
        let answer = try peerAnswer(to: check)
        agent.handleDatagram(answer, from: .ipv4(192, 168, 1, 99, port: 6000), toBase: localHost, now: .milliseconds(2))
        #expect(agent.checklist.first?.state == .failed)
        #expect(agent.validPairs.isEmpty)
        // Its duplicate no longer matches a transaction.
        #expect(agent.handleDatagram(answer, from: peerHost, toBase: localHost, now: .milliseconds(3)) == .dropped(.unknownTransaction))
    }

    @Test func roleConflictOnARequest() throws {
        // RFC 8445 §7.3.1.1: controlling with the larger tie-breaker answers 487...
        var winner = try makeAgent(role: .controlling, tieBreaker: 100)
        winner.handleDatagram(try peerCheck(to: winner, attributes: [.iceControlling(99)]), from: peerHost, toBase: localHost, now: .zero)
        let answer = try STUNMessage.decode(try winner.requireTransmit(now: .zero).bytes)
        #expect(answer.errorCode?.code == 487)
        #expect(answer.messageIntegrity != nil)
        #expect(winner.role == .controlling)
        // ...with the smaller one it becomes controlled and answers success.
        var loser = try makeAgent(role: .controlling, tieBreaker: 98)
        loser.handleDatagram(try peerCheck(to: loser, attributes: [.iceControlling(99)]), from: peerHost, toBase: localHost, now: .zero)
        #expect(try STUNMessage.decode(try loser.requireTransmit(now: .zero).bytes).messageClass == .successResponse)
        #expect(loser.role == .controlled)
        #expect(loser.drainEvents().contains(.roleChanged(.controlled)))
        // Controlled meeting ICE-CONTROLLED: the larger tie-breaker becomes controlling.
        var controlled = try makeAgent(role: .controlled, tieBreaker: 100)
        controlled.handleDatagram(try peerCheck(to: controlled, attributes: [.iceControlled(99)]), from: peerHost, toBase: localHost, now: .zero)
        #expect(controlled.role == .controlling)
        var smaller = try makeAgent(role: .controlled, tieBreaker: 1)
        smaller.handleDatagram(try peerCheck(to: smaller, attributes: [.iceControlled(99)]), from: peerHost, toBase: localHost, now: .zero)
        #expect(try STUNMessage.decode(try smaller.requireTransmit(now: .zero).bytes).errorCode?.code == 487)
        #expect(smaller.role == .controlled)
    }

    @Test func roleConflictAnswerSwitchesRoleAndRetriesThePair() throws {
        var agent = try makeAgent(role: .controlling)
        try agent.setRemoteCredentials(ufrag: peerCredentials.ufrag, password: peerCredentials.password, now: .zero)
        try agent.addRemoteCandidate(ICECandidate(foundation: "9", priority: 2_130_706_431, address: peerHost, type: .host), now: .zero)
        let check = try agent.requireTransmit(now: .zero)
        agent.handleDatagram(try peerAnswer(to: check, error: .roleConflict), from: peerHost, toBase: localHost, now: .milliseconds(5))
        // RFC 8445 §7.2.5.1: switch to controlled, check the pair again.
        #expect(agent.role == .controlled)
        let retry = try agent.requireTransmit(now: .milliseconds(50))
        let request = try STUNMessage.decode(retry.bytes)
        #expect(request.iceControlled != nil && request.iceControlling == nil)
    }

    @Test func controlledAgentSelectsTheNominatedPair() throws {
        var agent = try makeAgent(role: .controlled)
        try agent.setRemoteCredentials(ufrag: peerCredentials.ufrag, password: peerCredentials.password, now: .zero)
        // USE-CANDIDATE before our own check succeeded: remembered (RFC 8445 §7.3.1.5).
        agent.handleDatagram(try peerCheck(to: agent, attributes: [.iceControlling(5), .useCandidate]), from: peerHost, toBase: localHost, now: .zero)
        let out = agent.drainTransmits(now: .zero)
        #expect(out.count == 2, "the answer and the triggered check")
        #expect(agent.selectedPair == nil)
        let triggered = try #require(out.last)
        agent.handleDatagram(try peerAnswer(to: triggered), from: peerHost, toBase: localHost, now: .milliseconds(5))
        #expect(agent.selectedPair?.remote.address == peerHost)
        #expect(agent.state == .connected)
    }

    @Test func gathersAServerReflexiveCandidate() throws {
        var agent = try makeAgent()
        let server = STUNAddress.ipv4(198, 51, 100, 1, port: 3478)
        let mapped = STUNAddress.ipv4(203, 0, 113, 7, port: 40001)
        _ = agent.drainEvents()
        try agent.gatherServerReflexive(from: server, base: localHost, now: .zero)
        #expect(agent.isGathering)
        let request = try agent.requireTransmit(now: .zero)
        #expect(request.from == localHost && request.to == server)
        let answer = try #require(STUNBindingResponder.respond(to: request.bytes, from: mapped))
        // An answer from elsewhere is ignored.
        guard case .dropped = agent.handleDatagram(answer, from: .ipv4(6, 6, 6, 6, port: 3478), toBase: localHost, now: .milliseconds(30)) else {
            Issue.record("answer from a stranger accepted")
            return
        }
        agent.handleDatagram(answer, from: server, toBase: localHost, now: .milliseconds(30))
        let events = agent.drainEvents()
        let srflx = ICECandidate(
            foundation: "2", priority: ICECandidate.priority(type: .serverReflexive, localPreference: 65534),
            address: mapped, type: .serverReflexive, relatedAddress: localHost
        )
        #expect(events == [.localCandidate(srflx), .gatheringComplete])
        #expect(!agent.isGathering)

        // RFC 8445 §5.1.3: a reflexive address equal to the base is redundant.
        var open = try makeAgent()
        _ = open.drainEvents()
        try open.gatherServerReflexive(from: server, base: localHost, now: .zero)
        let request2 = try open.requireTransmit(now: .zero)
        open.handleDatagram(try #require(STUNBindingResponder.respond(to: request2.bytes, from: localHost)), from: server, toBase: localHost, now: .milliseconds(1))
        #expect(open.drainEvents() == [.gatheringComplete])
    }

    @Test func gatheringFromADeadServerFails() throws {
        var agent = try makeAgent()
        _ = agent.drainEvents()
        try agent.gatherServerReflexive(from: .ipv4(198, 51, 100, 1, port: 3478), base: localHost, now: .zero)
        var now = Duration.zero
        var requests = 0
        while let deadline = agent.nextDeadline, now < .seconds(60) {
            now = deadline
            requests += agent.drainTransmits(now: now).count
        }
        #expect(requests == 5)
        #expect(now == .milliseconds(9500))
        let events = agent.drainEvents()
        #expect(events.count == 2)
        #expect(events.last == .gatheringComplete)
        #expect(throws: ICEError.unknownBase(peerHost)) { try agent.gatherServerReflexive(from: .ipv4(1, 1, 1, 1, port: 1), base: peerHost, now: now) }
    }

    @Test func localPreferencesAreUniquePerBaseAndFamily() throws {
        var agent = try makeAgent()
        let v6a = STUNAddress(family: .ipv6(0x2001_0db8_0000_0000, 1), port: 5000)
        let v6b = STUNAddress(family: .ipv6(0x2001_0db8_0000_0000, 2), port: 5000)
        let second4 = STUNAddress.ipv4(10, 0, 0, 2, port: 5000)
        let hosts = [
            try agent.addHostCandidate(v6a, now: .zero),
            try agent.addHostCandidate(v6b, now: .zero),
            try agent.addHostCandidate(second4, now: .zero),
        ]
        let relay = try agent.addRelayedCandidate(.ipv4(198, 51, 100, 50, port: 50000), mappedAddress: nil, server: .ipv4(198, 51, 100, 50, port: 3478), now: .zero)
        let priorities = agent.localCandidates.map(\.priority)
        #expect(Set(priorities).count == priorities.count)
        // IPv6 first (RFC 8421), then interleaved with IPv4.
        #expect(hosts[0].priority == ICECandidate.priority(type: .host, localPreference: 65535))
        #expect(agent.localCandidates[0].priority == ICECandidate.priority(type: .host, localPreference: 65534))
        #expect(hosts[1].priority == ICECandidate.priority(type: .host, localPreference: 65533))
        #expect(hosts[2].priority == ICECandidate.priority(type: .host, localPreference: 65532))
        #expect(relay.type == .relayed && relay.priority < 1 << 24)
        // RFC 8445 §5.1.1.3: different bases, different foundations; the same host again is not added.
        #expect(Set(agent.localCandidates.map(\.foundation)).count == 5)
        #expect(try agent.addHostCandidate(v6a, now: .zero) == hosts[0])
        #expect(agent.localCandidates.count == 5)
    }

    @Test func pairsOnlyMatchingFamiliesAndPrunesServerReflexiveLocals() throws {
        var agent = try makeAgent(role: .controlling)
        let v6 = STUNAddress(family: .ipv6(0x2001_0db8_0000_0000, 1), port: 5000)
        let linkLocal = STUNAddress(family: .ipv6(0xfe80_0000_0000_0000, 1), port: 5000)
        try agent.addHostCandidate(v6, now: .zero)
        try agent.addServerReflexiveCandidate(.ipv4(203, 0, 113, 1, port: 4000), base: localHost, server: .ipv4(198, 51, 100, 1, port: 3478), now: .zero)
        try agent.addRemoteCandidate(ICECandidate(foundation: "a", priority: 100, address: peerHost, type: .host), now: .zero)
        try agent.addRemoteCandidate(ICECandidate(foundation: "b", priority: 100, address: STUNAddress(family: .ipv6(0x2001_0db8_0000_0000, 9), port: 1), type: .host), now: .zero)
        try agent.addRemoteCandidate(ICECandidate(foundation: "c", priority: 100, address: linkLocal, type: .host), now: .zero)
        let pairs = agent.checklist.map { "\($0.pair.local.address) -> \($0.pair.remote.address)" }
        // IPv4 with IPv4, global IPv6 with global IPv6; the srflx local is
        // replaced by its base (RFC 8445 §6.1.2.4); no pair with the link-local remote.
        #expect(pairs.count == 2, "\(pairs)")
        #expect(agent.checklist.allSatisfy { $0.pair.local.type == .host })
        #expect(agent.checklist.allSatisfy { $0.pair.local.address.family.code == $0.pair.remote.address.family.code })
        #expect(throws: ICEError.unusableCandidate("TCP candidates are not supported")) {
            try agent.addRemoteCandidate(ICECandidate(foundation: "t", transport: .tcp(.active), priority: 1, address: peerHost, type: .host), now: .zero)
        }
    }

    /// Addresses no check can go to (the peer's choice: hostile input) are
    /// refused when added, and make no pair.
    @Test func refusesRemoteCandidatesNoCheckCanGoTo() throws {
        var agent = try makeAgent(role: .controlling)
        let refused: [(STUNAddress, String)] = [
            (.ipv4(0, 0, 0, 0, port: 9), "an address of 0.0.0.0/8 (this host, unspecified)"),
            (.ipv4(0, 1, 2, 3, port: 9), "an address of 0.0.0.0/8 (this host, unspecified)"),
            (.ipv4(224, 0, 0, 1, port: 9), "a multicast address"),
            (.ipv4(239, 255, 255, 250, port: 9), "a multicast address"),
            (.ipv4(255, 255, 255, 255, port: 9), "the broadcast address"),
            (STUNAddress(family: .ipv6(0, 0), port: 9), "the unspecified address"),
            (STUNAddress(family: .ipv6(0xff02_0000_0000_0000, 1), port: 9), "a multicast address"),
            (STUNAddress(family: .ipv6(0, 0xffff_ffff_ffff), port: 9), "the broadcast address"),
        ]
        for (address, reason) in refused {
            #expect(throws: ICEError.unusableCandidate("\(address): \(reason)")) {
                try agent.addRemoteCandidate(ICECandidate(foundation: "x", priority: 100, address: address, type: .host), now: .zero)
            }
        }
        #expect(agent.checklist.isEmpty)
        // Ordinary addresses next to them still pair.
        try agent.addRemoteCandidate(ICECandidate(foundation: "a", priority: 100, address: .ipv4(223, 255, 255, 254, port: 9), type: .host), now: .zero)
        #expect(agent.checklist.count == 1)
    }

    @Test func failsWithAReasonWhenNothingAnswers() throws {
        var agent = try makeAgent(role: .controlling)
        try agent.setRemoteCredentials(ufrag: peerCredentials.ufrag, password: peerCredentials.password, now: .zero)
        try agent.addRemoteCandidate(ICECandidate(foundation: "9", priority: 2_130_706_431, address: peerHost, type: .host), now: .seconds(1))
        var now = Duration.seconds(1)
        while let deadline = agent.nextDeadline, now < .seconds(60) {
            now = max(now, deadline)
            _ = agent.drainTransmits(now: now)
        }
        // 10 s after the last candidate arrived.
        #expect(now == .seconds(11))
        guard case .failed(.connectivityFailed(let report)) = agent.state else {
            Issue.record("state \(agent.state)")
            return
        }
        #expect(report.triedPairs == ["host→host"])
        #expect(report.remoteCredentialsKnown)
        #expect(!report.relayTried)
        let reason = ICEError.connectivityFailed(report).reason
        #expect(reason.contains("local candidates: host; remote candidates: host"))
        #expect(reason.contains("no relay"))
        #expect(agent.drainEvents().contains(.stateChanged(.failed(.connectivityFailed(report)))))
    }

    @Test func failsEarlyWhenEveryPairIsRejectedAndNoMoreCandidatesCome() throws {
        var agent = try makeAgent(role: .controlling)
        try agent.setRemoteCredentials(ufrag: peerCredentials.ufrag, password: peerCredentials.password, now: .zero)
        try agent.addRemoteCandidate(ICECandidate(foundation: "9", priority: 2_130_706_431, address: peerHost, type: .host), now: .zero)
        agent.remoteCandidatesComplete(now: .zero)
        let check = try agent.requireTransmit(now: .zero)
        agent.handleDatagram(try peerAnswer(to: check, error: .serverError), from: peerHost, toBase: localHost, now: .milliseconds(5))
        guard case .failed(.connectivityFailed(let report)) = agent.state else {
            Issue.record("state \(agent.state)")
            return
        }
        #expect(report.rejectedWith == [500])
    }

    @Test func malformedDatagramsAreDroppedNeverFatal() throws {
        var agent = try makeAgent()
        let valid = try peerCheck(to: agent)
        for cut in 0..<valid.count {
            #expect(agent.handleDatagram(Array(valid[..<cut]), from: peerHost, toBase: localHost, now: .zero) != .handled)
        }
        var random = SplitMix64(seed: 5)
        for _ in 0..<2000 {
            var bytes = valid
            let flips = 1 + Int(random.next() % 4)
            for _ in 0..<flips {
                let position = Int(random.next() % UInt64(bytes.count))
                bytes[position] ^= UInt8(truncatingIfNeeded: 1 + random.next() % 255)
            }
            _ = agent.handleDatagram(bytes, from: peerHost, toBase: localHost, now: .zero)
        }
        #expect(agent.handleDatagram([0x16, 0xfe, 0xfd] + [UInt8](repeating: 0, count: 30), from: peerHost, toBase: localHost, now: .zero) == .dropped(.notSTUN))
        #expect(agent.remoteCandidates.isEmpty, "no flipped request passed integrity")
        // And it still works.
        #expect(agent.handleDatagram(valid, from: peerHost, toBase: localHost, now: .zero) == .handled)
    }

    @Test func boundsRemoteCandidates() throws {
        var agent = try makeAgent { $0.maximumRemoteCandidates = 3 }
        for i in 0..<3 {
            try agent.addRemoteCandidate(ICECandidate(foundation: "\(i)", priority: 1, address: .ipv4(10, 0, 0, UInt8(i + 1), port: 1), type: .host), now: .zero)
        }
        #expect(throws: ICEError.limitReached(what: "remote candidates", limit: 3)) {
            try agent.addRemoteCandidate(ICECandidate(foundation: "x", priority: 1, address: .ipv4(10, 0, 0, 9, port: 1), type: .host), now: .zero)
        }
        // Checks from unknown sources are still answered, but not remembered.
        agent.handleDatagram(try peerCheck(to: agent), from: peerHost, toBase: localHost, now: .zero)
        #expect(agent.remoteCandidates.count == 3)
        #expect(agent.pollTransmit(now: .zero) != nil)
    }
}
