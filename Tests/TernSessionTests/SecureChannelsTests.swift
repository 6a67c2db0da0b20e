import Foundation
import Testing
import TernDTLS
import TernDataChannel
import TernRendezvous
import TernSDP
import TernTestSupport
@testable import TernSession

/// The whole stack between two sides in one process: ICE over real UDP
/// sockets on this machine, then DTLS, SCTP and data channels on the
/// selected pair.
@Suite(.serialized) struct SecureChannelsTests {
    struct Sides {
        var offerer: SecureChannels
        var answerer: SecureChannels
        var drivers: [ConnectivityDriver]
    }

    static func fingerprint(_ certificate: DTLSCertificate) -> Fingerprint {
        Fingerprint(algorithm: DTLSFingerprint.algorithm, digest: certificate.fingerprint.bytes)
    }

    /// Connects two drivers, then starts DTLS with the roles the
    /// descriptions give (offer actpass, answer active: the answerer is the
    /// DTLS client) and the fingerprints they carry.
    static func establish(
        expectedByOfferer: DTLSFingerprint? = nil, turn: TURNCredentials? = nil, forceRelay: Bool = false,
        peerMaximumMessageSize: Int = 256 * 1024, offererMaximumMessageSize: Int = 256 * 1024
    ) async throws -> Sides {
        let offererCertificate = try DTLSCertificate.generate()
        let answererCertificate = try DTLSCertificate.generate()
        let toAnswerer = ConnectivityDriverTests.Wire()
        let toOfferer = ConnectivityDriverTests.Wire()
        let a = try await ConnectivityDriver.start(
            options: ConnectivityOptions(role: .controlling, stun: [], turn: turn, forceRelay: forceRelay, fingerprint: fingerprint(offererCertificate)),
            signal: { toAnswerer.signal($0) })
        let b = try await ConnectivityDriver.start(
            options: ConnectivityOptions(role: .controlled, stun: [], turn: turn, forceRelay: forceRelay, fingerprint: fingerprint(answererCertificate)),
            signal: { toOfferer.signal($0) })
        let forwardA = toAnswerer.deliver(to: b)
        let forwardB = toOfferer.deliver(to: a)
        async let pathA = a.connected()
        async let pathB = b.connected()
        let (offererPath, answererPath) = try await (pathA, pathB)
        toAnswerer.input.finish()
        toOfferer.input.finish()
        forwardA.cancel()
        forwardB.cancel()
        // What each side learned from the other's description.
        #expect(offererPath.remoteSetup == .active && answererPath.remoteSetup == .actpass)
        let fromAnswerer = try DTLSFingerprint(bytes: try #require(offererPath.remoteFingerprints.first).digest)
        let fromOfferer = try DTLSFingerprint(bytes: try #require(answererPath.remoteFingerprints.first).digest)
        #expect(fromAnswerer == answererCertificate.fingerprint)
        var offererOptions = SecureChannels.Options(
            role: .server, certificate: offererCertificate, expectedPeerFingerprint: expectedByOfferer ?? fromAnswerer,
            maximumMessageSize: offererMaximumMessageSize)
        offererOptions.peerMaximumMessageSize = peerMaximumMessageSize
        var answererOptions = SecureChannels.Options(role: .client, certificate: answererCertificate, expectedPeerFingerprint: fromOfferer)
        answererOptions.peerMaximumMessageSize = peerMaximumMessageSize
        async let offerer = SecureChannels.establish(over: a, options: offererOptions)
        async let answerer = SecureChannels.establish(over: b, options: answererOptions)
        return Sides(offerer: try await offerer, answerer: try await answerer, drivers: [a, b])
    }

    static func close(_ sides: Sides) async {
        await sides.offerer.close()
        await sides.answerer.close()
        for driver in sides.drivers { await driver.close() }
    }

    static func pattern(_ size: Int, seed: Int) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) }
    }

    /// DTLS's first retransmission comes three ICE round trips after a
    /// flight (at least 100 ms, at most RFC 6347's 1 s), not a second.
    @Test func theHandshakeTimerStartsFromTheRoundTripICEMeasured() {
        typealias Options = SecureChannels.Options
        #expect(Options.handshakeRetransmissionTimeout(pathRoundTrip: nil) == .seconds(1))
        #expect(Options.handshakeRetransmissionTimeout(pathRoundTrip: .milliseconds(53)) == .milliseconds(159))
        #expect(Options.handshakeRetransmissionTimeout(pathRoundTrip: .microseconds(300)) == .milliseconds(100))
        #expect(Options.handshakeRetransmissionTimeout(pathRoundTrip: .milliseconds(400)) == .seconds(1))
    }

    @Test func channelsCarryMessagesBothWaysOverDTLSAndSCTP() async throws {
        let sides = try await Self.establish()
        let stream = try await sides.answerer.open(label: "files", options: DataChannelOptions(protocol: "tern/1"))
        #expect(stream % 2 == 0, "the DTLS client opens even streams")
        var opened: DataChannelEvent?
        for await event in sides.offerer.events {
            opened = event
            break
        }
        #expect(opened == .opened(stream: stream, label: "files", protocol: "tern/1", byPeer: true))
        let sizes = [1, 1163, 64 * 1024, 256 * 1024]
        for (index, size) in sizes.enumerated() {
            try await sides.answerer.send(Self.pattern(size, seed: index), on: stream)
        }
        for (index, size) in sizes.enumerated() {
            let message = try #require(try await sides.offerer.receive())
            #expect(message.stream == stream && message.binary)
            #expect(message.payload == Self.pattern(size, seed: index), "message \(index) of \(size) bytes")
        }
        // And back, as text.
        try await sides.offerer.send(Array("ok".utf8), binary: false, on: stream)
        let reply = try #require(try await sides.answerer.receive())
        #expect(reply == DataChannelMessage(stream: stream, payload: Array("ok".utf8), binary: false))
        await Self.close(sides)
    }

    @Test func channelsWorkOverARelayedPairThroughCoturn() async throws {
        let coturn = try await CoturnProcess()
        let turn = ConnectivityDriverTests.credentials(secret: coturn.secret, uris: [coturn.uri()])
        let sides = try await Self.establish(turn: turn, forceRelay: true)
        let stream = try await sides.offerer.open(label: "relayed")
        let message = Self.pattern(256 * 1024, seed: 3)
        try await sides.offerer.send(message, on: stream)
        let received = try #require(try await sides.answerer.receive())
        #expect(received.payload == message)
        await Self.close(sides)
    }

    @Test func messagesLargerThanThePeerAcceptsAreRefused() async throws {
        let sides = try await Self.establish(peerMaximumMessageSize: 65536)
        let stream = try await sides.offerer.open(label: "small")
        try await sides.offerer.send(Self.pattern(65536, seed: 1), on: stream)
        await #expect {
            try await sides.offerer.send(Self.pattern(65537, seed: 1), on: stream)
        } throws: { error in
            guard case SessionError.secureChannel(let why) = error else { return false }
            return why.contains("larger than the peer accepts")
        }
        let received = try #require(try await sides.answerer.receive())
        #expect(received.payload.count == 65536)
        await Self.close(sides)
    }

    @Test func aMessageLargerThanThisSideAcceptsEndsTheAssociationSayingSo() async throws {
        // A peer that ignores our a=max-message-size (tern never does): the
        // offerer may send 512 KiB, the answerer accepts 256 KiB.
        let sides = try await Self.establish(peerMaximumMessageSize: 512 * 1024, offererMaximumMessageSize: 512 * 1024)
        let stream = try await sides.offerer.open(label: "big")
        try await sides.offerer.send(Self.pattern(300 * 1024, seed: 2), on: stream)
        while (try? await sides.answerer.receive()) != nil {}
        // The transfer's pipe (tern's DataChannelPipe) reads this reason to
        // report a protocol error instead of "the sender closed the channel".
        guard case .secureChannel(let why)? = await sides.answerer.endReason() else {
            Issue.record("the answerer's association did not end with a reason: \(String(describing: await sides.answerer.endReason()))")
            await Self.close(sides)
            return
        }
        #expect(why.hasSuffix("a message larger than the max-message-size"), "\(why)")
        await Self.close(sides)
    }

    @Test func aFingerprintThatDoesNotMatchStopsTheHandshake() async throws {
        let impostor = try DTLSCertificate.generate()
        await #expect {
            _ = try await Self.establish(expectedByOfferer: impostor.fingerprint)
        } throws: { error in
            guard case SessionError.secureChannel(let why) = error else { return false }
            return why.contains("DTLS failed")
        }
    }

    @Test func manyMegabytesFlowWithBackPressure() async throws {
        let sides = try await Self.establish()
        let stream = try await sides.offerer.open(label: "bulk")
        let message = Self.pattern(256 * 1024, seed: 7)
        let count = 64  // 16 MiB
        let started = ContinuousClock.now
        let sender = Task {
            for _ in 0..<count { try await sides.offerer.send(message, on: stream) }
        }
        var received = 0
        while received < count {
            guard let next = try await sides.answerer.receive() else { break }
            #expect(next.payload.count == message.count)
            if next.payload != message { Issue.record("message \(received) differs") }
            received += 1
        }
        try await sender.value
        #expect(received == count)
        let elapsed = ContinuousClock.now - started
        print("[secure-channels] 16 MiB over loopback (debug build) in \(elapsed)")
        await Self.close(sides)
    }

    @Test func batchedSendsArriveInOrderAndAMessageTooLargeEndsTheBatch() async throws {
        let sides = try await Self.establish()
        let stream = try await sides.offerer.open(label: "bulk")
        // 48 distinct 256 KiB messages, 4 per trip to the loop: 12 MiB,
        // far past the high-water mark, so the batches wait their turn.
        let messages = (0..<48).map { Self.pattern(256 * 1024, seed: $0) }
        let sender = Task {
            for start in stride(from: 0, to: messages.count, by: 4) {
                try await sides.offerer.send(contentsOf: Array(messages[start..<start + 4]), on: stream)
            }
        }
        for index in messages.indices {
            let next = try #require(try await sides.answerer.receive())
            if next.payload != messages[index] { Issue.record("message \(index) differs or is out of order") }
        }
        try await sender.value
        // The message the peer cannot take fails the batch; the one before it was queued and arrives.
        let small = Self.pattern(1000, seed: 99)
        await #expect(throws: SessionError.self) {
            try await sides.offerer.send(contentsOf: [small, Self.pattern(256 * 1024 + 1, seed: 1)], on: stream)
        }
        let last = try #require(try await sides.answerer.receive())
        #expect(last.payload == small)
        await Self.close(sides)
    }
}
