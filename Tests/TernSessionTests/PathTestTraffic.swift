import Testing
import TernDTLS
import TernPairing
@testable import TernSession

/// What the end-to-end path tests (PathUpgrade, PathFailover, ICE restart)
/// share: DTLS, SCTP and data channels over two connected drivers, and a
/// stream of 8 KiB messages numbered in their first two bytes.
enum PathTestTraffic {
    static let size = 8 * 1024

    /// Two connected drivers without TURN, `a` controlling and `b`
    /// controlled, each with a fresh certificate; what each signals goes
    /// to `signalFromA` and `signalFromB`, and `attach` hands each driver
    /// to the wire that feeds it.
    struct Drivers {
        let a: ConnectivityDriver, b: ConnectivityDriver
        let pathA: ConnectedPath, pathB: ConnectedPath
        let certificateA: DTLSCertificate, certificateB: DTLSCertificate
    }

    static func connectedDrivers(
        signalFromA: @escaping @Sendable (PeerMessage) -> Void, signalFromB: @escaping @Sendable (PeerMessage) -> Void,
        attach: (_ a: ConnectivityDriver, _ b: ConnectivityDriver) -> Void
    ) async throws -> Drivers {
        let certificateA = try DTLSCertificate.generate(), certificateB = try DTLSCertificate.generate()
        let a = try await ConnectivityDriver.start(
            options: ConnectivityOptions(role: .controlling, stun: [], turn: nil, fingerprint: SecureChannelsTests.fingerprint(certificateA)),
            signal: signalFromA)
        let b = try await ConnectivityDriver.start(
            options: ConnectivityOptions(role: .controlled, stun: [], turn: nil, fingerprint: SecureChannelsTests.fingerprint(certificateB)),
            signal: signalFromB)
        attach(a, b)
        async let pathA = a.connected()
        async let pathB = b.connected()
        let (connectedA, connectedB) = try await (pathA, pathB)
        return Drivers(a: a, b: b, pathA: connectedA, pathB: connectedB, certificateA: certificateA, certificateB: certificateB)
    }

    /// Secure channels over two connected drivers, each side expecting the
    /// certificate fingerprint the other's description carried.
    static func secure(
        offerer a: ConnectivityDriver, path offererPath: ConnectedPath, certificate offererCertificate: DTLSCertificate,
        answerer b: ConnectivityDriver, path answererPath: ConnectedPath, certificate answererCertificate: DTLSCertificate
    ) async throws -> (offerer: SecureChannels, answerer: SecureChannels) {
        let fromAnswerer = try DTLSFingerprint(bytes: try #require(offererPath.remoteFingerprints.first).digest)
        let fromOfferer = try DTLSFingerprint(bytes: try #require(answererPath.remoteFingerprints.first).digest)
        async let offerer = SecureChannels.establish(
            over: a, options: SecureChannels.Options(role: .server, certificate: offererCertificate, expectedPeerFingerprint: fromAnswerer))
        async let answerer = SecureChannels.establish(
            over: b, options: SecureChannels.Options(role: .client, certificate: answererCertificate, expectedPeerFingerprint: fromOfferer))
        return try await (offerer, answerer)
    }

    /// Message `index`: its number in the first two bytes, its low byte in every other.
    static func message(_ index: Int) -> [UInt8] {
        var payload = [UInt8](repeating: UInt8(index & 0xff), count: size)
        payload[0] = UInt8(index >> 8)
        payload[1] = UInt8(index & 0xff)
        return payload
    }

    /// Receives `count` numbered messages, each with when it arrived; every
    /// body is checked.
    static func receive(_ count: Int, on channels: SecureChannels) -> Task<[(number: Int, at: ContinuousClock.Instant)], Error> {
        Task {
            var seen: [(number: Int, at: ContinuousClock.Instant)] = []
            while seen.count < count, let message = try await channels.receive() {
                let bytes = message.payload
                seen.append((Int(bytes[0]) << 8 | Int(bytes[1]), .now))
                #expect(bytes.count == size && bytes[2...].allSatisfy { $0 == bytes[1] })
            }
            return seen
        }
    }

    /// The longest time between two messages as the receiver saw them.
    static func longestGap(_ seen: [(number: Int, at: ContinuousClock.Instant)]) -> Duration {
        seen.indices.dropFirst().map { seen[$0].at - seen[$0 - 1].at }.max() ?? .zero
    }
}
