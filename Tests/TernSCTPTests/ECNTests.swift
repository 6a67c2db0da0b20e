import Testing
import TernTestSupport
@testable import TernSCTP

/// ECN between two associations (RFC 9260 Appendix A): the ECN Capable
/// parameter in INIT and INIT ACK, ECNE from the receiver of CE-marked
/// packets until the sender's CWR, and the sender's one reduction per window.
struct ECNTests {
    typealias Association = SCTPAssociation<RFC9260CongestionControl>

    // MARK: - Chunk layouts

    @Test func ecnEchoShortAndLongFormsAndCWRLayouts() throws {
        // RFC 9260 Appendix A: type 12, length 8, the lowest TSN.
        let short: [UInt8] = [12, 0, 0, 8, 0xDE, 0xAD, 0xBE, 0xEF]
        #expect(try onlyChunk(packet(chunks: short)) == .ecnEcho(lowestTSN: 0xDEAD_BEEF, markedPackets: nil))
        // draft-stewart-tsvwg-sctpecn §3.2: length 12, with the count of marked packets.
        let long: [UInt8] = [12, 0, 0, 12, 0, 0, 0, 7, 0, 0, 0, 3]
        #expect(try onlyChunk(packet(chunks: long)) == .ecnEcho(lowestTSN: 7, markedPackets: 3))
        let cwr: [UInt8] = [13, 0, 0, 8, 0, 0, 0, 7]
        #expect(try onlyChunk(packet(chunks: cwr)) == .cwr(lowestTSN: 7))
        for bytes in [short, long, cwr] {
            var encoded: [UInt8] = []
            try SCTPChunk.decode(bytes[...]).chunk.encode(into: &encoded)
            #expect(encoded == bytes)
        }
        // The association's values, through SCTPWire both ways.
        let chunks: [SCTPChunkModel] = [.ecnEcho(lowestTSN: TSN(9), markedPackets: 2), .cwr(lowestTSN: TSN(5))]
        var buffer: [UInt8] = []
        try SCTPWire.encode(verificationTag: 1, chunks: chunks, zeroChecksum: false, into: &buffer)
        #expect(SCTPWire.decode(buffer)?.chunks == chunks)
        #expect(buffer.count == 12 + Association.size(of: chunks[0]) + Association.size(of: chunks[1]))
    }

    @Test("ECNE and CWR of a wrong length are refused with a typed error", arguments: [
        [12, 0, 0, 4] as [UInt8],  // no TSN
        [12, 0, 0, 6, 0, 0, 0, 0],  // half a TSN
        [12, 0, 0, 10, 0, 0, 0, 1, 0, 0, 0, 0],  // half a count
        [12, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3],  // trailing bytes
        [13, 0, 0, 4],
        [13, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 2],
    ])
    func malformedECNChunksAreRefused(bytes: [UInt8]) {
        let type = SCTPChunkType(bytes[0])
        #expect(throws: SCTPError.chunkLengthInvalid(type: type, length: Int(bytes[3]))) {
            try SCTPPacket.decode(packet(chunks: bytes))
        }
        #expect(SCTPWire.decode(packet(chunks: bytes)) == nil)
    }

    // MARK: - Negotiation

    static func established(ecn: (Bool, Bool), seed: UInt64 = 3) -> Pair {
        var first = Association.Configuration()
        first.explicitCongestionNotification = ecn.0
        var second = Association.Configuration()
        second.explicitCongestionNotification = ecn.1
        var pair = Pair(seed: seed)
        var random = SplitMix64(seed: seed)
        pair.sides = [Association(configuration: first, random: &random), Association(configuration: second, random: &random)]
        pair.sides[0].connect(now: .zero)
        pair.run(until: .seconds(2)) { $0.bothEstablished }
        return pair
    }

    @Test func initCarriesTheECNCapableParameterWhenOffered() throws {
        var offering = Association(configuration: .init())
        offering.connect(now: .zero)
        let first = offering.pollTransmit(now: .zero)
        let bytes = try SCTPWire.encode(try #require(first))
        guard case .initiation(let fields) = try onlyChunk(bytes) else { throw Failure("not an INIT") }
        #expect(fields.parameters.contains(.ecnCapable))
        var configuration = Association.Configuration()
        configuration.explicitCongestionNotification = false
        var silent = Association(configuration: configuration)
        silent.connect(now: .zero)
        let plainPacket = silent.pollTransmit(now: .zero)
        let plain = try SCTPWire.encode(try #require(plainPacket))
        guard case .initiation(let plainFields) = try onlyChunk(plain) else { throw Failure("not an INIT") }
        #expect(!plainFields.parameters.contains(.ecnCapable))
    }

    @Test("ECN is on only when both sides offer it", arguments: [(true, true), (true, false), (false, true), (false, false)])
    func negotiation(first: Bool, second: Bool) {
        let pair = Self.established(ecn: (first, second))
        #expect(pair.bothEstablished)
        #expect(pair.sides[0].ecnNegotiated == (first && second))
        #expect(pair.sides[1].ecnNegotiated == (first && second))
    }

    // MARK: - Echo and reduction

    /// Side 0 sends; its packets reach side 1 marked CE when `mark` says so.
    /// Returns what side 1 sent back.
    static func deliver(_ pair: inout Pair, from: Int, marked: Bool) -> [SCTPChunkModel] {
        var answered: [SCTPChunkModel] = []
        while let packet = pair.sides[from].pollTransmit(now: pair.now) {
            pair.sides[1 - from].handleChunks(
                packet.chunks, verificationTag: packet.verificationTag, now: pair.now, congestionExperienced: marked)
        }
        while let packet = pair.sides[1 - from].pollTransmit(now: pair.now) {
            answered += packet.chunks
            pair.sides[from].handleChunks(packet.chunks, verificationTag: packet.verificationTag, now: pair.now)
        }
        return answered
    }

    @Test func aMarkIsEchoedUntilTheCWRAndReducesTheWindowOnce() throws {
        var pair = Self.established(ecn: (true, true))
        let thresholdBefore = try #require(pair.sides[0].congestion).slowStartThreshold
        let firstTSN = pair.sides[0].retransmissions.nextTSN
        pair.sendFromFirst([[UInt8](repeating: 1, count: 2000)])
        // Both DATA chunks in marked packets: one echo of the lowest TSN, counting two packets.
        let answer = Self.deliver(&pair, from: 0, marked: true)
        #expect(answer.contains(.ecnEcho(lowestTSN: firstTSN, markedPackets: 2)), "\(answer)")
        #expect(pair.sides[1].statistics.congestionExperiencedPackets == 2)
        let sender = pair.sides[0]
        #expect(sender.statistics.echoedMarks == 2 && sender.statistics.ecnReductions == 1)
        // RFC 9260 Appendix A: as a fast retransmit's loss: ssthresh halves (not below 4 MTU).
        #expect(try #require(sender.congestion).slowStartThreshold < thresholdBefore)
        // The sender's next packet carries the CWR; the receiver stops echoing.
        pair.sendFromFirst([[UInt8](repeating: 2, count: 500)])
        var cwrSeen = false
        while let packet = pair.sides[0].pollTransmit(now: pair.now) {
            if packet.chunks.contains(.cwr(lowestTSN: firstTSN)) { cwrSeen = true }
            pair.sides[1].handleChunks(packet.chunks, verificationTag: packet.verificationTag, now: pair.now)
        }
        #expect(cwrSeen)
        pair.now += .milliseconds(300)  // the delayed SACK
        pair.sides[1].advanceTime(now: pair.now)
        var after: [SCTPChunkModel] = []
        while let packet = pair.sides[1].pollTransmit(now: pair.now) { after += packet.chunks }
        #expect(after.contains { if case .sack = $0 { true } else { false } })
        #expect(!after.contains { if case .ecnEcho = $0 { true } else { false } }, "\(after)")
    }

    @Test func echoesOfTheSameWindowReduceOnceAndLaterDataAgain() throws {
        var pair = Self.established(ecn: (true, true))
        pair.sendFromFirst([[UInt8](repeating: 1, count: 1000)])
        _ = Self.deliver(&pair, from: 0, marked: true)
        // The CWR is lost: the receiver echoes the same episode on, with a
        // growing count; more marks, but no second reduction.
        _ = pair.sides[0].pollTransmit(now: pair.now)
        pair.sendFromFirst([[UInt8](repeating: 2, count: 1000)])
        while let packet = pair.sides[0].pollTransmit(now: pair.now) {
            let data = packet.chunks.filter { if case .data = $0 { true } else { false } }
            pair.sides[1].handleChunks(data, verificationTag: packet.verificationTag, now: pair.now, congestionExperienced: true)
        }
        // A mark within an open episode waits for the SACK due anyway (here
        // the delayed SACK's, for a lone packet).
        #expect(pair.sides[1].pollTransmit(now: pair.now) == nil)
        pair.now += .milliseconds(300)
        pair.sides[1].advanceTime(now: pair.now)
        while let packet = pair.sides[1].pollTransmit(now: pair.now) {
            pair.sides[0].handleChunks(packet.chunks, verificationTag: packet.verificationTag, now: pair.now)
        }
        // The second message was sent after the first reduction, but the
        // echo still names the first TSN: the same window.
        #expect(pair.sides[0].statistics.echoedMarks == 2)
        #expect(pair.sides[0].statistics.ecnReductions == 1)
        // The CWR now arrives; a mark on new data is a new episode and a new reduction.
        _ = Self.deliver(&pair, from: 0, marked: false)
        pair.sendFromFirst([[UInt8](repeating: 3, count: 1000)])
        _ = Self.deliver(&pair, from: 0, marked: true)
        #expect(pair.sides[0].statistics.echoedMarks == 3)
        #expect(pair.sides[0].statistics.ecnReductions == 2)
    }

    /// One packet at a time from side 0, each marked CE: side 1 answers the
    /// first mark at once and later ones with the SACKs due anyway (every
    /// second packet), although each CWR ends an episode and the next mark
    /// begins another; every mark reaches the sender once.
    @Test func steadyMarksRideOnTheUsualSACKsAndEachIsCountedOnce() throws {
        var pair = Self.established(ecn: (true, true))
        for _ in 0..<10 { pair.sendFromFirst([[UInt8](repeating: 7, count: 1000)]) }
        var sacks = 0, dataPackets = 0, lonePackets = 0
        while dataPackets < 10, pair.now < .seconds(10) {
            while let packet = pair.sides[0].pollTransmit(now: pair.now) {
                let data = packet.chunks.contains { if case .data = $0 { true } else { false } }
                if data { dataPackets += 1 } else { lonePackets += 1 }
                pair.sides[1].handleChunks(packet.chunks, verificationTag: packet.verificationTag, now: pair.now, congestionExperienced: data)
                while let answer = pair.sides[1].pollTransmit(now: pair.now) {
                    sacks += 1
                    pair.sides[0].handleChunks(answer.chunks, verificationTag: answer.verificationTag, now: pair.now)
                }
                if data { break }  // one data packet at a time
            }
            pair.now += .milliseconds(10)
            for index in 0..<2 { pair.sides[index].advanceTime(now: pair.now) }
        }
        // The delayed SACK for what is left, then the last CWR.
        pair.now += .milliseconds(300)
        for index in 0..<2 { pair.sides[index].advanceTime(now: pair.now) }
        _ = Self.deliver(&pair, from: 1, marked: false)
        _ = Self.deliver(&pair, from: 0, marked: false)
        #expect(dataPackets == 10)
        #expect(pair.sides[1].statistics.congestionExperiencedPackets == 10)
        #expect(pair.sides[0].statistics.echoedMarks == 10, "every mark counted once")
        // The first mark at once, then every second packet (a SACK per marked packet before).
        #expect(sacks <= 7, "\(sacks) SACKs for 10 marked packets")
        print("[ecn] 10 marked packets: \(sacks) SACKs, \(lonePackets) packets without data")
    }

    /// A CWR that finds no data to ride with waits while data is in flight
    /// (its SACKs bring a packet) and goes alone once nothing is.
    @Test func aCWRWithoutDataWaitsForTheFlightToEmpty() throws {
        var pair = Self.established(ecn: (true, true))
        pair.sendFromFirst([[UInt8](repeating: 1, count: 1000), [UInt8](repeating: 2, count: 1000)])
        let polledFirst = pair.sides[0].pollTransmit(now: pair.now)
        let polledSecond = pair.sides[0].pollTransmit(now: pair.now)
        let first = try #require(polledFirst)
        let second = try #require(polledSecond)
        // The first packet arrives marked and is echoed at once; the second is still on its way.
        pair.sides[1].handleChunks(first.chunks, verificationTag: first.verificationTag, now: pair.now, congestionExperienced: true)
        let polledEcho = pair.sides[1].pollTransmit(now: pair.now)
        let echo = try #require(polledEcho)
        #expect(echo.chunks.contains { if case .ecnEcho = $0 { true } else { false } })
        pair.sides[0].handleChunks(echo.chunks, verificationTag: echo.verificationTag, now: pair.now)
        #expect(pair.sides[0].statistics.ecnReductions == 1)
        #expect(pair.sides[0].pollTransmit(now: pair.now) == nil, "a lone CWR while the second packet is in flight")
        // The second arrives (unmarked); its SACK (the delayed one) empties
        // the flight; the CWR goes now, alone.
        pair.sides[1].handleChunks(second.chunks, verificationTag: second.verificationTag, now: pair.now)
        pair.now += .milliseconds(200)
        pair.sides[1].advanceTime(now: pair.now)
        while let packet = pair.sides[1].pollTransmit(now: pair.now) {
            pair.sides[0].handleChunks(packet.chunks, verificationTag: packet.verificationTag, now: pair.now)
        }
        let polledCWR = pair.sides[0].pollTransmit(now: pair.now)
        let cwr = try #require(polledCWR)
        #expect(cwr.chunks.count == 1 && cwr.chunks.contains { if case .cwr = $0 { true } else { false } }, "\(cwr.chunks)")
    }

    @Test func marksAreIgnoredWithoutNegotiation() throws {
        var pair = Self.established(ecn: (true, false))
        pair.sendFromFirst([[UInt8](repeating: 1, count: 1000)])
        let answer = Self.deliver(&pair, from: 0, marked: true)
        #expect(!answer.contains { if case .ecnEcho = $0 { true } else { false } })
        #expect(pair.sides[1].statistics.congestionExperiencedPackets == 0)
    }

    @Test func anEchoOfDataNeverSentOrWithoutNegotiationIsDropped() throws {
        var pair = Self.established(ecn: (true, true))
        let beyond = pair.sides[0].retransmissions.nextTSN.advanced(by: 10)
        let dropped = pair.sides[0].droppedChunks
        pair.sides[0].handleChunks(
            [.ecnEcho(lowestTSN: beyond, markedPackets: 1000)], verificationTag: pair.sides[0].localTag, now: pair.now)
        #expect(pair.sides[0].droppedChunks == dropped + 1)
        #expect(pair.sides[0].statistics.ecnReductions == 0 && pair.sides[0].statistics.echoedMarks == 0)

        var plain = Self.established(ecn: (false, false))
        plain.sendFromFirst([[UInt8](repeating: 1, count: 1000)])
        _ = plain.sides[0].pollTransmit(now: plain.now)
        let sent = plain.sides[0].retransmissions.nextTSN.previous
        plain.sides[0].handleChunks([.ecnEcho(lowestTSN: sent, markedPackets: 1)], verificationTag: plain.sides[0].localTag, now: plain.now)
        #expect(plain.sides[0].statistics.ecnReductions == 0)
        #expect(plain.sides[0].pollTransmit(now: plain.now)?.chunks.contains(.cwr(lowestTSN: sent)) != true)
    }
}

struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
