import Testing
import TernICE
import TernSTUN

/// The selected path dies while another valid pair remains (`upgradesSelectedPair`):
/// two agents on a virtual clock, A with host candidates (and a relayed one),
/// B with a host candidate; A's addresses stop carrying anything at a given
/// time, as when a laptop leaves its Wi-Fi.
struct FailoverTests {
    static let wifiA = STUNAddress.ipv4(10, 0, 1, 2, port: 40000)
    static let ethernetA = STUNAddress.ipv4(10, 0, 3, 2, port: 40000)
    static let relayA = STUNAddress.ipv4(198, 18, 0, 10, port: 50001)
    static let turnServer = STUNAddress.ipv4(198, 18, 0, 10, port: 3478)
    static let hostB = STUNAddress.ipv4(10, 0, 2, 2, port: 40001)

    struct Pair {
        var a: ICEAgent
        var b: ICEAgent
        var now: Duration = .zero
        /// When each of A's bases stops carrying datagrams (missing: never).
        var diesAt: [STUNAddress: Duration] = [:]
        var selectionsA: [(Duration, ICECandidatePair)] = []
        var selectionsB: [(Duration, ICECandidatePair)] = []
        var lostA: [Duration] = []
        var lostB: [Duration] = []
        var consentLostA: Duration?
        var checksToBackup = 0
        var wire: [(Duration, Bool, [UInt8], STUNAddress, STUNAddress)] = []
        let oneWay: Duration = .milliseconds(15)

        init(upgrades: Bool, hostsA: [STUNAddress], relayed: Bool) throws {
            func configuration(_ role: ICERole, _ ufrag: String) throws -> ICEConfiguration {
                ICEConfiguration(
                    role: role, localCredentials: try ICECredentials(ufrag: ufrag, password: "\(ufrag)password\(ufrag)password"),
                    tieBreaker: role == .controlling ? 2 : 1, pacing: .milliseconds(10),
                    nominationDelay: upgrades ? .zero : .seconds(1), randomness: .seeded(ufrag == "AAAA" ? 1 : 2)
                ).upgrading(upgrades)
            }
            a = try ICEAgent(configuration: configuration(.controlling, "AAAA"))
            b = try ICEAgent(configuration: configuration(.controlled, "BBBB"))
            for host in hostsA { try a.addHostCandidate(host, now: .zero) }
            if relayed { try a.addRelayedCandidate(FailoverTests.relayA, mappedAddress: nil, server: FailoverTests.turnServer, now: .zero) }
            try b.addHostCandidate(FailoverTests.hostB, now: .zero)
            let credentialsA = a.configuration.localCredentials, credentialsB = b.configuration.localCredentials
            try a.setRemoteCredentials(ufrag: credentialsB.ufrag, password: credentialsB.password, now: .zero)
            try b.setRemoteCredentials(ufrag: credentialsA.ufrag, password: credentialsA.password, now: .zero)
            for candidate in a.localCandidates { try b.addRemoteCandidate(candidate, now: .zero) }
            for candidate in b.localCandidates { try a.addRemoteCandidate(candidate, now: .zero) }
            a.remoteCandidatesComplete(now: .zero)
            b.remoteCandidatesComplete(now: .zero)
        }

        func alive(_ address: STUNAddress) -> Bool { diesAt[address].map { now < $0 } ?? true }

        mutating func carry(_ transmit: ICETransmit, toB: Bool) {
            let endA = toB ? transmit.from : transmit.to
            guard alive(endA) else { return }
            // A's Binding requests (not its answers to B's) on the relayed pair while it is a backup.
            if toB, endA != a.selectedPair?.localBase, endA == FailoverTests.relayA, transmit.bytes.starts(with: [0x00, 0x01]) {
                checksToBackup += 1
            }
            wire.append((now + oneWay * (endA == FailoverTests.relayA ? 2 : 1), toB, transmit.bytes, transmit.from, transmit.to))
        }

        mutating func pump() {
            while let transmit = a.pollTransmit(now: now) { carry(transmit, toB: true) }
            while let transmit = b.pollTransmit(now: now) { carry(transmit, toB: false) }
            while let event = a.pollEvent() {
                switch event {
                case .selectedPair(let pair): selectionsA.append((now, pair))
                case .selectedPairLost: lostA.append(now)
                case .consentLost: consentLostA = now
                default: break
                }
            }
            while let event = b.pollEvent() {
                switch event {
                case .selectedPair(let pair): selectionsB.append((now, pair))
                case .selectedPairLost: lostB.append(now)
                default: break
                }
            }
        }

        mutating func run(until limit: Duration) {
            while now <= limit {
                pump()
                var next = [a.nextDeadline, b.nextDeadline, wire.map(\.0).min()].compactMap { $0 }.min() ?? limit + .milliseconds(1)
                for time in diesAt.values where time > now { next = min(next, time) }
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

    @Test func whenTheDirectPathDiesBothSidesMoveToTheRelayedPair() throws {
        var pair = try Pair(upgrades: true, hostsA: [Self.wifiA], relayed: true)
        pair.run(until: .seconds(10))
        #expect(pair.a.selectedPair?.localBase == Self.wifiA, "\(String(describing: pair.a.selectedPair))")
        #expect(pair.b.selectedPair?.remote.address == Self.wifiA)
        // The relayed pair is kept alive meanwhile: a check every 4-6 s, not more.
        let backupChecks = pair.checksToBackup
        pair.run(until: .seconds(30))
        #expect((3...6).contains(pair.checksToBackup - backupChecks), "\(pair.checksToBackup - backupChecks) checks in 20 s")

        let dies: Duration = .seconds(30) + .milliseconds(300)
        pair.diesAt[Self.wifiA] = dies
        pair.run(until: .seconds(60))
        let movedA = try #require(pair.selectionsA.last)
        let movedB = try #require(pair.selectionsB.last)
        #expect(movedA.1.localBase == Self.relayA && movedB.1.remote.address == Self.relayA, "\(movedA.1) \(movedB.1)")
        // Within the failover timeout (2.5 s of silence) and a check interval.
        #expect(movedA.0 > dies && movedA.0 - dies < .seconds(4), "\(movedA.0 - dies)")
        #expect(movedB.0 > dies && movedB.0 - dies < .seconds(4), "\(movedB.0 - dies)")
        #expect(pair.lostA.count == 1 && pair.lostB.count == 1)
        // Nothing fails afterwards, and nothing goes back to the dead path.
        #expect(!pair.a.state.isFailed && !pair.b.state.isFailed, "\(pair.a.state) \(pair.b.state)")
        #expect(pair.a.selectedPair?.localBase == Self.relayA && pair.selectionsA.count == 2)
    }

    @Test func aSendErrorMovesAtOnce() throws {
        var pair = try Pair(upgrades: true, hostsA: [Self.wifiA], relayed: true)
        pair.run(until: .seconds(10))
        pair.diesAt[Self.wifiA] = pair.now
        let moved = pair.a.selectedPairUnreachable(now: pair.now)
        #expect(moved)
        pair.pump()
        #expect(pair.selectionsA.last?.1.localBase == Self.relayA)
        let movedAt = pair.now
        pair.run(until: .seconds(20))
        // B follows the nomination at once rather than after its own timeout.
        let movedB = try #require(pair.selectionsB.last)
        #expect(movedB.1.remote.address == Self.relayA && movedB.0 - movedAt < .seconds(3), "\(movedB.0 - movedAt)")
    }

    @Test func aLaptopMovingFromWiFiToEthernetKeepsADirectPath() throws {
        var pair = try Pair(upgrades: true, hostsA: [Self.wifiA, Self.ethernetA], relayed: true)
        pair.run(until: .seconds(10))
        let first = try #require(pair.a.selectedPair?.localBase)
        let other = first == Self.wifiA ? Self.ethernetA : Self.wifiA
        pair.diesAt[first] = .seconds(12)
        pair.run(until: .seconds(30))
        // The other host pair, not the relay: it is the best backup.
        #expect(pair.a.selectedPair?.localBase == other, "\(String(describing: pair.a.selectedPair))")
        #expect(pair.b.selectedPair?.remote.address == other, "\(String(describing: pair.b.selectedPair))")
        #expect(!pair.a.state.isFailed && !pair.b.state.isFailed)
    }

    @Test func withoutABackupPairConsentExpiresAsBefore() throws {
        var pair = try Pair(upgrades: true, hostsA: [Self.wifiA], relayed: false)
        pair.run(until: .seconds(10))
        pair.diesAt[Self.wifiA] = .seconds(10) + .milliseconds(100)
        pair.run(until: .seconds(50))
        #expect(pair.lostA.isEmpty && pair.selectionsA.count == 1)
        let lost = try #require(pair.consentLostA)
        // RFC 7675: 30 s after the last answer.
        #expect(lost > .seconds(38) && lost < .seconds(41), "\(lost)")
        #expect(pair.a.state.isFailed)
    }

    @Test func aStandardAgentDoesNotMove() throws {
        // The browser-facing default: consent on the selected pair only, and
        // no other pair taken when it dies.
        var pair = try Pair(upgrades: false, hostsA: [Self.wifiA], relayed: true)
        pair.run(until: .seconds(10))
        #expect(pair.a.selectedPair?.localBase == Self.wifiA)
        let moved = pair.a.selectedPairUnreachable(now: pair.now)
        #expect(!moved)
        pair.checksToBackup = 0
        pair.diesAt[Self.wifiA] = .seconds(10) + .milliseconds(100)
        pair.run(until: .seconds(50))
        #expect(pair.lostA.isEmpty && pair.selectionsA.count == 1 && pair.checksToBackup == 0)
        #expect(pair.consentLostA != nil && pair.a.state.isFailed)
    }
}
