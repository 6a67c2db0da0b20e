import Testing
@testable import TernDTLS

/// `DTLSHandshakeDriver` on its own: two OpenSSL sides exchanging what they
/// write through their pipes, one record at a time, as the association
/// hands them over.
@Suite("Handshake driver")
struct HandshakeDriverTests {
    final class Side {
        let driver: DTLSHandshakeDriver
        var step = DTLSHandshakeDriver.Step.inProgress

        init(role: DTLSRole, certificate: DTLSCertificate, expects: DTLSFingerprint) throws {
            driver = try DTLSHandshakeDriver(configuration: .init(role: role, certificate: certificate, expectedPeerFingerprint: expects))
        }

        /// Takes what this side wrote.
        func written() -> [UInt8] {
            defer { driver.pipe.outbound.removeAll() }
            return driver.pipe.outbound
        }

        /// Hands each record of `stream` to OpenSSL and lets the handshake go on.
        func receive(_ stream: [UInt8]) {
            stream.withUnsafeBytes { bytes in
                DTLSRecordFraming.forEachRecord(in: bytes) { _, record in
                    driver.pipe.inbound = record
                    if case .inProgress = step { step = driver.continueHandshake(mtu: 1200) }
                    driver.pipe.inbound = nil
                    return true
                }
            }
        }

        var established: DTLSHandshakeDriver.Established? {
            if case .finished(let established) = step { return established }
            return nil
        }

        var failure: DTLSError? {
            if case .failed(let error) = step { return error }
            return nil
        }
    }

    /// Runs the handshake to its end, at most `rounds` flights each way.
    static func run(_ client: Side, _ server: Side, rounds: Int = 10) {
        client.step = client.driver.continueHandshake(mtu: 1200)
        for _ in 0..<rounds {
            let toServer = client.written()
            server.receive(toServer)
            let toClient = server.written()
            client.receive(toClient)
            if toServer.isEmpty && toClient.isEmpty { return }
        }
    }

    /// A client and a server, each expecting the other's certificate,
    /// handshaken.
    static func connected() throws -> (client: Side, server: Side, clientCertificate: DTLSCertificate, serverCertificate: DTLSCertificate) {
        let clientCertificate = try DTLSCertificate.generate()
        let serverCertificate = try DTLSCertificate.generate()
        let client = try Side(role: .client, certificate: clientCertificate, expects: serverCertificate.fingerprint)
        let server = try Side(role: .server, certificate: serverCertificate, expects: clientCertificate.fingerprint)
        run(client, server)
        return (client, server, clientCertificate, serverCertificate)
    }

    @Test("two drivers finish the handshake and agree on the suite; each knows the other's fingerprint")
    func handshakeFinishes() throws {
        let (client, server, clientCertificate, serverCertificate) = try Self.connected()
        let clientEnd = try #require(client.established)
        let serverEnd = try #require(server.established)
        #expect(clientEnd.peerFingerprint == serverCertificate.fingerprint)
        #expect(serverEnd.peerFingerprint == clientCertificate.fingerprint)
        #expect(clientEnd.cipherSuite == serverEnd.cipherSuite)
        #expect(DTLSAssociation.cipherSuites.contains(clientEnd.cipherSuite))
        #expect(clientEnd.maximumPayload > 0 && clientEnd.maximumPayload < 1200)
        #expect(try client.driver.recordKeys() != nil, "AES-GCM keys for the own record layer")
        #expect(client.driver.remainingTimer() == nil, "no timer once done")
    }

    @Test("application data written through OpenSSL is read on the other side")
    func dataThroughOpenSSL() throws {
        let (client, server, _, _) = try Self.connected()
        try #require(client.established != nil && server.established != nil)
        try [UInt8]([7, 8, 9]).withUnsafeBytes { try client.driver.write($0) }
        let record = client.written()
        var buffer = [UInt8](repeating: 0, count: 64)
        let read = record.withUnsafeBytes { bytes in
            server.driver.pipe.inbound = bytes
            defer { server.driver.pipe.inbound = nil }
            return buffer.withUnsafeMutableBytes { server.driver.read(into: $0) }
        }
        guard case .data(let count) = read else {
            Issue.record("expected data, got \(read)")
            return
        }
        #expect(Array(buffer.prefix(count)) == [7, 8, 9])
        #expect(server.driver.isDrained)
        #expect({ if case .needMore = buffer.withUnsafeMutableBytes({ server.driver.read(into: $0) }) { true } else { false } }())
    }

    @Test("a certificate that is not the expected one fails the handshake on the side that checks it")
    func wrongCertificateFails() throws {
        let clientCertificate = try DTLSCertificate.generate()
        let serverCertificate = try DTLSCertificate.generate()
        let impostor = try DTLSCertificate.generate()
        let client = try Side(role: .client, certificate: clientCertificate, expects: impostor.fingerprint)
        let server = try Side(role: .server, certificate: serverCertificate, expects: clientCertificate.fingerprint)
        Self.run(client, server)
        #expect(client.failure == .fingerprintMismatch(received: serverCertificate.fingerprint))
        #expect(server.established == nil)
    }

    @Test("while waiting for the peer, OpenSSL's retransmission timer runs")
    func timerRunsDuringTheHandshake() throws {
        let client = try Side(role: .client, certificate: try DTLSCertificate.generate(), expects: try DTLSCertificate.generate().fingerprint)
        client.step = client.driver.continueHandshake(mtu: 1200)
        #expect(!client.written().isEmpty, "the ClientHello")
        let remaining = try #require(client.driver.remainingTimer())
        #expect(remaining > .zero && remaining <= .seconds(1))
        guard case .notDue = client.driver.handleTimeout() else {
            Issue.record("nothing is due a second early")
            return
        }
    }
}
