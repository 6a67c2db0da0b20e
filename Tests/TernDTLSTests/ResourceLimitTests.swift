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
}
