import Foundation
import NIOConcurrencyHelpers
import Testing
import TernDTLS
import TernICE
import TernPairing
import TernSTUN
@testable import TernSession

/// The only path dies mid-transfer and a new one appears, end to end: two
/// drivers with real sockets and no TURN, whose host candidates reach each
/// other only through a UDP forwarder in the test (as in
/// PathFailoverEndToEndTests). The session runs direct through it; then
/// the forwarder stops (silently, as a dead Wi-Fi does) and a second one
/// takes its place, known to neither side's old candidates. Both sides
/// restart ICE through the signalling channel (`ice-restart`, whose host
/// candidates the test maps to the new forwarder), move to the new path,
/// and every message arrives once and in order over the same DTLS and SCTP
/// associations.
@Suite(.serialized) struct ICERestartEndToEndHeavyTests {
    typealias Forwarder = PathFailoverEndToEndTests.Forwarder

    /// One side's signals to the other, its IPv4 host candidates replaced by
    /// its stand-in in the current forwarder (other host candidates left
    /// out), in `candidate` and `ice-restart` messages alike.
    final class Wire: Sendable {
        let side: Int
        let forwarder: NIOLockedValueBox<Forwarder>
        let target = NIOLockedValueBox<(driver: ConnectivityDriver?, early: [PeerMessage])>((nil, []))
        let restarts = NIOLockedValueBox<[ICERestartMessage]>([])

        init(side: Int, forwarder: Forwarder) {
            self.side = side
            self.forwarder = NIOLockedValueBox(forwarder)
        }

        func mapped(_ line: String) -> String? {
            guard case .candidate(var candidate)? = try? ICECandidate.parse(line) else { return nil }
            guard candidate.type == .host else { return line }
            guard candidate.address.ipBytes.count == 4,
                  let standIn = forwarder.withLockedValue({ $0 }).standIn(for: side, real: candidate.address)
            else { return nil }
            candidate.address = standIn
            return candidate.sdpAttribute
        }

        func signal(_ message: PeerMessage) {
            var message = message
            switch message {
            case .candidate(let mid, let line):
                guard let line = mapped(line) else { return }
                message = .candidate(mid: mid, candidate: line)
            case .iceRestart(var restart):
                restarts.withLockedValue { $0.append(restart) }
                var seen = Set<String>()
                restart.candidates = restart.candidates.compactMap(mapped).filter { seen.insert($0).inserted }
                message = .iceRestart(restart)
            default:
                break
            }
            let driver = target.withLockedValue { state -> ConnectivityDriver? in
                if state.driver == nil { state.early.append(message) }
                return state.driver
            }
            if let driver { Task { await driver.handle(message) } }
        }

        func connect(_ driver: ConnectivityDriver) {
            let early = target.withLockedValue { state -> [PeerMessage] in
                state.driver = driver
                defer { state.early = [] }
                return state.early
            }
            Task { for message in early { await driver.handle(message) } }
        }
    }

    @Test func theOnlyPathDiesMidTransferAndARestartCarriesItOnANewOne() async throws {
        let first = try await Forwarder()
        let toB = Wire(side: 0, forwarder: first), toA = Wire(side: 1, forwarder: first)
        let drivers = try await PathTestTraffic.connectedDrivers(
            signalFromA: { toB.signal($0) }, signalFromB: { toA.signal($0) },
            attach: { a, b in toB.connect(b); toA.connect(a) })
        let (a, b) = (drivers.a, drivers.b)
        #expect(!drivers.pathA.isRelayed && !drivers.pathB.isRelayed)
        let logA = PathFailoverEndToEndTests.PathLog(), logB = PathFailoverEndToEndTests.PathLog()
        let followA = logA.follow(a), followB = logB.follow(b)

        let (offerer, answerer) = try await PathTestTraffic.secure(
            offerer: a, path: drivers.pathA, certificate: drivers.certificateA,
            answerer: b, path: drivers.pathB, certificate: drivers.certificateB)
        let stream = try await offerer.open(label: "restart")

        let count = 400
        let receiver = PathTestTraffic.receive(count, on: answerer)
        var stoppedAt: ContinuousClock.Instant?
        var second: Forwarder?
        for index in 0..<count {
            try await offerer.send(PathTestTraffic.message(index), on: stream)
            if index == count / 4 {
                // The old path dies; a new one exists that no old candidate reaches.
                first.stop()
                stoppedAt = .now
                let next = try await Forwarder()
                toB.forwarder.withLockedValue { $0 = next }
                toA.forwarder.withLockedValue { $0 = next }
                second = next
            }
            try await Task.sleep(for: .milliseconds(5))
        }
        let seen = try await receiver.value
        #expect(seen.map(\.0) == Array(0..<count), "lost, repeated or out of order: \(seen.count) messages")
        // The same DTLS association and SCTP association throughout.
        let offererEnd = await offerer.endReason(), answererEnd = await answerer.endReason()
        #expect(offererEnd == nil && answererEnd == nil)
        let statistics = try #require(await offerer.statistics())
        let stopped = try #require(stoppedAt)
        let gap = PathTestTraffic.longestGap(seen)
        print("ICE restart: longest gap between messages \(gap); \(statistics)")

        await offerer.close()
        await answerer.close()
        await a.close()
        await b.close()
        await followA.value
        await followB.value
        await first.close()
        await second?.close()
        // Both sides moved because of a restart, one generation, each sent once.
        let movedA = logA.entries.withLockedValue { $0 }.filter { $0.0 > stopped }.map(\.1)
        let movedB = logB.entries.withLockedValue { $0 }.filter { $0.0 > stopped }.map(\.1)
        #expect(movedA.first?.afterRestart == true && movedB.first?.afterRestart == true, "\(movedA.map(\.pair)) \(movedB.map(\.pair))")
        let sentByA = toB.restarts.withLockedValue { $0 }, sentByB = toA.restarts.withLockedValue { $0 }
        #expect(sentByA.map(\.generation) == [1] && sentByB.map(\.generation) == [1], "\(sentByA) \(sentByB)")
        #expect(sentByA.first?.candidates.isEmpty == false)
    }

    /// The only path dies and nothing replaces it: both sides restart ICE,
    /// whose checks find nothing. The session must end on the restart's own
    /// deadline (2.5 s of silence, then the agent's 10 s failure timeout)
    /// with the restart's sentence, not earlier on the data channel's 5 s
    /// silence limit with a sentence that says nothing of the restart.
    @Test func aRestartThatFindsNothingEndsTheSessionOnItsOwnDeadline() async throws {
        let forwarder = try await Forwarder()
        let toB = Wire(side: 0, forwarder: forwarder), toA = Wire(side: 1, forwarder: forwarder)
        let drivers = try await PathTestTraffic.connectedDrivers(
            signalFromA: { toB.signal($0) }, signalFromB: { toA.signal($0) },
            attach: { a, b in toB.connect(b); toA.connect(a) })
        let (a, b) = (drivers.a, drivers.b)
        let (offerer, answerer) = try await PathTestTraffic.secure(
            offerer: a, path: drivers.pathA, certificate: drivers.certificateA,
            answerer: b, path: drivers.pathB, certificate: drivers.certificateB)
        let stream = try await offerer.open(label: "nothing-left")
        // A busy association: messages every 5 ms until the session ends.
        let sending = Task {
            var index = 0
            while true {
                do {
                    try await offerer.send(PathTestTraffic.message(index % 60_000), on: stream)
                } catch {
                    return
                }
                index += 1
                try? await Task.sleep(for: .milliseconds(5))
            }
        }
        let draining = Task { while (try? await answerer.receive()) != nil {} }
        try await Task.sleep(for: .seconds(1))

        forwarder.stop()
        let stopped = ContinuousClock.now
        var ends: [(SessionError, Duration)?] = [nil, nil]
        while ends.contains(where: { $0 == nil }), ContinuousClock.now - stopped < .seconds(25) {
            for (index, channels) in [offerer, answerer].enumerated() where ends[index] == nil {
                if let reason = await channels.endReason() { ends[index] = (reason, ContinuousClock.now - stopped) }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        sending.cancel()
        await offerer.close()
        await answerer.close()
        _ = await sending.value
        _ = await draining.value
        await a.close()
        await b.close()
        await forwarder.close()
        print("ICE restart that found nothing: the sides ended after \(ends.map { $0.map { "\($0.1)" } ?? "-" })")
        for end in ends {
            let (reason, after) = try #require(end, "a side did not end within 25 s of the cut")
            #expect(reason == .connectionLost(ConnectivityCore.restartFoundNothing), "\(reason)")
            // 2.5 s of silence before the restart, then its 10 s.
            #expect(after > .seconds(10) && after < .seconds(16), "\(after)")
        }
        let sentByA = toB.restarts.withLockedValue { $0 }
        #expect(sentByA.map(\.generation) == [1], "\(sentByA)")
    }
}
