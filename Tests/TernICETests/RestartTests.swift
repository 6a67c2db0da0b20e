import Testing
import TernICE
import TernSTUN

/// ICE restart (RFC 8445 §9) when the only path dies: two agents on a
/// virtual clock, A with one host address that stops carrying anything at a
/// given time and a new one that appears then (a laptop leaving its Wi-Fi
/// for Ethernet), B with one host address, no relay (no backup pair). The
/// restart's credentials and candidates go through a simulated mailbox, as
/// the driver sends them (`ice-restart`), with the generations settling who
/// answers whom.
struct RestartTests {
    static let wifiA = STUNAddress.ipv4(10, 0, 1, 2, port: 40000)
    static let ethernetA = STUNAddress.ipv4(10, 0, 3, 2, port: 40002)
    static let hostB = STUNAddress.ipv4(10, 0, 2, 2, port: 40001)

    /// One side's view of the simulation: its agent, its addresses, what it selected.
    struct Side {
        var agent: ICEAgent
        var generations = ICERestartGenerations()
        var selections: [(Duration, ICECandidatePair)] = []
        /// `selectedPair` was nil at some step after the first selection.
        var lostThePath = false
        var failedAt: Duration?
        /// Whether this side restarts by itself when `restartAdvised`.
        var restartsWhenAdvised = true
        var seed: UInt64

        /// RFC 8445 §9: new credentials, then every current address again.
        mutating func restart(addresses: [STUNAddress], now: Duration) throws -> Announcement {
            var random = SplitMix(seed &+ UInt64(agent.restarts) &+ 1)
            try agent.restart(localCredentials: ICECredentials.random(using: &random), now: now)
            for address in addresses { try agent.addHostCandidate(address, now: now) }
            return Announcement(
                generation: generations.local, credentials: agent.configuration.localCredentials, candidates: agent.localCandidates)
        }
    }

    struct Announcement {
        var generation: Int
        var credentials: ICECredentials
        var candidates: [ICECandidate]
    }

    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        init(_ seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    struct Network {
        var a: Side
        var b: Side
        var now: Duration = .zero
        /// When each address starts and stops carrying datagrams.
        var appearsAt: [STUNAddress: Duration] = [:]
        var diesAt: [STUNAddress: Duration] = [:]
        var wire: [(at: Duration, toB: Bool, ICETransmit)] = []
        var mailbox: [(at: Duration, toB: Bool, Announcement)] = []
        let oneWay: Duration = .milliseconds(15)
        /// The relay's latency, one way.
        let mailboxDelay: Duration = .milliseconds(40)

        init() throws {
            func configuration(_ role: ICERole, _ ufrag: String) throws -> ICEConfiguration {
                ICEConfiguration(
                    role: role, localCredentials: try ICECredentials(ufrag: ufrag, password: "\(ufrag)password\(ufrag)password"),
                    tieBreaker: role == .controlling ? 2 : 1, pacing: .milliseconds(10),
                    nominationDelay: .zero, randomness: .seeded(ufrag == "AAAA" ? 1 : 2)
                ).upgrading(true)
            }
            a = Side(agent: try ICEAgent(configuration: configuration(.controlling, "AAAA")), seed: 100)
            b = Side(agent: try ICEAgent(configuration: configuration(.controlled, "BBBB")), seed: 200)
            try a.agent.addHostCandidate(RestartTests.wifiA, now: .zero)
            try b.agent.addHostCandidate(RestartTests.hostB, now: .zero)
            let credentialsA = a.agent.configuration.localCredentials, credentialsB = b.agent.configuration.localCredentials
            try a.agent.setRemoteCredentials(ufrag: credentialsB.ufrag, password: credentialsB.password, now: .zero)
            try b.agent.setRemoteCredentials(ufrag: credentialsA.ufrag, password: credentialsA.password, now: .zero)
            for candidate in a.agent.localCandidates { try b.agent.addRemoteCandidate(candidate, now: .zero) }
            for candidate in b.agent.localCandidates { try a.agent.addRemoteCandidate(candidate, now: .zero) }
            a.agent.remoteCandidatesComplete(now: .zero)
            b.agent.remoteCandidatesComplete(now: .zero)
            appearsAt[RestartTests.ethernetA] = .seconds(1000)
        }

        func alive(_ address: STUNAddress) -> Bool {
            (appearsAt[address].map { now >= $0 } ?? true) && (diesAt[address].map { now < $0 } ?? true)
        }

        func addresses(ofA: Bool) -> [STUNAddress] {
            (ofA ? [RestartTests.wifiA, RestartTests.ethernetA] : [RestartTests.hostB]).filter(alive)
        }

        mutating func pump() throws {
            while let transmit = a.agent.pollTransmit(now: now) {
                if alive(transmit.from) { wire.append((now + oneWay, true, transmit)) }
            }
            while let transmit = b.agent.pollTransmit(now: now) {
                if alive(transmit.from) { wire.append((now + oneWay, false, transmit)) }
            }
            for toB in [true, false] {
                var side = toB ? a : b
                while let event = side.agent.pollEvent() {
                    switch event {
                    case .selectedPair(let pair): side.selections.append((now, pair))
                    case .stateChanged(.failed): side.failedAt = side.failedAt ?? now
                    default: break
                    }
                }
                if !side.selections.isEmpty, side.agent.selectedPair == nil { side.lostThePath = true }
                if side.restartsWhenAdvised, side.agent.restartAdvised(now: now) {
                    _ = side.generations.begin()
                    let announcement = try side.restart(addresses: addresses(ofA: toB), now: now)
                    mailbox.append((now + mailboxDelay, toB, announcement))
                }
                if toB { a = side } else { b = side }
            }
        }

        /// What the driver does with the peer's `ice-restart`.
        mutating func deliver(_ announcement: Announcement, toB: Bool) throws {
            var side = toB ? b : a
            switch side.generations.peerAnnounced(announcement.generation) {
            case .ignore:
                return
            case .restartAndAnswer:
                let own = try side.restart(addresses: addresses(ofA: !toB), now: now)
                mailbox.append((now + mailboxDelay, !toB, own))
            case .adopt:
                break
            }
            try side.agent.setRemoteCredentials(ufrag: announcement.credentials.ufrag, password: announcement.credentials.password, now: now)
            for candidate in announcement.candidates { try side.agent.addRemoteCandidate(candidate, now: now) }
            side.agent.remoteCandidatesComplete(now: now)
            if toB { b = side } else { a = side }
        }

        mutating func run(until limit: Duration) throws {
            while now <= limit {
                try pump()
                var next = [a.agent.nextDeadline, b.agent.nextDeadline,
                            a.restartsWhenAdvised ? a.agent.restartDeadline : nil, b.restartsWhenAdvised ? b.agent.restartDeadline : nil,
                            wire.map(\.at).min(), mailbox.map(\.at).min()].compactMap { $0 }.filter { $0 >= now }.min()
                    ?? limit + .milliseconds(1)
                for time in Array(diesAt.values) + Array(appearsAt.values) where time > now { next = min(next, time) }
                guard next <= limit else { return }
                now = max(now, next)
                let due = wire.filter { $0.at <= now }
                wire.removeAll { $0.at <= now }
                for (_, toB, transmit) in due {
                    if toB {
                        guard alive(transmit.to) else { continue }
                        _ = b.agent.handleDatagram(transmit.bytes, from: transmit.from, toBase: transmit.to, now: now)
                    } else {
                        guard alive(transmit.to) else { continue }
                        _ = a.agent.handleDatagram(transmit.bytes, from: transmit.from, toBase: transmit.to, now: now)
                    }
                }
                let messages = mailbox.filter { $0.at <= now }
                mailbox.removeAll { $0.at <= now }
                for (_, toB, announcement) in messages { try deliver(announcement, toB: toB) }
                a.agent.advanceTime(now: now)
                b.agent.advanceTime(now: now)
            }
        }
    }

    @Test func whenTheOnlyPathDiesARestartMovesBothSidesToTheNewAddress() throws {
        var network = try Network()
        try network.run(until: .seconds(10))
        let first = try #require(network.a.agent.selectedPair)
        #expect(first.localBase == Self.wifiA && network.b.agent.selectedPair?.remote.address == Self.wifiA)
        #expect(!network.a.agent.restartAdvised(now: network.now), "a live path needs no restart")

        let dies: Duration = .seconds(10) + .milliseconds(300)
        network.diesAt[Self.wifiA] = dies
        network.appearsAt[Self.ethernetA] = dies
        try network.run(until: .seconds(30))

        let movedA = try #require(network.a.selections.last)
        let movedB = try #require(network.b.selections.last)
        #expect(movedA.1.localBase == Self.ethernetA && movedB.1.remote.address == Self.ethernetA, "\(movedA.1) \(movedB.1)")
        // Silence for the failover timeout (2.5 s) after the last answer,
        // then a mailbox round trip and a few checks.
        #expect(movedA.0 - dies < .seconds(4) && movedB.0 - dies < .seconds(4), "\(movedA.0 - dies) \(movedB.0 - dies)")
        // Both sides restarted exactly once (both noticed the silence; the
        // generations made it one restart), and neither ever had no path.
        #expect(network.a.agent.restarts == 1 && network.b.agent.restarts == 1, "\(network.a.agent.restarts) \(network.b.agent.restarts)")
        #expect(network.a.generations.local == 1 && network.b.generations.local == 1)
        #expect(!network.a.lostThePath && !network.b.lostThePath)
        #expect(network.a.failedAt == nil && network.b.failedAt == nil)
        #expect(network.a.selections.count == 2 && network.b.selections.count == 2)
        #expect(!network.a.agent.isRestarting && !network.b.agent.isRestarting)
        // The new path carries consent as the first did.
        #expect(network.a.agent.state == .completed && network.b.agent.state == .completed, "\(network.a.agent.state)")
    }

    @Test func onlyOneSideNoticingIsEnough() throws {
        var network = try Network()
        network.b.restartsWhenAdvised = false
        try network.run(until: .seconds(10))
        let dies: Duration = .seconds(10) + .milliseconds(300)
        network.diesAt[Self.wifiA] = dies
        network.appearsAt[Self.ethernetA] = dies
        try network.run(until: .seconds(30))
        #expect(network.a.selections.last?.1.localBase == Self.ethernetA)
        #expect(network.b.selections.last?.1.remote.address == Self.ethernetA)
        // B restarted on A's announcement, and answered it.
        #expect(network.b.agent.restarts == 1 && network.b.generations.remote == 1)
        #expect(network.a.failedAt == nil && network.b.failedAt == nil)
    }

    @Test func theOldPathStaysSelectedUntilTheNewOneWorks() throws {
        var network = try Network()
        try network.run(until: .seconds(10))
        let old = try #require(network.a.agent.selectedPair)
        var random = SplitMix(7)
        try network.a.agent.restart(localCredentials: ICECredentials.random(using: &random), now: network.now)
        #expect(network.a.agent.isRestarting)
        #expect(network.a.agent.selectedPair == old)
        #expect(network.a.agent.state == .checking)
        #expect(network.a.agent.localCandidates.isEmpty && network.a.agent.remoteCandidates.isEmpty)
        // With no answer from the peer, the restart fails after the failure
        // timeout, as the first checks would.
        let restartedAt = network.now
        network.b.restartsWhenAdvised = false
        network.a.restartsWhenAdvised = false
        network.diesAt[Self.hostB] = restartedAt
        try network.run(until: restartedAt + .seconds(12))
        let failed = try #require(network.a.failedAt)
        #expect(failed - restartedAt >= .seconds(10) && failed - restartedAt < .seconds(11), "\(failed - restartedAt)")
        #expect(network.a.agent.selectedPair == nil)
    }

    @Test func checksWithTheOldCredentialsAreRefused() throws {
        var network = try Network()
        try network.run(until: .seconds(10))
        // B as it was before the restart: its checks name A's old ufrag and are signed with A's old password.
        var oldB = network.b.agent
        var random = SplitMix(9)
        try network.a.agent.restart(localCredentials: ICECredentials.random(using: &random), now: network.now)
        try network.a.agent.addHostCandidate(Self.wifiA, now: network.now)
        while network.a.agent.pollTransmit(now: network.now) != nil {}
        var refused = 0
        var time = network.now
        while refused == 0, time < network.now + .seconds(10) {
            time += .milliseconds(100)
            while let check = oldB.pollTransmit(now: time) {
                guard check.bytes.starts(with: [0x00, 0x01]) else { continue }
                let outcome = network.a.agent.handleDatagram(check.bytes, from: check.from, toBase: check.to, now: time)
                guard case .dropped(.unauthenticated) = outcome else {
                    Issue.record("a check with the old credentials was \(outcome)")
                    return
                }
                let polled = network.a.agent.pollTransmit(now: time)
                let answer = try #require(polled)
                #expect(try STUNMessage.decode(answer.bytes).errorCode?.code == 401)
                refused += 1
            }
        }
        #expect(refused > 0, "the old agent sent no check within 10 s")
        #expect(network.a.agent.remoteCandidates.isEmpty, "nothing was learned from a refused check")
    }

    @Test func aRestartNeedsNewCredentialsAndAFailedAgentDoesNotRestart() throws {
        var network = try Network()
        let same = network.a.agent.configuration.localCredentials
        #expect(throws: ICEError.self) { try network.a.agent.restart(localCredentials: same, now: .zero) }
        let halfNew = try ICECredentials(ufrag: "CCCC", password: same.password)
        #expect(throws: ICEError.self) { try network.a.agent.restart(localCredentials: halfNew, now: .zero) }
        #expect(network.a.agent.restarts == 0)
        // The peer's credentials change only after a restart on this side.
        #expect(throws: ICEError.self) {
            try network.a.agent.setRemoteCredentials(ufrag: "DDDD", password: "DDDDpasswordDDDDpassword", now: .zero)
        }
    }

    @Test func noRestartIsAdvisedWhileABackupLivesOrForAStandardAgent() throws {
        // A standard agent (a browser's peer) never asks for one.
        var standard = try ICEAgent(configuration: ICEConfiguration(
            role: .controlling, localCredentials: try ICECredentials(ufrag: "SSSS", password: "SSSSpasswordSSSSpassword"),
            tieBreaker: 3, randomness: .seeded(3)))
        try standard.addHostCandidate(Self.wifiA, now: .zero)
        #expect(standard.restartDeadline == nil && !standard.restartAdvised(now: .seconds(100)))

        var network = try Network()
        try network.run(until: .seconds(10))
        let deadline = try #require(network.a.agent.restartDeadline)
        // 2.5 s after the latest answer on the selected pair, which comes about every second.
        #expect(deadline > network.now && deadline - network.now <= .milliseconds(2500), "\(deadline - network.now)")
        #expect(!network.a.agent.restartAdvised(now: network.now))
    }

    @Test func generationsSettleSimultaneousRestarts() {
        var a = ICERestartGenerations(), b = ICERestartGenerations()
        // Both start generation 1 at once: each adopts the other's.
        let fromA = a.begin(), fromB = b.begin()
        #expect(!a.peerIsCurrent)
        #expect(b.peerAnnounced(fromA) == .adopt && a.peerAnnounced(fromB) == .adopt)
        #expect(a.peerIsCurrent && b.peerIsCurrent)
        // A starts 2 alone: B restarts and answers with 2, which A adopts.
        let second = a.begin()
        #expect(b.peerAnnounced(second) == .restartAndAnswer && b.local == 2)
        #expect(a.peerAnnounced(b.local) == .adopt)
        // A repeat or an old generation is ignored.
        #expect(a.peerAnnounced(2) == .ignore && b.peerAnnounced(1) == .ignore)
        // A's answer to 2 crossed B starting 3: B ignores nothing newer than its own.
        let third = b.begin()
        #expect(a.peerAnnounced(third) == .restartAndAnswer && b.peerAnnounced(a.local) == .adopt)
        #expect(a.local == 3 && b.local == 3 && a.peerIsCurrent && b.peerIsCurrent)
    }
}
