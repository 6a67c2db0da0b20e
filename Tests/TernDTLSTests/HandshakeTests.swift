import Testing
import TernDTLS

@Suite("Handshake (RFC 6347 §4.2), roles (RFC 8842 §5) and the MTU")
struct HandshakeTests {
    @Test func completesAndEachSideSeesThePeersFingerprint() throws {
        let pair = try Pair()
        pair.handshake()

        #expect(pair.takeEvents(.client) == [.connected(peerFingerprint: pair.serverCertificate.fingerprint)])
        #expect(pair.takeEvents(.server) == [.connected(peerFingerprint: pair.clientCertificate.fingerprint)])
        #expect(pair.client.isConnected && pair.server.isConnected)
        #expect(pair.client.peerFingerprint == pair.serverCertificate.fingerprint)
        #expect(pair.server.peerFingerprint == pair.clientCertificate.fingerprint)
        // No timers once connected: DTLS 1.2 has none after the handshake.
        #expect(pair.client.nextDeadline == nil)
        #expect(pair.server.nextDeadline == nil)
        #expect(pair.client.counters.malformedDatagrams == 0)
        #expect(pair.server.counters.malformedDatagrams == 0)
        #expect(pair.client.counters.timerRetransmissions == 0)
    }

    @Test func negotiatesAnECDSAAEADSuiteOverDTLS12() throws {
        let pair = try Pair()
        pair.handshake()
        let suite = try #require(pair.client.cipherSuite)
        #expect(DTLSAssociation.cipherSuites.contains(suite))
        #expect(pair.server.cipherSuite == suite)

        // The ClientHello offers exactly the three suites (plus the
        // renegotiation SCSV OpenSSL always adds, RFC 5746 §3.3).
        let hello = try #require(pair.log.first { $0.from == .client }?.bytes)
        let offered = try #require(Self.cipherSuites(inClientHello: hello))
        #expect(Set(offered.filter { $0 != 0x00FF }) == [0xC02B, 0xC02C, 0xCCA9])
    }

    @Test func serverWaitsForTheClientHello() throws {
        let pair = try Pair()
        pair.server.start(now: pair.now)
        #expect(pair.server.pollTransmit() == nil)
        #expect(pair.server.nextDeadline != nil) // the handshake deadline
        pair.client.start(now: pair.now)
        pair.pump()
        #expect(pair.client.isConnected && pair.server.isConnected)
    }

    @Test func aServerStartsOnItsFirstDatagram() throws {
        let pair = try Pair()
        pair.client.start(now: pair.now) // the server's start is never called
        pair.pump()
        #expect(pair.client.isConnected && pair.server.isConnected)
    }

    @Test func aClientIgnoresDatagramsBeforeStart() throws {
        let pair = try Pair()
        pair.client.handleDatagram([22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], now: pair.now)
        #expect(pair.client.counters.ignoredDatagrams == 1)
        #expect(pair.client.pollTransmit() == nil)
        #expect(pair.client.pollEvent() == nil)
    }

    @Test("every datagram fits the MTU, certificate flight included", arguments: [1200, 600, 256])
    func everyDatagramFitsTheMTU(mtu: Int) throws {
        let pair = try Pair(configure: { $0.mtu = mtu })
        pair.handshake()
        try #require(pair.client.isConnected && pair.server.isConnected)

        // Exchange the largest records too, and a close.
        let largest = try #require(pair.client.maximumPayload)
        try pair.client.write([UInt8](repeating: 7, count: largest))
        try pair.server.write([UInt8](repeating: 8, count: largest))
        pair.pump()
        pair.client.close()
        pair.pump()

        #expect(!pair.log.isEmpty)
        for sent in pair.log {
            #expect(sent.bytes.count <= mtu, "a \(sent.bytes.count)-byte datagram from the \(sent.from)")
        }
        #expect(pair.client.counters.oversizedDatagrams == 0)
        #expect(pair.server.counters.oversizedDatagrams == 0)
        // The server's certificate needs more than one record at small MTUs
        // and is fragmented (RFC 6347 §4.2.3), not sent oversized.
        let serverHandshakeRecords = pair.log.filter { $0.from == .server }
            .flatMap { RecordHeader.all(in: $0.bytes) }
            .filter { $0.type == 22 && $0.epoch == 0 }
        if mtu < 600 { #expect(serverHandshakeRecords.count > 5) }
        #expect(largest > mtu - 40 && largest < mtu - 13)
    }

    @Test func packsSeveralRecordsIntoOneDatagram() throws {
        let pair = try Pair()
        pair.handshake()
        // At 1200 bytes the server's first flight (ServerHello, Certificate,
        // ServerKeyExchange, CertificateRequest, ServerHelloDone) shares datagrams.
        let firstFromServer = try #require(pair.log.first { $0.from == .server }?.bytes)
        #expect(RecordHeader.all(in: firstFromServer).count >= 2)
    }

    @Test func refusesAnMTUOpenSSLCannotUse() throws {
        let certificate = try DTLSCertificate.generate()
        var configuration = DTLSAssociation.Configuration(
            role: .client, certificate: certificate, expectedPeerFingerprint: certificate.fingerprint)
        configuration.mtu = 100
        #expect(throws: DTLSError.self) { try DTLSAssociation(configuration: configuration) }
        configuration.mtu = 1200
        configuration.initialRetransmissionTimeout = .seconds(90)
        #expect(throws: DTLSError.self) { try DTLSAssociation(configuration: configuration) }
    }

    @Test("setup attributes decide the role (RFC 8842 §5)", arguments: [
        ("active", "actpass", DTLSRole?.some(.client)),
        ("active", "passive", .client),
        ("actpass", "passive", .client),
        ("passive", "active", .server),
        ("actpass", "active", .server),
        ("PASSIVE", "actpass", .server),
        ("actpass", "actpass", nil),
        ("active", "active", nil),
        ("passive", "passive", nil),
        ("holdconn", "active", nil),
    ])
    func roleFromSetup(local: String, remote: String, role: DTLSRole?) {
        #expect(DTLSRole(localSetup: local, remoteSetup: remote) == role)
    }

    @Test func handshakeTimesOutOnTheDriversClockWhenNobodyAnswers() throws {
        let pair = try Pair(configure: { $0.handshakeTimeout = .seconds(10) })
        pair.filter = { _, _, _ in false }
        let started = pair.now
        pair.start()
        pair.pump()
        var steps = 0
        while !pair.client.isFinished, steps < 1000 {
            pair.advanceToNextDeadline()
            pair.pump()
            steps += 1
        }
        #expect(pair.client.failure == .handshakeTimedOut)
        #expect(pair.takeEvents(.client) == [.failed(.handshakeTimedOut)])
        #expect(pair.now - started == .seconds(10))
        #expect(pair.client.nextDeadline == nil)
        #expect(pair.server.failure == .handshakeTimedOut)
    }

    @Test func closeBeforeConnectingSendsNothingAndEndsTheTimers() throws {
        let pair = try Pair()
        pair.client.start(now: pair.now)
        _ = pair.client.pollTransmit()
        pair.client.close()
        #expect(pair.client.pollTransmit() == nil)
        #expect(pair.client.nextDeadline == nil)
        #expect(pair.client.isFinished)
        #expect(pair.client.pollEvent() == nil)
    }

    /// The cipher suite list of a ClientHello in a datagram's first record.
    static func cipherSuites(inClientHello datagram: [UInt8]) -> [UInt16]? {
        // record header 13, handshake header 12, client_version 2, random 32
        var offset = 13 + 12 + 2 + 32
        guard datagram.count > offset, datagram[13] == 1 else { return nil }
        offset += 1 + Int(datagram[offset]) // session id
        guard datagram.count > offset else { return nil }
        offset += 1 + Int(datagram[offset]) // cookie
        guard datagram.count >= offset + 2 else { return nil }
        let length = Int(datagram[offset]) << 8 | Int(datagram[offset + 1])
        offset += 2
        guard datagram.count >= offset + length else { return nil }
        return stride(from: offset, to: offset + length, by: 2).map {
            UInt16(datagram[$0]) << 8 | UInt16(datagram[$0 + 1])
        }
    }
}
