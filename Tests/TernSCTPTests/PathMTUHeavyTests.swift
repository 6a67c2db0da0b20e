import Testing
import TernTestSupport
@testable import TernSCTP

/// Path MTU probing: two associations in one process over a virtual link
/// that carries packets up to `linkLimit` bytes and silently drops larger
/// ones, as a path with a smaller MTU does (RFC 8899's black hole).
struct PathMTUHeavyTests {
    typealias Association = SCTPAssociation<RFC9260CongestionControl>

    static func pair(seed: UInt64, linkLimit: Int, maximumMTU: Int? = 1432) -> Pair {
        var pair = Pair(seed: seed, configuration: Association.Configuration(mtu: 1163, maximumMTU: maximumMTU))
        pair.linkLimit = linkLimit
        return pair
    }

    static func message(_ index: Int, size: Int) -> [UInt8] {
        (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
    }

    /// Connects, sends `count` messages of `size` bytes from side 0 and runs
    /// until they all arrived and side 0's search ended (probes wait out a
    /// retransmission timeout each; data keeps flowing meanwhile); checks
    /// every byte.
    static func transfer(_ pair: inout Pair, count: Int, size: Int) {
        pair.sides[0].connect(now: pair.now)
        pair.run(until: .seconds(5)) { $0.bothEstablished }
        #expect(pair.bothEstablished)
        pair.sendFromFirst((0..<count).map { message($0, size: size) })
        pair.run(until: pair.now + .seconds(120)) { $0.received[1].count == count && !$0.sides[0].isProbingPathMTU }
        #expect(pair.received[1].count == count)
        for (index, received) in pair.received[1].enumerated() {
            #expect(received.payload == message(index, size: size), "message \(index) intact")
        }
    }

    static func probeSizes(_ pair: Pair) -> [Int] { pair.delivered.filter(\.probe).map(\.size) }
    static func droppedForSize(_ pair: Pair) -> Int { pair.delivered.filter(\.dropped).count }

    @Test func theLargestCandidateIsTakenWhenThePathCarriesIt() {
        var pair = Self.pair(seed: 1, linkLimit: 1500)
        Self.transfer(&pair, count: 40, size: 64 * 1024)
        #expect(pair.sides[0].pathMTU == 1432)
        #expect(pair.sides[0].statistics.mtuProbes == 1)
        #expect(Self.probeSizes(pair) == [1432], "one probe, exactly the candidate's size on the wire")
        // Most data went in full packets of the new size.
        let data = pair.delivered.filter { !$0.probe }.map(\.size)
        #expect(data.filter { $0 > 1163 }.count > data.count / 2)
        #expect(data.max() == 1432)
    }

    @Test func aSmallerPathSettlesOnTheLargestCandidateThatGetsThrough() {
        // Candidates for 1163...1432: 1432, 1412, 1372, 1292.
        var pair = Self.pair(seed: 2, linkLimit: 1400)
        Self.transfer(&pair, count: 40, size: 64 * 1024)
        #expect(pair.sides[0].pathMTU == 1372)
        #expect(Self.probeSizes(pair) == [1432, 1432, 1412, 1412, 1372], "each failing size is probed twice")
        #expect(pair.sides[0].statistics.retransmittedChunks == 0, "a lost probe is not a lost DATA chunk")
        #expect(pair.sides[0].statistics.timeouts == 0)
        #expect(Self.droppedForSize(pair) == 4, "only the failed probes were too large")
    }

    @Test func aPathAtTheBaseMTUKeepsItAndLosesNothing() {
        var pair = Self.pair(seed: 3, linkLimit: 1200)
        Self.transfer(&pair, count: 20, size: 64 * 1024)
        #expect(pair.sides[0].pathMTU == 1163)
        #expect(Self.probeSizes(pair) == [1432, 1432, 1412, 1412, 1372, 1372, 1292, 1292])
        #expect(pair.sides[0].statistics.mtuProbes == 0)
        #expect(pair.sides[0].statistics.retransmittedChunks == 0)
        #expect(Self.droppedForSize(pair) == 8)
    }

    @Test func withoutAMaximumThereIsNoProbe() {
        var pair = Self.pair(seed: 4, linkLimit: 1500, maximumMTU: nil)
        Self.transfer(&pair, count: 4, size: 16 * 1024)
        #expect(Self.probeSizes(pair).isEmpty)
        #expect(pair.sides[0].pathMTU == 1163)
    }

    @Test func candidatesRunFromTheMaximumDownAndStayAboveTheBase() {
        #expect(Association.MTUSearch.candidates(base: 1163, maximum: 1435) == [1432, 1412, 1372, 1292])
        #expect(Association.MTUSearch.candidates(base: 1400, maximum: 1435) == [1432, 1412])
        #expect(Association.MTUSearch.candidates(base: 1432, maximum: 1432).isEmpty)
        #expect(Association.MTUSearch.candidates(base: 1163, maximum: 1000).isEmpty)
    }

    @Test func anAnswerToAStaleProbeIsIgnored() {
        var pair = Self.pair(seed: 5, linkLimit: 1200)  // the real probes go unanswered
        pair.sides[0].connect(now: pair.now)
        pair.run(until: .seconds(5)) { $0.bothEstablished }
        // A HEARTBEAT ACK with probe-shaped information that was never sent.
        var info: [UInt8] = []
        info.appendBigEndian(UInt64(0xDEAD_BEEF))
        info.appendBigEndian(UInt32(1432))
        pair.sides[0].handleChunks([.heartbeatAck(info: info)], verificationTag: pair.sides[0].localTag, now: pair.now)
        #expect(pair.sides[0].pathMTU == 1163)
    }

    @Test func aPADChunkSurvivesTheCodecAndIsSkipped() throws {
        let packet = Association.Packet(
            verificationTag: 7, chunks: [.heartbeat(info: [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 5, 0x98]), .padding(length: 100)],
            zeroChecksum: false, isProbe: true)
        let bytes = try SCTPWire.encode(packet)
        #expect(bytes.count == 12 + 20 + 100)
        let decoded = try #require(SCTPWire.decode(bytes[...]))
        #expect(decoded.chunks.count == 2)
        #expect(decoded.chunks.last == .padding(length: 100))
    }
}

/// When a SACK may not wait for the rest of a read batch.
struct GapReportTests {
    @Test func aGapAsksForAReportAtOnceUntilTheSACKGoesOutOrTheGapCloses() throws {
        var pair = Pair(seed: 9)
        pair.sides[0].connect(now: pair.now)
        pair.run(until: .seconds(5)) { $0.bothEstablished }
        #expect(pair.bothEstablished)
        let first = pair.sides[0].retransmissions.nextTSN
        func data(_ offset: UInt32, ssn: UInt16) -> SCTPChunkModel {
            .data(SCTPFragment(
                tsn: TSN(first.value &+ offset), stream: 1, ssn: SSN(ssn), ppid: 53, unordered: false, beginning: true, ending: true,
                payload: [UInt8(offset)]))
        }
        let receiver = pair.sides[1].localTag
        pair.sides[1].handleChunks([data(0, ssn: 0)], verificationTag: receiver, now: pair.now)
        #expect(!pair.sides[1].gapReportDue, "in order: the SACK can wait")
        pair.sides[1].handleChunks([data(2, ssn: 2)], verificationTag: receiver, now: pair.now)
        #expect(pair.sides[1].gapReportDue, "a gap")
        let packet = pair.sides[1].pollTransmit(now: pair.now)
        let sack = try #require(packet)
        guard case .sack(let fields)? = sack.chunks.first else {
            Issue.record("no SACK first: \(sack.chunks)")
            return
        }
        #expect(fields.gapBlocks == [SCTPChunkModel.GapBlock(start: 2, end: 2)])
        #expect(!pair.sides[1].gapReportDue, "reported")
        pair.sides[1].handleChunks([data(1, ssn: 1)], verificationTag: receiver, now: pair.now)
        #expect(!pair.sides[1].gapReportDue, "the gap closed")
    }
}

/// The path MTU goes down after it went up (RFC 8899 §4.3's black hole).
struct PathMTUBlackHoleTests {
    @Test func newDataGoesBackToTheBaseSizeAndLargerChunksStillGoAloneUntilThePathCarriesThem() {
        var pair = PathMTUHeavyTests.pair(seed: 12, linkLimit: 1500)
        pair.sides[0].connect(now: pair.now)
        pair.run(until: .seconds(5)) { $0.bothEstablished }
        pair.run(until: .seconds(30)) { !$0.sides[0].isProbingPathMTU }
        #expect(pair.sides[0].pathMTU == 1432)
        // The path shrinks while 64 KiB messages are in flight.
        let sent = (0..<16).map { PathMTUHeavyTests.message($0, size: 64 * 1024) }
        pair.sendFromFirst(sent)
        pair.pump()
        pair.linkLimit = 1200
        pair.run(until: pair.now + .seconds(60)) { $0.sides[0].pathMTU < 1432 }
        #expect(pair.sides[0].pathMTU == 1163, "two timeouts in a row: back to the base size")
        let before = pair.delivered.count
        // Still unable to carry the large chunks: they keep being resent,
        // alone and at their size, rather than never again.
        pair.run(until: pair.now + .seconds(10))
        let resentLarge = pair.delivered[before...].filter { !$0.probe && $0.size > 1200 }
        #expect(!resentLarge.isEmpty && resentLarge.allSatisfy(\.dropped))
        // The host fragments them (here: the path carries them again); all arrives.
        pair.linkLimit = 1500
        pair.run(until: pair.now + .seconds(120)) { $0.received[1].count == sent.count }
        #expect(pair.received[1].map(\.payload) == sent)
        #expect(pair.sides[0].state == .established)
    }
}
