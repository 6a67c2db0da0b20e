import Testing
import TernSTUN
@testable import TernICE

/// What a peer can make the agent hold, at the defaults of
/// `ICEConfiguration` (`maximumRemoteCandidates` 64, `maximumPairs` 100,
/// `maximumLocalCandidates` 32), each driven from the wire or the peer's
/// signalling and checked at its refusal (model: pion/sctp's
/// association_resource_limits_test.go).
@Suite("ICE resource limits")
struct ResourceLimitTests {
    static let defaults = (remotes: 64, pairs: 100, locals: 32)

    @Test func theDefaultsAreTheDocumentedOnes() throws {
        let agent = try makeAgent()
        #expect(agent.configuration.maximumRemoteCandidates == Self.defaults.remotes)
        #expect(agent.configuration.maximumPairs == Self.defaults.pairs)
        #expect(agent.configuration.maximumLocalCandidates == Self.defaults.locals)
    }

    /// RFC 8445 §7.3.1.3: each check from an unknown source makes a
    /// peer-reflexive remote candidate; a flood from 164 sources keeps 64,
    /// and every check is still answered (§7.3.1.2).
    @Test func aFloodOfChecksFromNewSourcesKeepsAtMostTheRemoteLimit() throws {
        var agent = try makeAgent()
        let sent = Self.defaults.remotes + 100
        for i in 0..<sent {
            let source = STUNAddress.ipv4(10, 1, UInt8(i / 200), UInt8(i % 200 + 1), port: 7000)
            let check = try peerCheck(to: agent, id: STUNTransactionID(high: 7, low: UInt64(i)))
            #expect(agent.handleDatagram(check, from: source, toBase: localHost, now: .zero) == .handled)
        }
        #expect(agent.remoteCandidates.count == Self.defaults.remotes)
        #expect(agent.remoteCandidates.allSatisfy { $0.type == .peerReflexive })
        let answers = agent.drainTransmits(now: .zero).filter {
            (try? STUNMessage.decode($0.bytes))?.messageClass == .successResponse
        }
        #expect(answers.count == sent)
        // A signalled candidate meets the same limit.
        #expect(throws: ICEError.limitReached(what: "remote candidates", limit: Self.defaults.remotes)) {
            try agent.addRemoteCandidate(ICECandidate(foundation: "late", priority: 1, address: .ipv4(10, 9, 9, 9, port: 1), type: .host), now: .zero)
        }
    }

    /// RFC 8445 §6.1.2.5: four local bases and the peer's 64 candidates make
    /// 256 pairs; the checklist keeps the 100 of highest priority.
    @Test func theChecklistKeepsTheHighestPairsUpToTheLimit() throws {
        var agent = try makeAgent()
        for i in 1...3 { _ = try agent.addHostCandidate(.ipv4(192, 168, 1, UInt8(10 + i), port: 5000), now: .zero) }
        try agent.setRemoteCredentials(ufrag: peerCredentials.ufrag, password: peerCredentials.password, now: .zero)
        for i in 0..<Self.defaults.remotes {
            try agent.addRemoteCandidate(
                ICECandidate(foundation: "r\(i)", priority: UInt32(1_000 + i), address: .ipv4(10, 2, 0, UInt8(i + 1), port: 9000), type: .host),
                now: .zero)
        }
        let kept = agent.checklist
        #expect(kept.count == Self.defaults.pairs)
        // Every pair left out has a lower priority than every pair kept.
        let lowestKept = try #require(kept.map(\.pair.priority).min())
        var leftOut = 0
        for local in agent.localCandidates {
            for remote in agent.remoteCandidates where !kept.contains(where: { $0.pair.local == local && $0.pair.remote == remote }) {
                leftOut += 1
                #expect(agent.pairPriority(local: local.priority, remote: remote.priority) < lowestKept)
            }
        }
        #expect(leftOut == 4 * Self.defaults.remotes - Self.defaults.pairs)
    }

    /// RFC 8445 §7.2.5.3.1: each answer that maps to an unknown address
    /// makes a peer-reflexive local candidate; answers mapping 64 checks to
    /// 64 addresses leave 32 local candidates (the host one and 31 learned).
    @Test func answersWithNewMappedAddressesKeepAtMostTheLocalLimit() throws {
        var agent = try makeAgent()
        try agent.setRemoteCredentials(ufrag: peerCredentials.ufrag, password: peerCredentials.password, now: .zero)
        for i in 0..<Self.defaults.remotes {
            try agent.addRemoteCandidate(
                ICECandidate(foundation: "r\(i)", priority: UInt32(1_000 + i), address: .ipv4(10, 3, 0, UInt8(i + 1), port: 9000), type: .host),
                now: .zero)
        }
        var now = Duration.zero
        var answered = 0
        while answered < Self.defaults.remotes, now < .seconds(30) {
            for transmit in agent.drainTransmits(now: now) {
                guard let request = try? STUNMessage.decode(transmit.bytes), request.messageClass == .request else { continue }
                let mapped = STUNAddress.ipv4(100, 64, 0, UInt8(answered % 250 + 1), port: 40_000)
                agent.handleDatagram(try peerAnswer(to: transmit, mapped: mapped), from: transmit.to, toBase: transmit.from, now: now)
                answered += 1
            }
            now += .milliseconds(10)
            agent.advanceTime(now: now)
        }
        #expect(answered >= Self.defaults.remotes)
        #expect(agent.localCandidates.count == Self.defaults.locals)
        #expect(agent.localCandidates.filter { $0.type == .peerReflexive }.count == Self.defaults.locals - 1)
    }
}
