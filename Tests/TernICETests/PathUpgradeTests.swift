import Testing
import TernICE
import TernSTUN

/// Start at once, move to the best path (`upgradesSelectedPair`): two agents
/// on a virtual clock, A with a host and a relayed candidate, B with a host
/// candidate, and a direct path between the hosts that opens (or never
/// opens) while the relayed pair already carries the session.
struct PathUpgradeTests {
    static let hostA = STUNAddress.ipv4(10, 0, 1, 2, port: 40000)
    static let relayA = STUNAddress.ipv4(198, 18, 0, 10, port: 50001)
    /// A's allocation on the same server reached over TCP.
    static let relayTCP = STUNAddress.ipv4(198, 18, 0, 10, port: 50002)
    static let turnServer = STUNAddress.ipv4(198, 18, 0, 10, port: 3478)
    static let hostB = STUNAddress.ipv4(10, 0, 2, 2, port: 40001)

    struct Pair {
        var a: ICEAgent
        var b: ICEAgent
        var now: Duration = .zero
        /// When the hosts start reaching each other (nil: never).
        var directOpensAt: Duration?
        /// When A's allocation over UDP arrives (nil: at the start, and no
        /// allocation over TCP); the one over TCP is there from the start.
        var udpRelayOpensAt: Duration?
        var udpRelayAdded = true
        var selectionsA: [(Duration, ICECandidatePair)] = []
        var selectionsB: [(Duration, ICECandidatePair)] = []
        var checksFromRelayAfterUpgrade = 0
        /// In flight: (arrival, to B?, bytes, from, to).
        var wire: [(Duration, Bool, [UInt8], STUNAddress, STUNAddress)] = []
        let oneWay: Duration = .milliseconds(15)

        init(upgrades: Bool, directOpensAt: Duration?, udpRelayOpensAt: Duration? = nil) throws {
            func configuration(_ role: ICERole, _ ufrag: String) throws -> ICEConfiguration {
                var configuration = ICEConfiguration(
                    role: role, localCredentials: try ICECredentials(ufrag: ufrag, password: "\(ufrag)password\(ufrag)password"),
                    tieBreaker: role == .controlling ? 2 : 1, pacing: .milliseconds(10),
                    nominationDelay: upgrades ? .zero : .seconds(1), randomness: .seeded(ufrag == "AAAA" ? 1 : 2))
                configuration.upgradesSelectedPair = upgrades
                return configuration
            }
            a = try ICEAgent(configuration: configuration(.controlling, "AAAA"))
            b = try ICEAgent(configuration: configuration(.controlled, "BBBB"))
            self.directOpensAt = directOpensAt
            self.udpRelayOpensAt = udpRelayOpensAt
            try a.addHostCandidate(PathUpgradeTests.hostA, now: .zero)
            if udpRelayOpensAt == nil {
                try a.addRelayedCandidate(PathUpgradeTests.relayA, mappedAddress: nil, server: PathUpgradeTests.turnServer, now: .zero)
            } else {
                udpRelayAdded = false
                try a.addRelayedCandidate(
                    PathUpgradeTests.relayTCP, mappedAddress: nil, server: PathUpgradeTests.turnServer, overTCP: true, now: .zero)
            }
            try b.addHostCandidate(PathUpgradeTests.hostB, now: .zero)
            let credentialsA = a.configuration.localCredentials, credentialsB = b.configuration.localCredentials
            try a.setRemoteCredentials(ufrag: credentialsB.ufrag, password: credentialsB.password, now: .zero)
            try b.setRemoteCredentials(ufrag: credentialsA.ufrag, password: credentialsA.password, now: .zero)
            for candidate in a.localCandidates { try b.addRemoteCandidate(candidate, now: .zero) }
            for candidate in b.localCandidates { try a.addRemoteCandidate(candidate, now: .zero) }
            a.remoteCandidatesComplete(now: .zero)
            b.remoteCandidatesComplete(now: .zero)
        }

        var directOpen: Bool { directOpensAt.map { now >= $0 } ?? false }

        /// A datagram between the hosts is lost while the direct path is
        /// closed; through A's relay it always arrives (the relay's address
        /// is what B sees and answers).
        mutating func carry(_ transmit: ICETransmit, toB: Bool) {
            let relayed = [transmit.from, transmit.to].contains { $0 == PathUpgradeTests.relayA || $0 == PathUpgradeTests.relayTCP }
            guard relayed || directOpen else { return }
            wire.append((now + oneWay * (relayed ? 2 : 1), toB, transmit.bytes, transmit.from, transmit.to))
        }

        mutating func pump() {
            while let transmit = a.pollTransmit(now: now) {
                if transmit.from == PathUpgradeTests.relayA, selectionsA.count > 1 { checksFromRelayAfterUpgrade += 1 }
                carry(transmit, toB: true)
            }
            while let transmit = b.pollTransmit(now: now) { carry(transmit, toB: false) }
            while let event = a.pollEvent() { if case .selectedPair(let pair) = event { selectionsA.append((now, pair)) } }
            while let event = b.pollEvent() { if case .selectedPair(let pair) = event { selectionsB.append((now, pair)) } }
        }

        mutating func run(until limit: Duration) throws {
            while now <= limit {
                if !udpRelayAdded, let opens = udpRelayOpensAt, now >= opens {
                    udpRelayAdded = true
                    let candidate = try a.addRelayedCandidate(
                        PathUpgradeTests.relayA, mappedAddress: nil, server: PathUpgradeTests.turnServer, now: now)
                    try b.addRemoteCandidate(candidate, now: now)
                }
                pump()
                var next = [a.nextDeadline, b.nextDeadline, wire.map(\.0).min()].compactMap { $0 }.min() ?? limit + .milliseconds(1)
                if let opens = directOpensAt, opens > now { next = min(next, opens) }
                if !udpRelayAdded, let opens = udpRelayOpensAt, opens > now { next = min(next, opens) }
                guard next <= limit else { return }
                now = max(now, next)
                let due = wire.filter { $0.0 <= now }
                wire.removeAll { $0.0 <= now }
                for (_, toB, bytes, from, to) in due {
                    if toB {
                        _ = b.handleDatagram(bytes, from: from, toBase: to, now: now)
                    } else {
                        _ = a.handleDatagram(bytes, from: from, toBase: to, now: now)
                    }
                }
                a.advanceTime(now: now)
                b.advanceTime(now: now)
            }
        }
    }

    @Test func theRelayedPairCarriesTheSessionAtOnceAndTheDirectPairTakesOverWhenItOpens() throws {
        var pair = try Pair(upgrades: true, directOpensAt: .seconds(2))
        try pair.run(until: .seconds(12))
        // At once: the relayed pair, well before the 1 s regular nomination would wait.
        let first = try #require(pair.selectionsA.first)
        #expect(first.1.local.type == .relayed, "\(first.1)")
        #expect(first.0 < .milliseconds(200), "\(first.0)")
        let firstB = try #require(pair.selectionsB.first)
        #expect(firstB.1.remote.type == .relayed && firstB.0 < .milliseconds(200))
        // Then direct on both sides, once the host checks get through (the
        // host pair's retransmissions: sent again 3.5 s after the start).
        let lastA = try #require(pair.selectionsA.last)
        let lastB = try #require(pair.selectionsB.last)
        #expect(pair.selectionsA.count == 2 && pair.selectionsB.count == 2)
        #expect(lastA.1.local.type == .host && lastA.1.remote.type == .host, "\(lastA.1)")
        #expect(lastB.1.local.type == .host && lastB.1.remote.type == .host, "\(lastB.1)")
        #expect(lastA.0 > .seconds(2) && lastA.0 < .seconds(5), "\(lastA.0)")
        #expect(pair.a.selectedPair?.localBase == Self.hostA && pair.b.selectedPair?.localBase == Self.hostB)
        // Nothing goes back: consent keeps the direct pair.
        #expect(pair.a.state == pair.b.state)
    }

    @Test func aPairThroughTURNOverTCPGivesWayToOneThroughTURNOverUDP() throws {
        // No direct path; A's allocation over UDP comes 2 s late (its first
        // answers lost, say): the session starts on the one over TCP and moves.
        var pair = try Pair(upgrades: true, directOpensAt: nil, udpRelayOpensAt: .seconds(2))
        try pair.run(until: .seconds(12))
        let first = try #require(pair.selectionsA.first)
        #expect(first.1.localBase == PathUpgradeTests.relayTCP, "\(first.1)")
        let last = try #require(pair.selectionsA.last)
        #expect(last.1.localBase == PathUpgradeTests.relayA, "\(last.1)")
        #expect(pair.b.selectedPair?.remote.address == PathUpgradeTests.relayA)
    }

    @Test func withoutADirectPathTheRelayedPairStaysSelected() throws {
        var pair = try Pair(upgrades: true, directOpensAt: nil)
        try pair.run(until: .seconds(45))
        #expect(pair.selectionsA.count == 1 && pair.selectionsB.count == 1)
        #expect(pair.a.selectedPair?.local.type == .relayed)
        #expect(pair.b.selectedPair?.remote.type == .relayed)
        #expect(!pair.a.state.isFailed && !pair.b.state.isFailed, "\(pair.a.state) \(pair.b.state)")
    }

    @Test func aStandardAgentWaitsForTheBetterPairAndStopsCheckingOnceSelected() throws {
        // Regular nomination (the browser-facing default): the relayed pair
        // only after the 1 s delay, and no upgrade when the hosts open later.
        var pair = try Pair(upgrades: false, directOpensAt: .seconds(2))
        try pair.run(until: .seconds(12))
        let first = try #require(pair.selectionsA.first)
        #expect(first.1.local.type == .relayed)
        #expect(first.0 >= .seconds(1), "\(first.0)")
        #expect(pair.selectionsA.count == 1, "\(pair.selectionsA.map(\.1))")
    }
}
