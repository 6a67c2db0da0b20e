import Foundation
import NIOCore
import Testing
import TernDTLS
import TernRendezvous
import TernSDP
@testable import TernSession

/// SecureChannels against a peer that completes DTLS and then ignores SCTP:
/// the association stage has its own limit.
@Suite(.serialized) struct StalledChannelsTests {
    /// A DTLS endpoint on a driver's selected pair that answers the
    /// handshake and drops every record after it (no SCTP).
    final class DTLSOnlyPeer: @unchecked Sendable {
        let driver: ConnectivityDriver
        let dtls: DTLSAssociation
        let origin = NIODeadline.now()
        var ticker: RepeatedTask?
        /// The handshake completed (read on the loop).
        var handshakeDone = false

        init(driver: ConnectivityDriver, dtls: DTLSAssociation) {
            self.driver = driver
            self.dtls = dtls
        }

        func now() -> Duration {
            .nanoseconds(Int64(NIODeadline.now().uptimeNanoseconds - origin.uptimeNanoseconds))
        }

        func start() async throws {
            try await driver.loop.submit {
                self.dtls.applicationDataHandler = { _ in }
                self.driver.setApplicationHandler(
                    bytes: { self.dtls.handleDatagram(bytes: $0, now: self.now()) }, readComplete: { self.flush() })
                self.dtls.start(now: self.now())
                self.flush()
                self.ticker = self.driver.loop.scheduleRepeatedTask(initialDelay: .milliseconds(50), delay: .milliseconds(50)) { _ in
                    self.dtls.advanceTime(now: self.now())
                    self.flush()
                }
            }.get()
        }

        func stop() async {
            _ = try? await driver.loop.submit { self.ticker?.cancel() }.get()
        }

        /// On the loop: events are noted and dropped, datagrams go out.
        func flush() {
            while let event = dtls.pollEvent() {
                if case .connected = event { handshakeDone = true }
            }
            dtls.drainTransmit { datagrams, lengths in
                var buffer = driver.allocateBuffer(capacity: datagrams.count)
                buffer.writeBytes(datagrams)
                driver.sendApplication(buffer, lengths: lengths)
            }
            driver.flushApplication()
        }
    }

    @Test func aPeerThatCompletesDTLSButNeverSCTPIsGivenUpOnAtTheAssociationLimit() async throws {
        let offererCertificate = try DTLSCertificate.generate()
        let answererCertificate = try DTLSCertificate.generate()
        let toAnswerer = ConnectivityDriverTests.Wire()
        let toOfferer = ConnectivityDriverTests.Wire()
        let a = try await ConnectivityDriver.start(
            options: ConnectivityOptions(role: .controlling, stun: [], turn: nil, fingerprint: SecureChannelsTests.fingerprint(offererCertificate)),
            signal: { toAnswerer.signal($0) })
        let b = try await ConnectivityDriver.start(
            options: ConnectivityOptions(role: .controlled, stun: [], turn: nil, fingerprint: SecureChannelsTests.fingerprint(answererCertificate)),
            signal: { toOfferer.signal($0) })
        let forwardA = toAnswerer.deliver(to: b)
        let forwardB = toOfferer.deliver(to: a)
        async let pathA = a.connected()
        async let pathB = b.connected()
        _ = try await (pathA, pathB)
        toAnswerer.input.finish()
        toOfferer.input.finish()
        forwardA.cancel()
        forwardB.cancel()

        let peer = DTLSOnlyPeer(driver: a, dtls: try DTLSAssociation(configuration: .init(
            role: .server, certificate: offererCertificate, expectedPeerFingerprint: answererCertificate.fingerprint)))
        try await peer.start()
        var options = SecureChannels.Options(role: .client, certificate: answererCertificate, expectedPeerFingerprint: offererCertificate.fingerprint)
        options.limits.association = .seconds(1)
        let started = ContinuousClock.now
        await #expect {
            _ = try await SecureChannels.establish(over: b, options: options)
        } throws: { error in
            guard case SessionError.connectionLost(let why) = error else { return false }
            return why == "the other side did not set up the data channels (SCTP) within 1 s"
        }
        #expect(ContinuousClock.now - started < .seconds(4))
        #expect(try await a.loop.submit { peer.handshakeDone }.get(), "the peer did complete DTLS")
        await peer.stop()
        await a.close()
        await b.close()
    }
}
