import Testing
import TernTestSupport
import TernSCTP

@Suite("Hostile input")
struct HostileInputTests {
    /// Every packet the other suites use: captures, the RFC layouts (built
    /// here from their chunks), and the round-trip chunks one per packet.
    static var everyPacket: [Capture] {
        var packets = Captures.all
        for (index, chunk) in RoundTripTests.everyChunk.enumerated() {
            let packet = SCTPPacket(sourcePort: 5000, destinationPort: 5000, verificationTag: UInt32(index), chunks: [chunk])
            if let bytes = try? packet.encode() {
                packets.append(Capture(name: "round-trip chunk \(index) (\(chunk.type))", source: "RoundTripTests", bytes: bytes))
            }
        }
        return packets
    }

    /// The offsets where each chunk of `bytes` ends, padding included.
    static func chunkEnds(_ bytes: [UInt8]) throws -> [Int] {
        let packet = try SCTPPacket.decode(bytes)
        var ends: [Int] = []
        for count in 1...packet.chunks.count {
            var prefix = packet
            prefix.chunks = Array(packet.chunks.prefix(count))
            ends.append(try prefix.encode().count)
        }
        return ends
    }

    @Test("every packet cut at every offset throws, or decodes to whole chunks only", arguments: everyPacket)
    func everyCut(capture: Capture) throws {
        try Self.checkEveryCut(capture.bytes)
    }

    /// `bytes` (a valid packet) cut at every offset: as received, the cut
    /// fails the checksum; with the checksum fixed (or zero and accepted),
    /// the chunk parser throws, unless the cut falls between two chunks,
    /// where the rest is a valid packet of the chunks before it. The RFC
    /// figure tests run this on their packets too.
    static func checkEveryCut(_ bytes: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws {
        let whole = try SCTPPacket.decode(bytes)
        let ends = try chunkEnds(bytes)
        for cut in 0..<bytes.count {
            let prefix = Array(bytes[0..<cut])
            #expect(throws: SCTPError.self, "cut \(cut)", sourceLocation: sourceLocation) { try SCTPPacket.decode(prefix) }
            let fixed = withChecksum(prefix)
            if let index = ends.firstIndex(of: cut) {
                #expect(try SCTPPacket.decode(fixed).chunks == Array(whole.chunks.prefix(index + 1)), "cut \(cut)", sourceLocation: sourceLocation)
            } else {
                #expect(throws: SCTPError.self, "cut \(cut)", sourceLocation: sourceLocation) { try SCTPPacket.decode(fixed) }
                #expect(throws: SCTPError.self, "cut \(cut)", sourceLocation: sourceLocation) {
                    try SCTPPacket.decode(withZeroChecksum(prefix), acceptZeroChecksum: true)
                }
            }
            // A suffix, as a slice that does not start at index zero.
            #expect(throws: SCTPError.self, "suffix \(cut)", sourceLocation: sourceLocation) { try SCTPPacket.decode(bytes[(bytes.count - cut)...]) }
        }
    }

    @Test("every chunk cut at every offset throws", arguments: everyPacket)
    func everyChunkCut(capture: Capture) throws {
        var offset = SCTPPacket.headerLength
        var rest = capture.bytes[offset...]
        while !rest.isEmpty {
            let (_, length) = try SCTPChunk.decode(rest)
            let chunk = Array(rest.prefix(length))
            for cut in 0..<length {
                #expect(throws: SCTPError.self, "offset \(offset) cut \(cut)") { try SCTPChunk.decode(chunk[0..<cut]) }
            }
            offset += length
            rest = capture.bytes[offset...]
        }
    }

    @Test("bit flips behind a valid checksum never trap, and what decodes round-trips", arguments: Captures.all)
    func bitFlipsRoundTrip(capture: Capture) throws {
        var random = TestRandom(seed: UInt64(capture.bytes.count))
        for _ in 0..<2000 {
            var flipped = capture.bytes
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let bit = Int.random(in: 96..<(flipped.count * 8), using: &random)
                flipped[bit / 8] ^= 1 << UInt8(bit % 8)
            }
            flipped = withChecksum(flipped)
            guard let packet = try? SCTPPacket.decode(flipped) else { continue }
            let again = try SCTPPacket.decode(packet.encode())
            #expect(again == packet)
        }
    }

    @Test func randomGarbageNeverTraps() {
        var random = TestRandom(seed: 4960)
        for _ in 0..<20_000 {
            let length = Int.random(in: 0...96, using: &random)
            var garbage = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
            if random.next() % 2 == 0 { garbage = withChecksum(garbage) }
            if let packet = try? SCTPPacket.decode(garbage, acceptZeroChecksum: random.next() % 2 == 0) {
                #expect(throws: Never.self) { _ = try SCTPPacket.decode(packet.encode()) }
            }
            _ = try? SCTPChunk.decode(garbage[...])
        }
    }

    @Test func shortPacketsAreRejected() {
        for length in 0..<16 {
            #expect(throws: SCTPError.packetTooShort(length: length)) { try SCTPPacket.decode([UInt8](repeating: 0, count: length)) }
        }
    }

    @Test func bytesAfterTheLastChunkAreRejected() throws {
        for extra in 1...3 {
            let longer = withChecksum(Captures.aiortcData.bytes + [UInt8](repeating: 0, count: extra))
            #expect(throws: SCTPError.trailingBytes(count: extra)) { try SCTPPacket.decode(longer) }
        }
        // Four zero bytes read as a DATA chunk of length zero.
        #expect(throws: SCTPError.chunkLengthInvalid(type: .data, length: 0)) {
            try SCTPPacket.decode(withChecksum(Captures.aiortcData.bytes + [0, 0, 0, 0]))
        }
    }

    @Test func chunksThatOverrunOrLoseTheirPaddingAreRejected() {
        #expect(throws: SCTPError.chunkOverrun(type: .cookieEcho, length: 12, available: 8)) {
            try SCTPPacket.decode(packet(chunks: bytes("0a00000c 00000000")))
        }
        // DATA of length 17 in a packet that stops after it, padding missing.
        #expect(throws: SCTPError.chunkPaddingMissing(type: .data)) {
            try SCTPPacket.decode(packet(chunks: bytes("00030011 00000001 00010001 00000033 41")))
        }
    }

    @Test func initInitAckAndShutdownCompleteStandAlone() throws {
        // RFC 9260 §6.10, both directions.
        let initChunk = SCTPChunk.initiation(RoundTripTests.sampleInit)
        for lonely in [initChunk, .initiationAck(RoundTripTests.sampleInit), .shutdownComplete(tagReflected: false)] {
            let bundled = SCTPPacket(sourcePort: 1, destinationPort: 2, verificationTag: 0, chunks: [.cookieAck, lonely])
            #expect(throws: SCTPError.chunkNotAlone(lonely.type)) { try bundled.encode() }
            var alone = try SCTPPacket(sourcePort: 1, destinationPort: 2, verificationTag: 0, chunks: [lonely]).encode()
            alone += [0x0B, 0, 0, 4]
            #expect(throws: SCTPError.chunkNotAlone(lonely.type)) { try SCTPPacket.decode(withChecksum(alone)) }
        }
        #expect(throws: SCTPError.noChunks) { try SCTPPacket(sourcePort: 1, destinationPort: 2, verificationTag: 0, chunks: []).encode() }
    }

    /// `chunk` encodes under the default limits; under `limits` neither
    /// decoding those bytes nor encoding the chunk gets past `expected`.
    func checkLimit(_ chunk: SCTPChunk, _ limits: SCTPLimits, _ expected: SCTPError, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let packet = SCTPPacket(sourcePort: 1, destinationPort: 2, verificationTag: 3, chunks: [chunk])
        let wire = try packet.encode()
        #expect(throws: expected, sourceLocation: sourceLocation) { try SCTPPacket.decode(wire, limits: limits) }
        #expect(throws: expected, sourceLocation: sourceLocation) { try packet.encode(limits: limits) }
    }

    @Test func limitsAreEnforcedBothWays() throws {
        let gaps = SCTPSackChunk(cumulativeTSNAck: 0, advertisedWindow: 0,
                                 gapAckBlocks: SCTPWireList((0..<3).map { SCTPGapAckBlock(start: UInt16($0), end: UInt16($0)) }))
        try checkLimit(.sack(gaps), SCTPLimits(maximumGapAckBlocks: 2), .tooManyGapAckBlocks(count: 3, limit: 2))
        let duplicates = SCTPSackChunk(cumulativeTSNAck: 0, advertisedWindow: 0, duplicateTSNs: [1, 2, 3])
        try checkLimit(.sack(duplicates), SCTPLimits(maximumDuplicateTSNs: 2), .tooManyDuplicateTSNs(count: 3, limit: 2))
        let forward = SCTPForwardTSNChunk(newCumulativeTSN: 1, streams: SCTPWireList((0..<3).map { SCTPForwardTSNStream(streamID: $0, ssn: 0) }))
        try checkLimit(.forwardTSN(forward), SCTPLimits(maximumStreamsPerChunk: 2), .tooManyStreams(count: 3, limit: 2))
        let reset = SCTPReconfigChunk(.incomingSSNResetRequest(requestSequenceNumber: 1, streams: [1, 2, 3]))
        try checkLimit(.reconfig(reset), SCTPLimits(maximumStreamsPerChunk: 2), .tooManyStreams(count: 3, limit: 2))
        try checkLimit(.initiation(RoundTripTests.sampleInit), SCTPLimits(maximumParametersPerChunk: 2),
                       .tooManyParameters(chunk: .initiation, limit: 2))
        try checkLimit(.abort(tagReflected: false, causes: [.outOfResource, .outOfResource]), SCTPLimits(maximumErrorCausesPerChunk: 1),
                       .tooManyErrorCauses(chunk: .abort, limit: 1))
        try checkLimit(.cookieEcho(cookie: [UInt8](repeating: 1, count: 9)[...]), SCTPLimits(maximumCookieLength: 8),
                       .cookieTooLong(length: 9, limit: 8))
        let withCookie = SCTPInitChunk(initiateTag: 1, advertisedWindow: 1, outboundStreams: 1, inboundStreams: 1, initialTSN: 1,
                                       parameters: [.stateCookie([UInt8](repeating: 1, count: 9)[...])])
        try checkLimit(.initiationAck(withCookie), SCTPLimits(maximumCookieLength: 8), .cookieTooLong(length: 9, limit: 8))
        try checkLimit(.heartbeat(info: [UInt8](repeating: 1, count: 9)[...]), SCTPLimits(maximumHeartbeatInfoLength: 8),
                       .heartbeatInfoTooLong(length: 9, limit: 8))
        try checkLimit(.initiation(RoundTripTests.sampleInit), SCTPLimits(maximumListEntries: 1), .listTooLong(count: 2, limit: 1))
        try checkLimit(.error(causes: [.missingMandatoryParameter([7, 8])]), SCTPLimits(maximumListEntries: 1), .listTooLong(count: 2, limit: 1))
    }

    @Test func packetAndChunkCountLimits() throws {
        let many = SCTPPacket(sourcePort: 1, destinationPort: 2, verificationTag: 3, chunks: [SCTPChunk](repeating: .cookieAck, count: 513))
        #expect(throws: SCTPError.tooManyChunks(limit: 512)) { try many.encode() }
        var wire = try SCTPPacket(sourcePort: 1, destinationPort: 2, verificationTag: 3, chunks: [.cookieAck]).encode()
        wire += [UInt8](repeating: 0, count: 512 * 4)
        for index in 0..<512 { wire[16 + 4 * index] = 0x0B; wire[16 + 4 * index + 3] = 4 }
        #expect(throws: SCTPError.tooManyChunks(limit: 512)) { try SCTPPacket.decode(withChecksum(wire)) }
        #expect(try SCTPPacket.decode(withChecksum(Array(wire.dropLast(4)))).chunks.count == 512)

        let big = SCTPPacket(sourcePort: 1, destinationPort: 2, verificationTag: 3,
                             chunks: [.data(SCTPDataChunk(tsn: 1, streamID: 0, ssn: 0, ppid: 53, userData: [UInt8](repeating: 7, count: 16_384 - 28 + 1)))])
        #expect(throws: SCTPError.packetTooLong(length: 16_388, limit: 16_384)) { try big.encode() }
        let loose = SCTPLimits(maximumPacketLength: 65_535)
        let bigWire = try big.encode(limits: loose)
        #expect(throws: SCTPError.packetTooLong(length: 16_388, limit: 16_384)) { try SCTPPacket.decode(bigWire) }
        #expect(try SCTPPacket.decode(bigWire, limits: loose) == big)
        #expect(throws: SCTPError.chunkTooLong(type: .data, length: 65_536)) {
            try SCTPDataChunk(tsn: 1, streamID: 0, ssn: 0, ppid: 53, userData: [UInt8](repeating: 0, count: 65_520)).encode(into: &wire)
        }
    }

    @Test func errorsHaveReasons() {
        let errors: [SCTPError] = [
            .packetTooShort(length: 3), .checksumMismatch(received: 1, computed: 2), .zeroChecksumNotAllowed(chunk: .initiation),
            .chunkNotAlone(.shutdownComplete), .tlvOverrun(chunk: .error, type: 13, length: 12, available: 8),
            .parameterLengthInvalid(type: .ipv4Address, length: 12), .errorCauseLengthInvalid(code: .staleCookie, length: 4),
        ]
        for error in errors {
            #expect(!error.reason.isEmpty)
            #expect(error.description == error.reason)
        }
        #expect(SCTPError.checksumMismatch(received: 0xAB, computed: 0x12).reason.contains("0x000000ab"))
    }
}
