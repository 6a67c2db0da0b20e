import TernTestSupport
import Testing
import TernICE
import TernSTUN

// What the driver reports about the selected pair (its round trip) and how
// the controlling agent chooses between direct and relayed pairs.

struct SelectionTests {
    @Test func theRoundTripOfTheSelectedPairIsMeasuredOnFirstTransmissions() throws {
        var network = SimulatedNetwork(seed: 21)
        network.link.delay = .milliseconds(20)
        network.addNAT(lan: 1, type: .portRestrictedCone)
        try network.addPeer("A", role: .controlling, lan: 1)
        try network.addPeer("B", role: .controlled, lan: 1)
        try network.start()
        try network.run(until: .seconds(5)) { $0.bothConnected }
        // Two one-way delays of 20 ms; the simulation adds no processing time.
        #expect(network.peers[0].agent.selectedRoundTrip == .milliseconds(40))
        // Consent checks refresh the sample on the selected pair.
        try network.run(until: network.now + .seconds(12))
        #expect(network.peers[0].agent.selectedRoundTrip == .milliseconds(40))
        #expect(network.peers[1].agent.selectedRoundTrip == .milliseconds(40))
    }

    @Test func aRetransmittedCheckGivesNoRoundTripSample() throws {
        var agent = try makeAgent(role: .controlling)
        try agent.setRemoteCredentials(ufrag: peerCredentials.ufrag, password: peerCredentials.password, now: .zero)
        try agent.addRemoteCandidate(ICECandidate(foundation: "1", priority: 2_130_706_431, address: peerHost, type: .host), now: .zero)
        let sent = agent.pollTransmit(now: .zero)
        let first = try #require(sent)
        // No answer: the check goes out again after its RTO.
        agent.advanceTime(now: .milliseconds(500))
        let resent = agent.pollTransmit(now: .milliseconds(500))
        let again = try #require(resent)
        #expect(again.bytes == first.bytes)
        _ = agent.handleDatagram(try peerAnswer(to: again), from: peerHost, toBase: localHost, now: .milliseconds(510))
        #expect(agent.validPairs.count == 1)
        #expect(agent.selectedRoundTrip == nil, "Karn: an answer to a retransmitted request is ambiguous")
    }

    @Test func behindConeNATsADirectPairIsNominatedWithoutWaitingForHostPairs() throws {
        var network = try startedBehindNATs(seed: 22, .portRestrictedCone, .portRestrictedCone)
        try network.run(until: .seconds(20)) { $0.bothConnected }
        let connectedAt = try #require(network.peers[0].connectedAt)
        let firstValid = try #require(network.peers[0].events.first { if case .selectedPair = $0.event { true } else { false } }?.time)
        // The host pairs between the two private networks never answer; the
        // srflx pair is direct, so nomination does not wait the 1 s for them.
        #expect(connectedAt < .milliseconds(700), "connected at \(connectedAt)")
        #expect(firstValid == connectedAt)
        #expect(network.peers[0].agent.selectedPair?.local.type != .relayed)
    }

    @Test func aRelayedCandidateOverTCPRanksBelowOneOverUDP() throws {
        var agent = try makeAgent()
        let server = STUNAddress.ipv4(198, 18, 0, 10, port: 3478)
        let overTCP = try agent.addRelayedCandidate(
            .ipv4(198, 18, 0, 10, port: 50001), mappedAddress: nil, server: server, overTCP: true, now: .zero)
        let overUDP = try agent.addRelayedCandidate(
            .ipv4(198, 18, 0, 10, port: 50002), mappedAddress: nil, server: server, now: .zero)
        // Added first, yet below: the transport to the server decides.
        #expect(overTCP.priority < overUDP.priority)
        #expect(overTCP.type == .relayed && overUDP.type == .relayed)
        // Both still below every host candidate (type preference 0 vs 126).
        #expect(overUDP.priority < agent.localCandidates[0].priority)
    }
}
