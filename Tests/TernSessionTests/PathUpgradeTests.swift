import Foundation
import NIOConcurrencyHelpers
import Testing
import TernDTLS
import TernDataChannel
import TernICE
import TernPairing
import TernRendezvous
import TernSDP
import TernTestSupport
@testable import TernSession

/// Start at once, move to the best path, end to end: two drivers with real
/// sockets and real coturn, whose host candidates reach each other only
/// after a while (a direct path that appears later). The session starts
/// relayed, DTLS and SCTP carry messages, and the direct pair takes over
/// mid-stream without a new handshake and without a lost or repeated message.
@Suite(.serialized) struct PathUpgradeEndToEndTests {
    /// Delivers one driver's signals to the other; host candidates are held
    /// back until `release()`.
    final class HoldingWire: Sendable {
        let held = NIOLockedValueBox<(released: Bool, waiting: [PeerMessage])>((false, []))
        let target: ConnectivityDriver
        init(to target: ConnectivityDriver) { self.target = target }

        func signal(_ message: PeerMessage) {
            if case .candidate(_, let line) = message, case .candidate(let candidate)? = try? ICECandidate.parse(line), candidate.type == .host {
                let hold = held.withLockedValue { state -> Bool in
                    if !state.released { state.waiting.append(message) }
                    return !state.released
                }
                if hold { return }
            }
            let target = self.target
            Task { await target.handle(message) }
        }

        func release() async {
            let waiting = held.withLockedValue { state -> [PeerMessage] in
                state.released = true
                defer { state.waiting = [] }
                return state.waiting
            }
            for message in waiting { await target.handle(message) }
        }
    }

    /// Signals go through a box the second driver fills in once started.
    final class Late: Sendable {
        let wire = NIOLockedValueBox<HoldingWire?>(nil)
        let early = NIOLockedValueBox<[PeerMessage]>([])
        func signal(_ message: PeerMessage) {
            if let wire = wire.withLockedValue({ $0 }) {
                wire.signal(message)
            } else {
                early.withLockedValue { $0.append(message) }
            }
        }
        func connect(_ wire: HoldingWire) {
            let pending = early.withLockedValue { early in
                defer { early = [] }
                return early
            }
            self.wire.withLockedValue { $0 = wire }
            for message in pending { wire.signal(message) }
        }
    }

    @Test func aRelayedSessionMovesToTheDirectPairMidStreamWithoutLosingAMessage() async throws {
        let coturn = try await CoturnProcess()
        let turn = ConnectivityDriverTests.credentials(secret: coturn.secret, uris: [coturn.uri()])
        let offererCertificate = try DTLSCertificate.generate()
        let answererCertificate = try DTLSCertificate.generate()
        let toAnswerer = Late(), toOfferer = Late()
        let a = try await ConnectivityDriver.start(
            options: ConnectivityOptions(
                role: .controlling, stun: [], turn: turn, fingerprint: SecureChannelsTests.fingerprint(offererCertificate)),
            signal: { toAnswerer.signal($0) })
        let b = try await ConnectivityDriver.start(
            options: ConnectivityOptions(
                role: .controlled, stun: [], turn: turn, fingerprint: SecureChannelsTests.fingerprint(answererCertificate)),
            signal: { toOfferer.signal($0) })
        let wireToB = HoldingWire(to: b), wireToA = HoldingWire(to: a)
        toAnswerer.connect(wireToB)
        toOfferer.connect(wireToA)

        let started = ContinuousClock.now
        async let pathA = a.connected()
        async let pathB = b.connected()
        let (offererPath, answererPath) = try await (pathA, pathB)
        let connectedAfter = ContinuousClock.now - started
        // At once through the relay: no 1 s wait for a better pair.
        #expect(offererPath.isRelayed && answererPath.isRelayed, "\(offererPath.pair) \(answererPath.pair)")
        #expect(connectedAfter < .seconds(3), "\(connectedAfter)")

        let (offerer, answerer) = try await PathTestTraffic.secure(
            offerer: a, path: offererPath, certificate: offererCertificate,
            answerer: b, path: answererPath, certificate: answererCertificate)
        let stream = try await offerer.open(label: "upgrade")

        // Messages flow; half way the host candidates are let through.
        let changesA = Task { () -> ConnectedPath? in
            for await path in a.pathChanges where !path.isRelayed { return path }
            return nil
        }
        let changesB = Task { () -> ConnectedPath? in
            for await path in b.pathChanges where !path.isRelayed { return path }
            return nil
        }
        let count = 400
        let receiver = PathTestTraffic.receive(count, on: answerer)
        for index in 0..<count {
            try await offerer.send(PathTestTraffic.message(index), on: stream)
            if index == count / 4 {
                await wireToA.release()
                await wireToB.release()
            }
            if index > count / 4 { try await Task.sleep(for: .milliseconds(5)) }
        }
        let seen = try await receiver.value.map(\.number)
        #expect(seen == Array(0..<count), "lost, repeated or out of order: \(seen.count) messages")
        // One DTLS handshake for the whole session: the association is the same.
        let offererEnd = await offerer.endReason(), answererEnd = await answerer.endReason()
        #expect(offererEnd == nil && answererEnd == nil)
        let statistics = try #require(await offerer.statistics())
        // Stragglers on the old path may cost a few retransmissions, not a
        // storm. A loaded machine (CI runs this beside hundreds of tests)
        // adds a retransmission timeout or two of its own.
        #expect(statistics.retransmittedChunks < 100 && statistics.timeouts < 5, "\(statistics)")
        await offerer.close()
        await answerer.close()
        // Closing ends the drivers' path-change streams: nil if no upgrade came.
        await a.close()
        await b.close()
        let upgradedA = await changesA.value
        let upgradedB = await changesB.value
        #expect(upgradedA?.pair.local.type == .host && upgradedA?.pair.remote.type == .host, "\(String(describing: upgradedA?.pair))")
        #expect(upgradedB?.pair.local.type == .host, "\(String(describing: upgradedB?.pair))")
    }
}
