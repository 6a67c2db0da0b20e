import TernTestSupport
import Testing
import TernICE
import TernSTUN

/// Two agents over the simulated network: LANs, NATs, loss, role conflicts,
/// consent, wrong credentials. Every run is seeded and replays exactly.
@Suite("ICE connectivity over a simulated network")
struct ConnectivityTests {
    /// Both sides selected a pair, and the pairs are mirror images of each other.
    func expectMirroredSelection(_ network: SimulatedNetwork, sourceLocation: SourceLocation = #_sourceLocation) {
        let a = network.peers[0].agent.selectedPair
        let b = network.peers[1].agent.selectedPair
        #expect(a != nil && b != nil, "both sides select a pair", sourceLocation: sourceLocation)
        guard let a, let b else { return }
        // What A sends to is where B's datagrams come from as A sees them, and vice versa,
        // so each side's remote address is the other's local (possibly reflexive) address.
        #expect(a.remote.address == b.local.address, sourceLocation: sourceLocation)
        #expect(b.remote.address == a.local.address, sourceLocation: sourceLocation)
        #expect(a.localBase == network.peers[0].host, sourceLocation: sourceLocation)
        #expect(b.localBase == network.peers[1].host, sourceLocation: sourceLocation)
    }

    func report(_ label: String, _ network: SimulatedNetwork) {
        let a = network.peers[0]
        let b = network.peers[1]
        let times = [a, b].map { peer in
            "\(peer.name) \(peer.connectedAt.map(\.seconds) ?? "never") via \(peer.agent.selectedPair?.description ?? "-")"
        }
        print("[ice] \(label): connected \(times.joined(separator: "; ")); datagrams delivered \(network.delivered), dropped \(network.dropped)")
    }

    @Test func hostCandidatesOnTheSameLANConnect() throws {
        var network = SimulatedNetwork(seed: 1)
        network.addNAT(lan: 1, type: .portRestrictedCone)
        try network.addPeer("A", role: .controlling, lan: 1)
        try network.addPeer("B", role: .controlled, lan: 1)
        try network.start()
        try network.run(until: .seconds(20)) { $0.bothConnected }
        report("same LAN, 20 ms one-way", network)
        expectMirroredSelection(network)
        for peer in network.peers {
            #expect(peer.agent.selectedPair?.local.type == .host)
            #expect(peer.agent.selectedPair?.remote.type == .host)
            #expect(peer.selectedPairs.count == 1, "selected once, never switched")
        }
        // Credentials take 60 ms through signalling; then one check round
        // trip and one nominating round trip (4 x 20 ms) plus Ta pacing.
        let connectedAt = try #require(network.peers[0].connectedAt)
        #expect(connectedAt < .milliseconds(400))
        print("[ice] time to connect on one LAN with 20 ms one-way delay: \(connectedAt.seconds) (controlling), \(network.peers[1].connectedAt?.seconds ?? "never") (controlled)")
    }

    @Test func stateGoesFromNewThroughCheckingToCompleted() throws {
        var network = SimulatedNetwork(seed: 2)
        network.addNAT(lan: 1, type: .portRestrictedCone)
        try network.addPeer("A", role: .controlling, lan: 1)
        try network.addPeer("B", role: .controlled, lan: 1)
        try network.start()
        try network.run(until: .seconds(3))
        for peer in network.peers {
            let states = peer.events.compactMap { if case .stateChanged(let state) = $0.event { state } else { nil } }
            // Gathering and end-of-candidates were over before a pair was
            // selected, so the agent goes straight to completed.
            #expect(states == [.checking, .completed], "\(peer.name)")
            #expect(peer.agent.state == .completed)
            #expect(!peer.agent.isGathering)
            // A server-reflexive candidate was gathered and trickled.
            let trickled = peer.events.compactMap { if case .localCandidate(let c) = $0.event { c.type } else { nil } }
            #expect(trickled == [.host, .serverReflexive])
        }
    }

    @Test func coneNATsConnectThroughServerReflexiveCandidates() throws {
        var network = try startedBehindNATs(seed: 3, .portRestrictedCone, .portRestrictedCone)
        try network.run(until: .seconds(20)) { $0.bothConnected }
        try network.run(until: network.now + .seconds(1))
        report("two port-restricted cone NATs", network)
        expectMirroredSelection(network)
        for peer in network.peers {
            let pair = try #require(peer.agent.selectedPair)
            // Endpoint-independent mapping: the address the peer sees is the
            // one the STUN server saw, so both ends are server-reflexive.
            #expect(pair.local.type == .serverReflexive, "\(peer.name) local \(pair.local)")
            #expect(pair.remote.type == .serverReflexive, "\(peer.name) remote \(pair.remote)")
            #expect(pair.localBase == peer.host)
        }
    }

    @Test func symmetricNATMeetsAddressRestrictedConeThroughPeerReflexive() throws {
        var network = try startedBehindNATs(seed: 4, .symmetric, .addressRestrictedCone)
        try network.run(until: .seconds(20)) { $0.bothConnected }
        try network.run(until: network.now + .seconds(1))
        report("symmetric NAT vs address-restricted cone", network)
        expectMirroredSelection(network)
        let a = try #require(network.peers[0].agent.selectedPair)
        let b = try #require(network.peers[1].agent.selectedPair)
        // The symmetric NAT gives A a new port towards B: A learns it as a
        // peer-reflexive local candidate (RFC 8445 §7.2.5.3.1), B as a
        // peer-reflexive remote one (§7.3.1.3).
        #expect(a.local.type == .peerReflexive)
        #expect(a.remote.type == .serverReflexive)
        #expect(b.local.type == .serverReflexive)
        #expect(b.remote.type == .peerReflexive)
        #expect(a.local.address != network.peers[0].agent.localCandidates.first { $0.type == .serverReflexive }?.address)
    }

    @Test func symmetricNATMeetsPortRestrictedConeFailsWithoutRelay() throws {
        var network = try startedBehindNATs(seed: 5, .symmetric, .portRestrictedCone)
        try network.run(until: .seconds(60)) { $0.bothDone }
        report("symmetric NAT vs port-restricted cone", network)
        for peer in network.peers {
            #expect(peer.connectedAt == nil, "\(peer.name) must not connect: no direct path exists")
            let failedAt = try #require(peer.failedAt, "\(peer.name) reports failure")
            // 10 s failure timeout after the last candidate arrived (~0.2 s).
            #expect(failedAt > .seconds(10) && failedAt < .seconds(11), "\(peer.name) failed at \(failedAt.seconds)")
            guard case .connectivityFailed(let why) = try #require(peer.failure) else {
                Issue.record("\(peer.name) failed for another reason: \(String(describing: peer.failure))")
                continue
            }
            #expect(!why.relayTried)
            #expect(why.localTypes == [.host, .serverReflexive])
            #expect(why.triedPairs.contains("host→srflx"))
            print("[ice] \(peer.name) failure reason: \(ICEError.connectivityFailed(why).reason)")
        }
    }

    @Test(arguments: [11, 12, 13, 14, 15] as [UInt64])
    func lossReorderingAndDuplicationStillConnect(seed: UInt64) throws {
        var network = SimulatedNetwork(seed: seed)
        network.link = LinkProfile(
            delay: .milliseconds(20), jitter: .milliseconds(10),
            loss: 0.05, duplication: 0.05, reordering: 0.2, reorderDelay: .milliseconds(50)
        )
        network.addNAT(lan: 1, type: .portRestrictedCone)
        network.addNAT(lan: 2, type: .portRestrictedCone)
        try network.addPeer("A", role: .controlling, lan: 1)
        try network.addPeer("B", role: .controlled, lan: 2)
        try network.start()
        try network.run(until: .seconds(20)) { $0.bothConnected }
        report("5% loss, 5% duplication, 20% reordering (seed \(seed))", network)
        expectMirroredSelection(network)
        #expect(network.dropped > 0, "the link did lose datagrams")
        // Consent keeps the pair alive over the lossy link for a minute.
        try network.run(until: network.now + .seconds(60))
        for peer in network.peers {
            #expect(peer.consentLostAt == nil)
            #expect(peer.agent.state == .completed)
        }
    }

    @Test(arguments: [ICERole.controlling, .controlled])
    func roleConflictResolvesToOneControllingSide(bothStartAs role: ICERole) throws {
        var network = SimulatedNetwork(seed: 21)
        network.addNAT(lan: 1, type: .portRestrictedCone)
        network.addNAT(lan: 2, type: .portRestrictedCone)
        try network.addPeer("A", role: role, lan: 1)
        try network.addPeer("B", role: role, lan: 2)
        try network.start()
        try network.run(until: .seconds(20)) { $0.bothConnected }
        try network.run(until: network.now + .seconds(2))
        report("both start \(role.rawValue)", network)
        let roles = network.peers.map(\.agent.role)
        #expect(roles.filter { $0 == .controlling }.count == 1, "roles \(roles)")
        // RFC 8445 §7.3.1.1: the larger tie-breaker ends up controlling.
        let winner = network.peers.max { $0.agent.configuration.tieBreaker < $1.agent.configuration.tieBreaker }
        #expect(winner?.agent.role == .controlling)
        let switched = network.peers.filter { peer in peer.events.contains { $0.event == .roleChanged(peer.agent.role) } }
        #expect(switched.count == 1, "exactly one side switched")
        expectMirroredSelection(network)
    }

    @Test func consentIsLostWithin30SecondsAfterThePeerVanishes() throws {
        var network = try startedBehindNATs(seed: 31, .portRestrictedCone, .portRestrictedCone)
        try network.run(until: .seconds(20)) { $0.bothConnected }
        let connectedAt = network.now
        // Let consent run for a while, then make B vanish right after A got
        // an answer: A's consent then expires exactly 30 s after that answer.
        try network.run(until: connectedAt + .seconds(15))
        let answered = network.peers[0].lastResponseAt
        try network.run(until: connectedAt + .seconds(30)) { $0.peers[0].lastResponseAt != answered }
        let vanishedAt = network.now
        #expect(network.peers[0].lastResponseAt == vanishedAt)
        network.peers[1].alive = false

        try network.run(until: vanishedAt + .seconds(25))
        #expect(network.peers[0].consentLostAt == nil, "consent must not be lost before 25 s")
        #expect(network.peers[0].agent.state == .disconnected, "10 s without an answer is reported as disconnected")
        try network.run(until: vanishedAt + .seconds(40)) { $0.peers[0].consentLostAt != nil }
        let lostAt = try #require(network.peers[0].consentLostAt)
        let silence = lostAt - vanishedAt
        print("[ice] consent lost \(silence.seconds) after the peer vanished")
        #expect(silence >= .seconds(25) && silence <= .seconds(30))
        guard case .failed(.consentLost) = network.peers[0].agent.state else {
            Issue.record("state after consent loss: \(network.peers[0].agent.state)")
            return
        }
        #expect(network.peers[0].agent.selectedPair == nil)
        #expect(network.peers[0].agent.nextDeadline == nil, "nothing more to do")
        // It sends nothing more on the pair.
        #expect(network.peers[0].agent.pollTransmit(now: network.now + .seconds(60)) == nil)
    }

    @Test func wrongRemotePasswordOnTheControllingSideNeverConnects() throws {
        var network = SimulatedNetwork(seed: 41)
        network.addNAT(lan: 1, type: .portRestrictedCone)
        try network.addPeer("A", role: .controlling, lan: 1)
        try network.addPeer("B", role: .controlled, lan: 1)
        // A is told a wrong password for B: B rejects A's checks and nominations.
        try network.start(wrongPasswordFor: 1)
        try network.run(until: .seconds(60)) { $0.bothDone }
        report("controlling side has a wrong ice-pwd", network)
        for side in network.peers {
            #expect(side.connectedAt == nil, "\(side.name) must not connect")
            #expect(side.failedAt.map { $0 < .seconds(11) } == true, "\(side.name) gives up after the failure timeout")
        }
        guard case .connectivityFailed(let a) = network.peers[0].failure, case .connectivityFailed(let b) = network.peers[1].failure else {
            Issue.record("both must fail for lack of connectivity: \(String(describing: network.peers.map(\.failure)))")
            return
        }
        print("[ice] A failure reason: \(ICEError.connectivityFailed(a).reason)")
        print("[ice] B failure reason: \(ICEError.connectivityFailed(b).reason)")
        #expect(a.unauthenticatedResponses > 0)
        #expect(ICEError.connectivityFailed(a).reason.contains("wrong remote ice-pwd"))
        #expect(b.unauthenticatedRequests > 0)
        #expect(b.awaitingNomination, "B's own checks worked, but nothing was nominated")
    }

    @Test func wrongRemotePasswordOnTheControlledSideEndsInFailureOnBothSides() throws {
        var network = SimulatedNetwork(seed: 42)
        network.addNAT(lan: 1, type: .portRestrictedCone)
        try network.addPeer("A", role: .controlling, lan: 1)
        try network.addPeer("B", role: .controlled, lan: 1)
        // B is told a wrong password for A. A's checks and its nomination
        // succeed (B checks them with its own password), so RFC 8445 §8.1.1
        // lets A select a pair; B never can, and gives up. A then loses
        // consent (RFC 7675) because B stops answering.
        try network.start(wrongPasswordFor: 0)
        try network.run(until: .seconds(60)) { $0.peers.allSatisfy { $0.failedAt != nil } }
        report("controlled side has a wrong ice-pwd", network)
        #expect(network.peers[1].connectedAt == nil, "B must not connect")
        guard case .connectivityFailed(let b) = network.peers[1].failure else {
            Issue.record("B: \(String(describing: network.peers[1].failure))")
            return
        }
        print("[ice] B failure reason: \(ICEError.connectivityFailed(b).reason)")
        #expect(b.unauthenticatedResponses > 0)
        let bFailed = try #require(network.peers[1].failedAt)
        let aFailed = try #require(network.peers[0].failedAt, "A must not stay connected to a peer that gave up")
        guard case .consentLost = network.peers[0].failure else {
            Issue.record("A: \(String(describing: network.peers[0].failure))")
            return
        }
        #expect(aFailed - bFailed <= .seconds(30))
    }

    @Test func checksWaitForRemoteCredentialsButIncomingChecksAreAnswered() throws {
        var network = SimulatedNetwork(seed: 51)
        network.signallingDelay = .milliseconds(60)
        network.addNAT(lan: 1, type: .portRestrictedCone)
        try network.addPeer("A", role: .controlling, lan: 1)
        try network.addPeer("B", role: .controlled, lan: 1)
        // B hears A's credentials and candidates at once; A hears B's 2 s later.
        try network.peers[0].agent.addHostCandidate(network.peers[0].host, now: .zero)
        try network.peers[1].agent.addHostCandidate(network.peers[1].host, now: .zero)
        let a = network.peers[0].agent.configuration.localCredentials
        let b = network.peers[1].agent.configuration.localCredentials
        try network.peers[1].agent.setRemoteCredentials(ufrag: a.ufrag, password: a.password, now: .zero)
        try network.peers[1].agent.addRemoteCandidate(network.peers[0].agent.localCandidates[0], now: .zero)
        // Nothing is trickled to A.
        _ = network.peers[0].agent.drainEvents()
        _ = network.peers[1].agent.drainEvents()
        try network.run(until: .seconds(2))
        // A has sent no check yet (it cannot sign one), but it answered B's
        // and learned B's address as a peer-reflexive candidate.
        #expect(network.peers[0].agent.statistics.checksSent == 0)
        #expect(network.peers[0].agent.statistics.requestsReceived > 0)
        #expect(network.peers[0].agent.remoteCandidates.map(\.type) == [.peerReflexive])
        #expect(network.peers[0].connectedAt == nil)
        try network.peers[0].agent.setRemoteCredentials(ufrag: b.ufrag, password: b.password, now: network.now)
        try network.run(until: .seconds(4)) { $0.bothConnected }
        expectMirroredSelection(network)
    }
}

/// A controlling "A" on LAN 1 and a controlled "B" on LAN 2, each behind a
/// NAT of the given kind, started.
func startedBehindNATs(seed: UInt64, _ natA: NATType, _ natB: NATType) throws -> SimulatedNetwork {
    var network = SimulatedNetwork(seed: seed)
    network.addNAT(lan: 1, type: natA)
    network.addNAT(lan: 2, type: natB)
    try network.addPeer("A", role: .controlling, lan: 1)
    try network.addPeer("B", role: .controlled, lan: 2)
    try network.start()
    return network
}
