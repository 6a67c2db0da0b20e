import Testing
import TernICE
import TernSTUN

// Mapping-clash avoidance (ICEAgent+RemoteRouters.swift): ordinary checks to
// an address behind a router that answers unsolicited datagrams wait, so the
// peer's first packet leaves its router before ours arrives there.

private let peerReflexive = STUNAddress.ipv4(203, 0, 113, 7, port: 7000)
private let probeWait: Duration = .milliseconds(50)
private let hold: Duration = .milliseconds(200)

/// An agent with the peer's credentials, its host candidate and (after the
/// probe starts) its server-reflexive one; checks paced at 10 ms.
private func agentWithPeer(avoidance: Bool = true) throws -> ICEAgent {
    var agent = try makeAgent(role: .controlling) { $0.pacing = .milliseconds(10) }
    if avoidance { agent.avoidMappingClashes(probeWait: probeWait, hold: hold) }
    try agent.setRemoteCredentials(ufrag: peerCredentials.ufrag, password: peerCredentials.password, now: .zero)
    try agent.addRemoteCandidate(ICECandidate(foundation: "1", priority: 2_130_706_431, address: peerHost, type: .host), now: .zero)
    let probing = agent.probingRemoteRouter(peerReflexive, now: .zero)
    #expect(probing == avoidance)
    try agent.addRemoteCandidate(
        ICECandidate(foundation: "2", priority: 1_694_498_815, address: peerReflexive, type: .serverReflexive, relatedAddress: peerHost),
        now: .zero)
    return agent
}

/// Runs the agent from its own deadlines only (as the driver's timer does)
/// up to `limit`, calling `input` once at `inputAt`. Returns every datagram
/// with its time and the number of wake-ups.
private func run(
    _ agent: inout ICEAgent, until limit: Duration, inputAt: Duration? = nil, input: (inout ICEAgent, Duration) throws -> Void = { _, _ in }
) throws -> (sent: [(at: Duration, transmit: ICETransmit)], wakeUps: Int) {
    var sent: [(at: Duration, transmit: ICETransmit)] = []
    var now: Duration = .zero
    var wakeUps = 0
    var pendingInput = inputAt
    while now <= limit {
        for transmit in agent.drainTransmits(now: now) { sent.append((now, transmit)) }
        var next = agent.nextDeadline ?? limit + .milliseconds(1)
        if let at = pendingInput, at < next { next = at }
        guard next > now else { Issue.record("deadline \(next) not after \(now)"); break }
        now = next
        wakeUps += 1
        if let at = pendingInput, at == now {
            pendingInput = nil
            try input(&agent, now)
        }
    }
    return (sent, wakeUps)
}

private func firstCheck(to address: STUNAddress, in sent: [(at: Duration, transmit: ICETransmit)]) -> Duration? {
    sent.first { $0.transmit.to == address }?.at
}

/// Two port-restricted cones, B's router (LAN 2) answering unsolicited
/// datagrams; A controlling, B controlled, checks paced at 10 ms; with
/// `avoidance`, routers are probed and both agents hold as the driver does.
private func routerThatAnswersBehindB(seed: UInt64, avoidance: Bool) throws -> SimulatedNetwork {
    var network = SimulatedNetwork(seed: seed)
    network.link.delay = .milliseconds(5)
    network.probeRouters = avoidance
    network.addNAT(lan: 1, type: .portRestrictedCone)
    network.addNAT(lan: 2, type: .portRestrictedCone)
    network.nats[2]?.answersUnsolicited = true
    let configure: (inout ICEConfiguration) -> Void = { $0.pacing = .milliseconds(10) }
    try network.addPeer("A", role: .controlling, lan: 1, configure: configure)
    try network.addPeer("B", role: .controlled, lan: 2, configure: configure)
    if avoidance {
        for index in network.peers.indices { network.peers[index].agent.avoidMappingClashes(probeWait: probeWait, hold: hold) }
    }
    return network
}

@Suite("ICE agent: mapping-clash avoidance")
struct MappingClashTests {
    @Test func aRouterThatAnswersHoldsOrdinaryChecksUntilTheHoldEnds() throws {
        var agent = try agentWithPeer()
        agent.remoteRouter(peerReflexive, answersUnsolicited: true, now: .milliseconds(1))
        let (sent, wakeUps) = try run(&agent, until: .milliseconds(400))
        let host = try #require(firstCheck(to: peerHost, in: sent))
        let reflexive = try #require(firstCheck(to: peerReflexive, in: sent))
        #expect(host < .milliseconds(20))
        #expect(reflexive >= hold && reflexive < hold + .milliseconds(20))
        // The hold is a deadline, not a poll: a handful of wake-ups (checks, retransmissions).
        #expect(wakeUps < 20)
    }

    @Test func aSilentRouterReleasesTheChecksAtOnce() throws {
        var agent = try agentWithPeer()
        agent.remoteRouter(peerReflexive, answersUnsolicited: false, now: .milliseconds(1))
        let (sent, _) = try run(&agent, until: .milliseconds(100))
        let reflexive = try #require(firstCheck(to: peerReflexive, in: sent))
        #expect(reflexive <= .milliseconds(20))
    }

    @Test func withoutTheProbesAnswerTheChecksWaitAtMostTheProbeWait() throws {
        var agent = try agentWithPeer()
        let (sent, _) = try run(&agent, until: .milliseconds(200))
        let reflexive = try #require(firstCheck(to: peerReflexive, in: sent))
        #expect(reflexive >= probeWait && reflexive < probeWait + .milliseconds(20))
    }

    @Test func aLateAnswerStillHoldsTheChecks() throws {
        var agent = try agentWithPeer()
        let (sent, _) = try run(&agent, until: .milliseconds(400), inputAt: .milliseconds(30)) { agent, now in
            agent.remoteRouter(peerReflexive, answersUnsolicited: true, now: now)
        }
        let reflexive = try #require(firstCheck(to: peerReflexive, in: sent))
        #expect(reflexive >= hold)
    }

    @Test func aCheckFromTheHeldAddressIsAnsweredAndTriggersACheckAtOnce() throws {
        var agent = try agentWithPeer()
        agent.remoteRouter(peerReflexive, answersUnsolicited: true, now: .milliseconds(1))
        let (sent, _) = try run(&agent, until: .milliseconds(100), inputAt: .milliseconds(30)) { agent, now in
            let request = try peerCheck(to: agent, attributes: [.iceControlled(5)])
            let outcome = agent.handleDatagram(request, from: peerReflexive, toBase: localHost, now: now)
            #expect(outcome == .handled)
        }
        let toPeer = sent.filter { $0.transmit.to == peerReflexive }
        #expect(toPeer.count == 2)  // the answer, then the triggered check
        let messages = try toPeer.map { try STUNMessage.decode($0.transmit.bytes) }
        #expect(messages.map(\.messageClass) == [.successResponse, .request])
        #expect(toPeer.allSatisfy { $0.at < .milliseconds(50) })
    }

    @Test func thePeersMappingOpenedEndsTheHoldAtOnce() throws {
        var agent = try agentWithPeer()
        agent.remoteRouter(peerReflexive, answersUnsolicited: true, now: .milliseconds(1))
        let (sent, _) = try run(&agent, until: .milliseconds(400), inputAt: .milliseconds(40)) { agent, now in
            agent.peerOpenedMapping(now: now)
        }
        let reflexive = try #require(firstCheck(to: peerReflexive, in: sent))
        #expect(reflexive >= .milliseconds(40) && reflexive < .milliseconds(60))
    }

    /// The first check from a host base to each remote router is announced
    /// once, for the driver to tell the peer; checks to host candidates are not.
    @Test func theFirstCheckToEachRemoteRouterIsAnnouncedOnce() throws {
        var agent = try agentWithPeer()
        agent.remoteRouter(peerReflexive, answersUnsolicited: false, now: .milliseconds(1))
        _ = try run(&agent, until: .milliseconds(2000))
        var announced: [STUNAddress] = []
        while let event = agent.pollEvent() {
            if case .mappingOpened(let address) = event { announced.append(address) }
        }
        #expect(announced == [peerReflexive])
    }

    @Test func offByDefault() throws {
        var agent = try agentWithPeer(avoidance: false)
        agent.remoteRouter(peerReflexive, answersUnsolicited: true, now: .milliseconds(1))
        let (sent, _) = try run(&agent, until: .milliseconds(100))
        let reflexive = try #require(firstCheck(to: peerReflexive, in: sent))
        #expect(reflexive <= .milliseconds(20))
    }

    @Test func oneProbePerRouter() throws {
        var agent = try agentWithPeer()
        let samePort = STUNAddress.ipv4(203, 0, 113, 7, port: 7001)
        let again = agent.probingRemoteRouter(samePort, now: .milliseconds(5))
        let another = agent.probingRemoteRouter(.ipv4(203, 0, 113, 8, port: 7000), now: .milliseconds(5))
        #expect(!again)
        #expect(another)
    }

    /// Two port-restricted cones, the controlled side's router answering
    /// unsolicited datagrams and the controlled side learning the
    /// controlling side's candidates 100 ms late (the answer of an offer):
    /// the controlling side's first check clashes with the controlled
    /// side's flow and no path is left (no TURN here). Probing and holding
    /// lets the controlled side's check leave first: direct.
    @Test(arguments: [false, true])
    func aRouterThatAnswersOnTheLateSide(avoidance: Bool) throws {
        var network = try routerThatAnswersBehindB(seed: 7, avoidance: avoidance)
        network.lateSignalling[1] = .milliseconds(100)
        try network.start()
        try network.run(until: .seconds(15)) { $0.bothDone }
        let clashes = network.nats[2]?.mappings.filter(\.clash).count ?? 0
        if avoidance {
            #expect(network.bothConnected)
            #expect(clashes == 0, "B's flow to A kept its port")
            for peer in network.peers {
                let pair = try #require(peer.selectedPairs.last)
                #expect(pair.local.type != .host && pair.remote.type != .host)
                let connectedAt = try #require(peer.connectedAt)
                #expect(connectedAt < .milliseconds(600), "\(peer.name) connected at \(connectedAt.seconds)")
            }
        } else {
            #expect(!network.bothConnected, "the clash leaves no direct path")
            #expect(clashes >= 1, "B's flow to A got a fresh port")
        }
    }

    /// With `mappingOpened` passed between the peers, the holding side (A,
    /// whose probe found B's router answering) checks as soon as B says its
    /// first check to A has left, not when the fixed hold ends: connected
    /// sooner, and still without a clash.
    @Test func thePeersMappingOpenedEndsTheHoldBeforeItsTime() throws {
        func connect(signalled: Bool) throws -> (connectedAt: Duration, clashes: Int) {
            var network = try routerThatAnswersBehindB(seed: 11, avoidance: true)
            network.signalsMappings = signalled
            try network.start()
            try network.run(until: .seconds(15)) { $0.bothDone }
            #expect(network.bothConnected)
            return (try #require(network.peers[0].connectedAt), network.nats[2]?.mappings.filter(\.clash).count ?? 0)
        }
        let held = try connect(signalled: false)
        let told = try connect(signalled: true)
        #expect(held.clashes == 0 && told.clashes == 0)
        #expect(told.connectedAt + .milliseconds(50) < held.connectedAt, "told \(told.connectedAt.seconds) s, held \(held.connectedAt.seconds) s")
    }
}
