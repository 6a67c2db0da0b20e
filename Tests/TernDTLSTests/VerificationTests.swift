import Testing
import TernDTLS

@Suite("The peer's certificate must have the fingerprint from its SDP (RFC 8842 §5.1)")
struct VerificationTests {
    @Test("a wrong expected fingerprint fails the handshake on the side that checks",
          arguments: [Pair.Side.client, .server])
    func wrongFingerprintFailsTheHandshake(checker: Pair.Side) throws {
        let impostor = try DTLSCertificate.generate().fingerprint
        let pair = try Pair(
            clientExpects: checker == .client ? impostor : nil,
            serverExpects: checker == .server ? impostor : nil
        )
        let other: Pair.Side = checker == .client ? .server : .client
        let presented = checker == .client ? pair.serverCertificate.fingerprint : pair.clientCertificate.fingerprint

        // The side that has not failed yet tries to send at every step.
        pair.start()
        for _ in 0..<20 {
            for side in [Pair.Side.client, .server] {
                #expect(throws: DTLSError.notConnected) { try pair.association(side).write([0x42]) }
            }
            pair.pump(limit: 1)
        }

        // The checking side names the certificate it refused ...
        #expect(pair.association(checker).failure == .fingerprintMismatch(received: presented))
        #expect(pair.takeEvents(checker) == [.failed(.fingerprintMismatch(received: presented))])
        // ... and tells the peer with a fatal bad_certificate alert (RFC 5246 §7.2.2).
        #expect(pair.association(other).failure == .peerAlert(42))
        #expect(pair.takeEvents(other) == [.failed(.peerAlert(42))])
        // Neither side ever connected or delivered data, and no application
        // data record (type 23) was ever sent.
        #expect(!pair.client.isConnected && !pair.server.isConnected)
        #expect(pair.log.allSatisfy { RecordHeader.all(in: $0.bytes).allSatisfy { $0.type != 23 } })
        #expect(pair.client.nextDeadline == nil && pair.server.nextDeadline == nil)
        #expect(pair.client.failure?.reason.isEmpty == false)
    }

    @Test func theCheckingSideNeverSendsItsFinished() throws {
        // The client checks (flight 4) before it sends flight 5: nothing
        // encrypted (epoch 1) ever leaves it.
        let pair = try Pair(clientExpects: try DTLSCertificate.generate().fingerprint)
        pair.handshake()
        let clientRecords = pair.log.filter { $0.from == .client }.flatMap { RecordHeader.all(in: $0.bytes) }
        #expect(clientRecords.allSatisfy { $0.epoch == 0 })
        #expect(clientRecords.contains { $0.type == 21 }) // the alert
        #expect(!clientRecords.contains { $0.type == 20 }) // no ChangeCipherSpec
    }

    @Test func failureReasonsAreSentences() {
        let fingerprint = try? DTLSFingerprint(bytes: [UInt8](repeating: 0xAB, count: 32))
        let errors: [DTLSError] = [
            .peerAlert(42), .peerAlert(0), .peerAlert(200), .handshakeTimedOut, .notConnected,
            .payloadTooLarge(size: 2000, maximum: 1163), .peerCertificateMissing,
        ] + (fingerprint.map { [.fingerprintMismatch(received: $0)] } ?? [])
        for error in errors {
            #expect(!error.reason.isEmpty)
            #expect(error.description == error.reason)
        }
        #expect(DTLSError.peerAlert(42).reason.contains("bad_certificate"))
    }
}
