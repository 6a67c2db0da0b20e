import Testing
import TernDTLS

/// Every datagram is hostile. Nothing may trap; what is not well-framed DTLS
/// is dropped and counted (RFC 6347 §4.1.2.7), and records that do not
/// authenticate are dropped by OpenSSL, so an established association lives on.
@Suite("Hostile datagrams")
struct HostileInputTests {
    /// A connected pair with no events pending.
    static func connectedPair() throws -> Pair {
        let pair = try Pair()
        pair.handshake()
        try #require(pair.client.isConnected && pair.server.isConnected)
        _ = pair.takeEvents(.client)
        _ = pair.takeEvents(.server)
        return pair
    }

    /// Checks that data still flows both ways and nothing failed.
    static func expectStillWorks(_ pair: Pair, sourceLocation: SourceLocation = #_sourceLocation) throws {
        _ = pair.takeEvents(.client)
        _ = pair.takeEvents(.server)
        try pair.client.write([0xC1, 0x1E])
        try pair.server.write([0x5E, 0x7E])
        pair.pump()
        #expect(pair.takeEvents(.server) == [.data([0xC1, 0x1E])], sourceLocation: sourceLocation)
        #expect(pair.takeEvents(.client) == [.data([0x5E, 0x7E])], sourceLocation: sourceLocation)
        #expect(pair.client.failure == nil && pair.server.failure == nil, sourceLocation: sourceLocation)
    }

    @Test func randomDatagramsAreDroppedAndCounted() throws {
        let pair = try Self.connectedPair()
        var generator = SeededGenerator(seed: 0xD715)
        for _ in 0..<2000 {
            let count = Int.random(in: 0...1500, using: &generator)
            pair.server.handleDatagram(generator.bytes(count), now: pair.now)
            pair.client.handleDatagram(generator.bytes(count), now: pair.now)
        }
        #expect(pair.server.counters.malformedDatagrams > 1900)
        #expect(pair.takeEvents(.server) == [])
        #expect(pair.takeEvents(.client) == [])
        // Garbage is never answered.
        #expect(pair.server.pollTransmit() == nil)
        #expect(pair.client.pollTransmit() == nil)
        try Self.expectStillWorks(pair)
    }

    @Test func wellFramedRecordsWithGarbageInsideNeverEndTheAssociation() throws {
        let pair = try Self.connectedPair()
        var generator = SeededGenerator(seed: 42)
        for _ in 0..<5000 {
            let type = UInt8.random(in: 20...23, using: &generator)
            let epoch = UInt8.random(in: 0...3, using: &generator)
            let length = [0, 1, 2, 12, 15, 16, 23, 24, 25, 40, 100, 1100].randomElement(using: &generator) ?? 0
            var record: [UInt8] = [type, 0xFE, 0xFD, 0, epoch]
            record += generator.bytes(6) // sequence number
            record += [UInt8(length >> 8), UInt8(length & 0xFF)]
            record += generator.bytes(length)
            let target = Bool.random(using: &generator) ? pair.server : pair.client
            target.handleDatagram(record, now: pair.now)
        }
        #expect(pair.takeEvents(.server) == [])
        #expect(pair.takeEvents(.client) == [])
        try Self.expectStillWorks(pair)
    }

    @Test("a protected record shorter than the cipher's nonce and tag is dropped, not fatal",
          arguments: [1, 8, 15, 16, 23])
    func shortProtectedRecordIsDropped(length: Int) throws {
        // OpenSSL 3.0 answers these with a fatal internal_error
        // (openssl/openssl#25290); they must not reach it.
        let pair = try Self.connectedPair()
        var record: [UInt8] = [23, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 0x40, 0, UInt8(length)]
        record += [UInt8](repeating: 0x5A, count: length)
        pair.server.handleDatagram(record, now: pair.now)
        // Under AES-GCM (what two tern ends negotiate) 16...23 bytes are short too.
        #expect(pair.server.counters.malformedDatagrams == 1)
        #expect(pair.takeEvents(.server) == [])
        try Self.expectStillWorks(pair)
    }

    @Test func truncatedRecordsAreDropped() throws {
        let pair = try Self.connectedPair()
        try pair.client.write([UInt8](repeating: 0xAA, count: 300))
        let datagram = try #require(pair.client.pollTransmit())
        for cut in 0..<datagram.count {
            pair.server.handleDatagram(datagram[..<cut], now: pair.now)
        }
        #expect(pair.server.counters.malformedDatagrams == datagram.count)
        #expect(pair.takeEvents(.server) == [])
        // The whole record still decrypts afterwards: nothing was consumed.
        pair.server.handleDatagram(datagram, now: pair.now)
        #expect(pair.takeEvents(.server) == [.data([UInt8](repeating: 0xAA, count: 300))])
        try Self.expectStillWorks(pair)
    }

    @Test func aHeaderClaimingAHugeLengthIsDropped() throws {
        let pair = try Self.connectedPair()
        let header: [UInt8] = [23, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 9, 0xFF, 0xFF]
        pair.server.handleDatagram(header, now: pair.now)
        pair.server.handleDatagram(header + [UInt8](repeating: 0, count: 1000), now: pair.now)
        // A length over 2^14 + 2048 is refused even when the bytes are there.
        var big: [UInt8] = [23, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 9, 0x48, 0x01]
        big += [UInt8](repeating: 0, count: 0x4801)
        pair.server.handleDatagram(big, now: pair.now)
        // A datagram larger than any DTLS peer sends.
        pair.server.handleDatagram([UInt8](repeating: 23, count: 70_000), now: pair.now)
        #expect(pair.server.counters.malformedDatagrams == 4)
        #expect(pair.takeEvents(.server) == [])
        try Self.expectStillWorks(pair)
    }

    /// One datagram for each refusal of the framing check (see
    /// `DTLSRecordFraming.Defect`), as an established association gets it.
    static let framingRefusals: [(String, [UInt8])] = [
        ("empty", []),
        ("a header cut short", [23, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 7, 0]),
        ("a length past the datagram", [23, 0xFE, 0xFD, 0, 1, 0, 0, 0, 0, 0, 7, 0, 40] + [UInt8](repeating: 1, count: 39)),
        ("a content type below DTLS 1.2's", RecordFramingTests.record(type: 19, length: 30)),
        ("a content type above DTLS 1.2's", RecordFramingTests.record(type: 24, length: 30)),
        ("TLS's version instead of DTLS's", [23, 0x03, 0x03, 0, 1, 0, 0, 0, 0, 0, 7, 0, 30] + [UInt8](repeating: 1, count: 30)),
        ("a fragment over 2^14 + 2048 bytes", RecordFramingTests.record(length: (1 << 14) + 2049).prefix(1 << 14).map { $0 }),
        ("a datagram over 2^14 bytes", [UInt8](repeating: 23, count: (1 << 14) + 1)),
        ("a protected record shorter than nonce and tag", RecordFramingTests.record(length: 23)),
        ("a plaintext ChangeCipherSpec that is not 1", RecordFramingTests.header(type: 20, epoch: 0, length: 1) + [7]),
        ("a plaintext alert of an unknown level", RecordFramingTests.header(type: 21, epoch: 0, length: 2) + [3, 0]),
        ("a plaintext handshake fragment past its message", RecordFramingTests.handshake(messageLength: 10, offset: 5, fragmentLength: 6)),
        ("unprotected application data", RecordFramingTests.record(type: 23, epoch: 0, length: 30)),
    ]

    @Test("each framing refusal is dropped and counted, alone or after a good record, and never ends the association",
          arguments: 0..<HostileInputTests.framingRefusals.count)
    func eachFramingRefusalIsDroppedAndCounted(index: Int) throws {
        let (name, hostile) = Self.framingRefusals[index]
        let pair = try Self.connectedPair()
        pair.server.handleDatagram(hostile, now: pair.now)
        #expect(pair.server.counters.malformedDatagrams == 1, "\(name)")
        #expect(pair.takeEvents(.server) == [], "\(name)")
        #expect(pair.server.pollTransmit() == nil, "\(name): garbage is never answered")
        // Behind a genuine record in the same datagram: the record is
        // delivered, what follows it is not (unless the two together are
        // simply too long a datagram, which is refused whole).
        if !hostile.isEmpty {
            try Self.expectDroppedBehindAGoodRecord(hostile, name: name, pair: pair)
        }
        try Self.expectStillWorks(pair)
    }

    static func expectDroppedBehindAGoodRecord(_ hostile: [UInt8], name: String, pair: Pair) throws {
        try pair.client.write([4, 2])
        let good = try #require(pair.client.pollTransmit())
        pair.server.handleDatagram(good + hostile, now: pair.now)
        #expect(pair.server.counters.malformedDatagrams == 2, "\(name)")
        let tooLong = good.count + hostile.count > 1 << 14
        #expect(pair.takeEvents(.server) == (tooLong ? [] : [.data([4, 2])]), "\(name)")
    }

    @Test func aGoodRecordBeforeGarbageInTheSameDatagramIsKept() throws {
        let pair = try Self.connectedPair()
        try pair.client.write([9, 9, 9])
        let datagram = try #require(pair.client.pollTransmit())
        pair.server.handleDatagram(datagram + [23, 0xFE, 0xFD, 0, 1], now: pair.now)
        #expect(pair.takeEvents(.server) == [.data([9, 9, 9])])
        #expect(pair.server.counters.malformedDatagrams == 1)
    }

    @Test func replayedRecordsAreDeliveredOnce() throws {
        // RFC 6347 §4.1.2.6: the receiver discards a record it has seen.
        let pair = try Self.connectedPair()
        try pair.client.write([1])
        let datagram = try #require(pair.client.pollTransmit())
        for _ in 0..<5 { pair.server.handleDatagram(datagram, now: pair.now) }
        #expect(pair.takeEvents(.server) == [.data([1])])
        try Self.expectStillWorks(pair)
    }

    @Test func flippedBitsInARecordAreDroppedByItsTag() throws {
        let pair = try Self.connectedPair()
        try pair.client.write([UInt8](repeating: 3, count: 64))
        let datagram = try #require(pair.client.pollTransmit())
        for index in 13..<datagram.count {
            var corrupted = datagram
            corrupted[index] ^= 0x01
            pair.server.handleDatagram(corrupted, now: pair.now)
        }
        #expect(pair.takeEvents(.server) == [])
        // The original is still fresh: nothing forged took its sequence number.
        pair.server.handleDatagram(datagram, now: pair.now)
        #expect(pair.takeEvents(.server) == [.data([UInt8](repeating: 3, count: 64))])
    }

    @Test func garbageDuringTheHandshakeDoesNotStopIt() throws {
        let pair = try Pair()
        var generator = SeededGenerator(seed: 7)
        pair.filter = { from, _, bytes in
            // Before every real datagram, the receiver gets junk that does not frame.
            let receiver = from == .client ? pair.server : pair.client
            receiver.handleDatagram(generator.bytes(Int.random(in: 0...200, using: &generator)), now: pair.now)
            receiver.handleDatagram(Array(bytes.prefix(bytes.count / 2)), now: pair.now)
            receiver.handleDatagram([22, 0xFE, 0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF], now: pair.now)
            return true
        }
        pair.handshake()
        #expect(pair.client.isConnected && pair.server.isConnected)
        #expect(pair.server.counters.malformedDatagrams > 0)
    }

    @Test func mutatedClientHellosNeverTrapAServer() throws {
        // Take a real ClientHello and mutate it in many ways; a fresh server
        // gets each. It may fail (a well-framed but malformed handshake
        // message is a fatal error before any keys exist), but never traps,
        // and every outcome is a typed event.
        let certificates = (try DTLSCertificate.generate(), try DTLSCertificate.generate())
        let probe = try Pair(certificates: certificates)
        probe.client.start(now: probe.now)
        let hello = try #require(probe.client.pollTransmit())
        var generator = SeededGenerator(seed: 0xC11E)
        var failures = 0
        for round in 0..<300 {
            var mutated = hello
            switch round % 4 {
            case 0:
                for _ in 0..<Int.random(in: 1...8, using: &generator) {
                    let index = Int.random(in: 0..<mutated.count, using: &generator)
                    mutated[index] = UInt8.random(in: 0...255, using: &generator)
                }
            case 1:
                mutated = Array(mutated.prefix(Int.random(in: 13...mutated.count, using: &generator)))
                // Keep the record length consistent so it frames.
                let length = mutated.count - 13
                mutated[11] = UInt8(length >> 8)
                mutated[12] = UInt8(length & 0xFF)
            case 2:
                // Handshake header fields (RFC 6347 §4.2.2): lengths, offsets.
                let index = 13 + Int.random(in: 0..<12, using: &generator)
                mutated[index] = [0x00, 0xFF, 0x7F, 0x80].randomElement(using: &generator) ?? 0
            default:
                mutated += generator.bytes(Int.random(in: 1...64, using: &generator))
                let length = mutated.count - 13
                mutated[11] = UInt8(length >> 8)
                mutated[12] = UInt8(length & 0xFF)
            }
            let server = try Pair(certificates: certificates).server
            server.handleDatagram(mutated, now: .zero)
            while server.pollTransmit() != nil {}
            while let event = server.pollEvent() {
                if case .failed = event { failures += 1 } else { #expect(!event.isData) }
            }
        }
        // Some mutations are fatal, as DTLS says; the point is that none trapped.
        #expect(failures < 300)
    }

    @Test func datagramsAfterTheEndAreIgnored() throws {
        let pair = try Self.connectedPair()
        try pair.client.write([1])
        let datagram = try #require(pair.client.pollTransmit())
        pair.server.close()
        pair.server.handleDatagram(datagram, now: pair.now)
        #expect(pair.server.counters.ignoredDatagrams == 1)
        #expect(pair.takeEvents(.server) == [])
    }
}
