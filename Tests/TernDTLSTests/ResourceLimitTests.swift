import COpenSSL
import Testing
@testable import TernDTLS

/// Each of `DTLSLimits` at its value and one past it, from the wire (model:
/// pion/sctp's association_resource_limits_test.go).
@Suite("DTLS resource limits")
struct ResourceLimitTests {
    @Test func theLimitsAreTheDocumentedOnes() {
        #expect(DTLSLimits.maximumDatagramLength == 16_384)
        #expect(DTLSLimits.maximumFragmentLength == 18_432)
        #expect(DTLSLimits.maximumHandshakeMessageLength == 65_536)
        #expect(DTLSLimits.replayWindowRecords == 64)
        #expect(DTLSLimits.maximumCertificateLength == 16_384)
    }

    /// A datagram of exactly 2^14 bytes of well-framed records passes the
    /// framing check (its one record then fails authentication); one byte
    /// more and it is dropped whole, before it is read.
    @Test func theLargestDatagram() throws {
        let pair = try HostileInputTests.connectedPair()
        let limit = DTLSLimits.maximumDatagramLength
        pair.server.handleDatagram(RecordFramingTests.record(length: limit - 13, fill: 0x5A), now: pair.now)
        #expect(pair.server.counters.malformedDatagrams == 0)
        pair.server.handleDatagram(RecordFramingTests.record(length: limit - 12, fill: 0x5A), now: pair.now)
        #expect(pair.server.counters.malformedDatagrams == 1)
        #expect(pair.takeEvents(.server) == [])
        try HostileInputTests.expectStillWorks(pair)
    }

    /// A header may declare up to 2^14 + 2048 bytes of fragment; past that
    /// it is refused as too long before its bytes are looked for.
    @Test func theLargestFragmentAHeaderMayDeclare() {
        let limit = DTLSLimits.maximumFragmentLength
        let atLimit = RecordFramingTests.header(type: 23, epoch: 1, length: limit) + [0]
        #expect(RecordFramingTests.validPrefix(atLimit) == (0, .truncatedFragment(declared: limit, available: 1, offset: 0)))
        let past = RecordFramingTests.header(type: 23, epoch: 1, length: limit + 1) + [0]
        #expect(RecordFramingTests.validPrefix(past) == (0, .fragmentTooLong(limit + 1, offset: 0)))
    }

    /// A plaintext handshake fragment may belong to a message of up to 2^16
    /// bytes; one that claims more is refused before OpenSSL sees it.
    @Test func theLargestHandshakeMessage() {
        let limit = DTLSLimits.maximumHandshakeMessageLength
        let atLimit = RecordFramingTests.handshake(messageLength: limit, offset: 0, fragmentLength: 100)
        #expect(RecordFramingTests.validPrefix(atLimit) == (atLimit.count, nil))
        let past = RecordFramingTests.handshake(messageLength: limit + 1, offset: 0, fragmentLength: 100)
        #expect(RecordFramingTests.validPrefix(past) == (0, .malformedPlaintext(type: 22, offset: 0)))
    }

    /// After the hand-over, a record 63 sequence numbers below the highest
    /// accepted is still delivered; one 64 below is refused as a replay,
    /// though it was never seen.
    @Test func theReplayWindow() throws {
        let pair = try HostileInputTests.connectedPair()
        try pair.client.write([0xFF])
        pair.pump()
        _ = pair.takeEvents(.server)
        try #require(pair.client.ownsRecordLayer && pair.server.ownsRecordLayer)
        let window = DTLSLimits.replayWindowRecords
        var datagrams: [[UInt8]] = []
        for index in 0...window + 1 {
            try pair.client.write([UInt8(index)])
            datagrams.append(try #require(pair.client.pollTransmit()))
        }
        let discarded = pair.server.counters.discardedRecords
        pair.server.handleDatagram(datagrams[window + 1], now: pair.now)
        #expect(pair.takeEvents(.server) == [.data([UInt8(window + 1)])])
        pair.server.handleDatagram(datagrams[1], now: pair.now)  // 64 below
        #expect(pair.takeEvents(.server) == [])
        #expect(pair.server.counters.discardedRecords == discarded + 1)
        pair.server.handleDatagram(datagrams[2], now: pair.now)  // 63 below
        #expect(pair.takeEvents(.server) == [.data([2])])
        try HostileInputTests.expectStillWorks(pair)
    }

    /// A self-signed certificate on `key` whose name holds `units` extra OU
    /// entries (the way to make one as large as a test needs), with its
    /// fingerprint.
    static func certificate(key: PrivateKeyHandle, units: [String]) throws -> DTLSCertificate {
        let handle = CertificateHandle(taking: try #require(X509_new()))
        let x509 = handle.pointer
        let name = try #require(X509_get_subject_name(x509))
        try #require(X509_set_version(x509, 2) == 1 && ASN1_INTEGER_set_uint64(X509_get_serialNumber(x509), 7) == 1)
        try #require(X509_gmtime_adj(X509_getm_notBefore(x509), -3600) != nil && X509_gmtime_adj(X509_getm_notAfter(x509), 3600) != nil)
        try #require(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, "tern", -1, -1, 0) == 1)
        for unit in units { try #require(X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_ASC, unit, -1, -1, 0) == 1) }
        try #require(X509_set_issuer_name(x509, name) == 1 && X509_set_pubkey(x509, key.pointer) == 1)
        try #require(X509_sign(x509, key.pointer, EVP_sha256()) > 0)
        let length = Int(i2d_X509(x509, nil))
        var der = [UInt8](repeating: 0, count: length)
        der.withUnsafeMutableBufferPointer { buffer in
            var cursor = buffer.baseAddress
            _ = i2d_X509(x509, &cursor)
        }
        var digest = [UInt8](repeating: 0, count: 32)
        var digestLength: UInt32 = 0
        try #require(EVP_Digest(der, der.count, &digest, &digestLength, EVP_sha256(), nil) == 1)
        return DTLSCertificate(certificate: handle, privateKey: key, fingerprint: try DTLSFingerprint(bytes: digest), derEncoded: der)
    }

    /// A certificate of `bytes` DER bytes exactly: OU entries of 30
    /// characters while more than 110 bytes are missing, then one whose
    /// length makes up the rest (self-signed, the name is in the certificate
    /// twice, as subject and issuer: an entry of n characters adds
    /// 2 × (11 + n) bytes). An ECDSA signature's encoding varies by a byte
    /// or two, which also reaches the odd sizes: lengths near the estimate
    /// are tried, each signed afresh, until one lands on the size.
    static func certificate(ofLength bytes: Int) throws -> DTLSCertificate {
        let key = try DTLSCertificate.generate().privateKey
        var units: [String] = []
        var size = try certificate(key: key, units: units).derEncoded.count
        while bytes - size > 110 {
            units.append(String(repeating: "u", count: 30))
            size = try certificate(key: key, units: units).derEncoded.count
        }
        for attempt in 0..<200 {
            let guess = (bytes - size) / 2 - 11 + [0, -1, 1, -2, 2][attempt % 5]
            guard (1...64).contains(guess) else { continue }
            let made = try certificate(key: key, units: units + [String(repeating: "v", count: guess)])
            if made.derEncoded.count == bytes { return made }
        }
        throw DTLSError.certificateGenerationFailed("no certificate of \(bytes) bytes")
    }

    /// The peer's certificate crosses the wire in the handshake (fragmented
    /// over several datagrams); one of 16 KiB is checked against its
    /// fingerprint and accepted, one of 16 KiB + 1 is refused for its size
    /// before it is digested, and the handshake fails.
    @Test func theLargestCertificate() throws {
        let limit = DTLSLimits.maximumCertificateLength
        let atLimit = try Self.certificate(ofLength: limit)
        let accepted = try Pair(certificates: (try DTLSCertificate.generate(), atLimit))
        accepted.handshake()
        #expect(accepted.client.isConnected && accepted.server.isConnected)
        #expect(accepted.log.filter { $0.from == .server }.count > 10, "the certificate went in many datagrams")

        let pastLimit = try Self.certificate(ofLength: limit + 1)
        let refused = try Pair(certificates: (try DTLSCertificate.generate(), pastLimit))
        refused.handshake()
        for _ in 0..<10 where refused.client.failure == nil {
            refused.advanceToNextDeadline()
            refused.pump()
        }
        #expect(!refused.client.isConnected)
        #expect(refused.client.failure != nil)
    }
}
